"""Train and score from event files: the work behind ``ember train`` / ``ember score``.

No command-line concerns here (click lives in ``cli_model.py``): functions take paths and
objects and return what they made, so ``run-sample`` and the tests call them directly.

- ``train``: read the history files, fit a ``Pipeline``, then run the history through it once so
  the model directory also holds every key's state at the end of the history — scoring the events
  that follow picks up where the history stopped instead of warming up each key again.
- ``score``: feed the events to ``Pipeline.step`` in chunks (a progress bar per chunk), carrying
  the key states from chunk to chunk; the scores equal one ``Pipeline.score`` call (the
  pipeline's parity promise), the chunks only bound memory and show progress.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import pyarrow as pa
from tqdm import tqdm

from stream_app.files import (EventFields, ReadReport, events_from_table, read_events, time_ordered,
                              write_events)
from stream_app.report import SCORE_COLUMNS, ScoreColumns

DEFAULT_CHUNK_ROWS = 20_000


@dataclass
class TrainResult:
    model_dir: Path
    read: ReadReport
    events: int
    keys: int
    fit_seconds: float
    warm_seconds: float


@dataclass
class ScoreResult:
    scores: pa.Table                  # event columns + score, threshold, alert (input rows in time order)
    alerts: list[dict]
    read: ReadReport
    columns: ScoreColumns
    seconds: float
    states: dict[str, bytes] = field(default_factory=dict)

    @property
    def events(self) -> int:
        return self.scores.num_rows

    @property
    def alert_count(self) -> int:
        return len(self.alerts)


def _pipeline_class():
    from ember_models.pipeline import Pipeline
    return Pipeline


def train(config, inputs: Sequence, model_dir, *, tables: Sequence[tuple[str, pa.Table]] = (),
          missing_values: str = "keep", chunk_rows: int = DEFAULT_CHUNK_ROWS,
          progress: bool | None = None) -> TrainResult:
    """Fit a pipeline on the event files ``inputs`` and the already-read ``tables`` ((name,
    table) pairs, e.g. from BigQuery) and save it, with the end-of-history key states."""
    fields = EventFields.from_config(config)
    parts, report = [], ReadReport()
    if inputs:
        table, report = read_events(list(inputs), fields, missing_values=missing_values)
        parts.append(table)
    for name, raw in tables:
        table, one = events_from_table(raw, fields, name, missing_values=missing_values)
        parts.append(table)
        report.merge(one)
    table = pa.concat_tables(parts) if parts else None
    if table is None or table.num_rows == 0:
        names = [*map(str, inputs), *(n for n, _ in tables)]
        raise ValueError(f"no usable events in {', '.join(names)}: nothing to train on")
    table = time_ordered(table, fields)
    pipe = _pipeline_class()(config)
    t0 = time.perf_counter()
    pipe.fit(table)
    fit_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    states, _, _ = _step_in_chunks(pipe, table, {}, chunk_rows, progress, "warming key states",
                                   want_scores=False)
    warm_s = time.perf_counter() - t0
    out = pipe.save(model_dir, states=states)
    keys = len(set(table.column(fields.key_field).to_pylist()))
    return TrainResult(Path(out) if out else Path(model_dir), report, table.num_rows, keys, fit_s, warm_s)


def load_model(model_dir):
    """(pipeline, stored key states) from a model directory made by ``train``."""
    Pipeline = _pipeline_class()
    if hasattr(Pipeline, "load_with_states"):
        return Pipeline.load_with_states(model_dir)
    return Pipeline.load(model_dir), {}


def score(model_dir, inputs: Sequence, *, cold: bool = False, missing_values: str = "keep",
          chunk_rows: int = DEFAULT_CHUNK_ROWS, progress: bool | None = None) -> ScoreResult:
    """Score the event files ``inputs`` with the model in ``model_dir``."""
    pipe, states = load_model(model_dir)
    fields = EventFields.from_config(pipe.config)
    table, report = read_events(list(inputs), fields, missing_values=missing_values)
    table = time_ordered(table, fields)
    t0 = time.perf_counter()
    states, parts, alerts = _step_in_chunks(pipe, table, {} if cold else dict(states), chunk_rows,
                                            progress, "scoring", want_scores=True)
    seconds = time.perf_counter() - t0
    scores, columns = _scores_table(table, parts, fields)
    return ScoreResult(scores, alerts, report, columns, seconds, states)


def write_scores(result: ScoreResult, path) -> Path:
    """Write a scores table; Parquet files remember which columns are key, time and values."""
    path = Path(path)
    table = result.scores
    if path.suffix.lower() in (".parquet", ".pq"):
        table = table.replace_schema_metadata({**(table.schema.metadata or {}), **result.columns.to_metadata()})
    return write_events(table, path, result.columns.time)


def _step_in_chunks(pipe, table: pa.Table, states: dict, chunk_rows: int, progress, what: str,
                    want_scores: bool):
    if chunk_rows < 1:
        raise ValueError(f"chunk_rows must be at least 1, got {chunk_rows}")
    parts, alerts = [], []
    with tqdm(total=table.num_rows, desc=what, unit="ev", unit_scale=True, disable=progress is False
              if progress is not None else None, leave=False) as bar:
        for start in range(0, table.num_rows, chunk_rows):
            chunk = table.slice(start, chunk_rows)
            res = pipe.step(chunk, states)
            states.update(res.states)
            if want_scores:
                parts.append(res.scores)
                alerts.extend(res.alerts)
            bar.update(chunk.num_rows)
    return states, parts, alerts


def _scores_table(events: pa.Table, parts: list[pa.Table], fields: EventFields) -> tuple[pa.Table, ScoreColumns]:
    """The events' own columns beside the pipeline's score columns, one row per event."""
    scored = pa.concat_tables(parts) if parts else None
    out = {}
    for name in fields.columns:
        # an event field named like a score column keeps its values under "event.<name>"
        out[f"event.{name}" if name in SCORE_COLUMNS else name] = events.column(name)
    value_names = tuple(f"event.{v}" if v in SCORE_COLUMNS else v for v in fields.value_fields)
    if scored is None:
        out.update({"score": pa.array([], pa.float64()), "threshold": pa.array([], pa.float64()),
                    "alert": pa.array([], pa.bool_())})
    else:
        for name in scored.column_names:
            if name not in ("key", "time"):
                out[name] = scored.column(name)
    return pa.table(out), ScoreColumns(fields.key_field if fields.key_field not in SCORE_COLUMNS
                                       else f"event.{fields.key_field}", fields.time_field, value_names)
