"""``run_backfill``: score a time range of history through the pipeline, shard by shard.

    run_backfill(source, sink, pipeline, shards=16, since="2024-01-01", until="2024-02-01")

1. Checks the source's columns and types, opens the sink (nothing is scored before both work).
2. ``source.prepare``: one scan stages every event of the range with its shard (reused when
   the run resumes).
3. Each shard not yet recorded as done: read sorted by (key, time) → ``pipeline.score`` (or
   ``pipeline.step`` when the sink wants alert records) → idempotent sink write → recorded.
   ``local=True`` runs the shards in this process; ``local=False`` publishes them as tasks to
   the worker group (``distributed.py``) and waits for them.
4. When every shard is done, the staging is removed.

The run id defaults to a digest of (source, sink, shards, time range, model version), so
running the same command again resumes the run: shards already done are skipped.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stream_app.backfill.estimate import DryRunReport
from stream_app.backfill.manifest import LocalManifest, Manifest
from stream_app.backfill.shard_task import KEYS_PER_STEP, run_shard
from stream_app.backfill.sink import RunInfo, ShardSink
from stream_app.backfill.source import ScanPlan, ShardedSource
from stream_app.backfill.timerange import TimeLike, TimeRange


@dataclass
class BackfillResult:
    run_id: str
    shards: int
    skipped: list[int]  # done by an earlier (stopped) run of the same id
    processed: list[int]
    rows: int  # rows scored by this call
    alerts: int
    seconds: float
    plan: ScanPlan | None = None
    per_shard: dict[int, dict[str, Any]] = field(default_factory=dict)

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else float("nan")


def default_run_id(source: ShardedSource, sink: ShardSink, shards: int, time_range: TimeRange, model_version: str) -> str:
    ident = {"source": source.spec(), "sink": sink.spec(), "shards": shards,
             "range": time_range.to_dict(), "model": model_version}
    ident["source"].pop("staging_dir", None)
    digest = hashlib.sha256(json.dumps(ident, sort_keys=True, default=str).encode()).hexdigest()[:12]
    return f"bf-{digest}"


def load_pipeline(pipeline: Any) -> tuple[Any, str | None]:
    """A pipeline object, or a model directory to load one from; returns (pipeline, model_dir)."""
    if isinstance(pipeline, (str, os.PathLike)):
        from ember_models.pipeline import Pipeline

        return Pipeline.load(pipeline), str(Path(pipeline).resolve())
    for name in ("score", "step", "model_version"):
        if not hasattr(pipeline, name):
            raise TypeError(f"pipeline: expected a Pipeline (or a model directory), got {type(pipeline).__name__} without .{name}")
    return pipeline, None


def dry_run(source: ShardedSource, shards: int = 8, since: TimeLike = None, until: TimeLike = None,
            workers: int = 1, run_id: str | None = None) -> DryRunReport:
    """What ``run_backfill`` would scan and cost; runs no query and reads no rows of the source."""
    return source.dry_run(shards, TimeRange.of(since, until), workers=workers, run_id=run_id or "RUN")


def run_backfill(
    source: ShardedSource,
    sink: ShardSink,
    pipeline: Any,
    shards: int = 8,
    since: TimeLike = None,
    until: TimeLike = None,
    *,
    local: bool = True,
    progress: bool = True,
    run_id: str | None = None,
    manifest: Manifest | None = None,
    retries: int = 3,
    cleanup: bool = True,
    distributed: Any = None,
    keys_per_step: int | None = KEYS_PER_STEP,
) -> BackfillResult:
    """Backfill ``source`` into ``sink`` (see the module docstring).

    ``distributed`` (``local=False``): a :class:`stream_app.backfill.distributed.DistributedOptions`
    (broker, topics, timeout); the pipeline must then be given as a model directory, which every
    worker loads. ``keys_per_step`` (local runs; workers use the default): a shard is scored
    in blocks of at most this many whole keys (``shard_task.py``); None: one call per shard.
    """
    if shards < 1:
        raise ValueError(f"shards must be >= 1, got {shards}")
    time_range = TimeRange.of(since, until)
    pipe, model_dir = load_pipeline(pipeline)
    source.check()
    run_id = run_id or default_run_id(source, sink, shards, time_range, pipe.model_version)
    run = RunInfo(run_id, shards, pipe.model_version)
    sink.open(run)
    if not local:
        from stream_app.backfill.distributed import run_distributed

        if model_dir is None:
            raise ValueError("a distributed backfill needs the pipeline as a model directory (every worker loads it)")
        return run_distributed(source, sink, model_dir, run, time_range, distributed, progress=progress,
                               retries=retries, cleanup=cleanup)

    manifest = manifest or LocalManifest()
    start = time.perf_counter()
    done = manifest.done(run_id)
    todo = [i for i in range(shards) if i not in done]
    result = BackfillResult(run_id, shards, sorted(done), [], 0, 0, 0.0)
    if todo:
        result.plan = source.prepare(run_id, shards, time_range)
    bar = _progress(progress, shards, len(done), f"backfill {run_id}")
    try:
        for shard in todo:
            outcome = run_shard(source, sink, pipe, result.plan, run, shard, retries, keys_per_step)
            manifest.mark(run_id, shard, outcome.record(run))
            result.processed.append(shard)
            result.per_shard[shard] = outcome.record(run)
            result.rows += outcome.rows
            result.alerts += outcome.alerts
            if bar is not None:
                bar.update(1)
                bar.set_postfix(rows=result.rows, alerts=result.alerts)
    finally:
        if bar is not None:
            bar.close()
        sink.close()
    result.seconds = time.perf_counter() - start
    if cleanup and result.plan is not None:
        source.cleanup(result.plan)
    return result


def _progress(enabled: bool, total: int, initial: int, desc: str):
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, desc=desc, unit="shard")
