"""``Pipeline``: the one object both drivers call (docs/contracts.md).

    pipe = Pipeline(config).fit(history)        # or Pipeline.load("model/")
    res = pipe.step(events, states)             # streaming: scores, alerts, new per-key states
    table = pipe.score(history)                 # backfill: same numbers, one vectorised pass
    pipe.partial_fit(events, states)            # online adaptation of the global models
    pipe.save("model/")

``step`` and ``score`` run the same loop (``_run``): per round (the next event of every key
of the batch) the FeatureEngine computes the round's features and the detector core advances
those keys by that event (batch = keys, loop over time), so scoring a sequence event by event,
in micro-batches or as one table gives the same scores. Global models (motor readout, RBM, label head) change only in ``fit`` and
``partial_fit``; everything a key learns on its own (standardisation, tails, reservoir state)
lives in its state.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .. import model_file
from ..config import EmberConfig, parse_config
from .core import DetectorCore
from ..features.layout import RoundLayout
from .events import KeyGrid, grid_from_layout
from .key_state import pack_many, unpack_many
from .learning import Learner
from .settings import PipelineSettings

PIPELINE_CLASS = "Pipeline"
# events per detector call (DetectorCore.run_rounds; a round with more keys goes alone), small
# enough that a chunk's arrays ([65 features, 2,048 events] float32 is 0.5 MB) can stay in
# cache between the loops over them. Scoring 500-key rounds (a backfill shard), chunks of
# 16,384 were 25-35 % slower than the per-round detector before them, 512-4,096 level with it
# within this VM's noise (docs/performance.md, session 12).
CHUNK_ROWS = 2048


@dataclass
class StepResult:
    scores: pa.Table                    # key, time, score, threshold, alert; input row order
    alerts: list[dict]                  # alert records (docs/alerts.md)
    states: dict[str, bytes]            # new state of every key present in the events
    restarted: list[str] = field(default_factory=list)  # keys whose stored state was foreign


@dataclass
class _Run:
    grid: KeyGrid
    times: np.ndarray
    values: np.ndarray
    score: np.ndarray
    alert: np.ndarray
    details: dict[int, tuple]           # alert rows only: row → (deviations, evidence, features)
    feature_state: dict | None          # engine state after the batch, rows = grid keys
    state: np.ndarray | None            # detector rows after the batch, rows = grid keys
    restarted: list[str]
    code: np.ndarray | None = None      # input row → grid key
    learned: dict | None = None         # rows for the global models (learn=True)


class Pipeline:
    def __init__(self, config: EmberConfig, settings: PipelineSettings | None = None):
        if not isinstance(config, EmberConfig):
            raise TypeError(f"Pipeline(config): expected an ember_models.config.EmberConfig "
                            f"(load_config / parse_config), got {type(config).__name__}")
        self.config = config
        self.settings = settings or config.validate_section("model", PipelineSettings)
        self.core = DetectorCore(config, self.settings)
        self.learner = Learner(self.core, self.settings)
        self.model_version = self._compute_version()

    # ---- identity -------------------------------------------------------------------------
    def _description(self) -> dict:
        return {"config": self.config.model_dump(mode="json"),
                "settings": self.settings.model_dump(mode="json"),
                "core": self.core.get_config()}

    def _compute_version(self) -> str:
        h = hashlib.sha256(json.dumps(self._description(), sort_keys=True).encode())
        for name, arr in sorted(self.learner.arrays().items()):
            h.update(name.encode())
            h.update(np.ascontiguousarray(arr).tobytes())
        return h.hexdigest()[:16]

    @property
    def state_tag(self) -> str:
        """The architecture a stored key state must come from (not the weights: states
        survive refits and online updates). Computed once: the architecture is fixed at
        construction, and the streaming worker asks for it on every micro-batch."""
        tag = self.__dict__.get("_state_tag")
        if tag is None:
            tag = self.__dict__["_state_tag"] = self._compute_state_tag()
        return tag

    def _compute_state_tag(self) -> str:
        d = self._description()
        d["layout"] = {k: [list(s), v] for k, (s, v) in self.core.layout.spec.items()}
        d["features"] = self.core.engine.codec.fingerprint.hex()
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]

    # ---- learning ---------------------------------------------------------------------------
    def fit(self, history: pa.Table, labels=None) -> "Pipeline":
        """Fit the global models on a history (any keys, any order): the motor
        readout (predict each event's standardised features from the reservoir), the RBM
        (free energy of the standardised features), and with ``labels`` (a column name of
        ``history`` or an array, 1 = anomaly) a label head on the reservoir."""
        lab = self._labels(history, labels)
        # The fitted models must not depend on how the history's keys are interleaved (a
        # BigQuery read groups by key, a file is in time order): learn in (key, time) order.
        kf, tf = self.config.key_field, self.config.time_field
        if kf not in history.column_names or tf not in history.column_names:
            raise ValueError(f"fit: the history needs the key column {kf!r} and the time "
                             f"column {tf!r}, it has {history.column_names}")
        key = history.column(kf)
        if pa.types.is_dictionary(key.type):      # Arrow cannot sort dictionaries: by value
            key = key.cast(key.type.value_type)
        order = pc.sort_indices(pa.table({"k": key, "t": history.column(tf)}),
                                sort_keys=[("k", "ascending"), ("t", "ascending")])
        history = history.take(order)
        lab = None if lab is None else lab[order.to_numpy()]
        run = self._run(history, {}, learn=True)
        self.learner.fit(run.learned, lab, self.settings.rbm_epochs)
        self.model_version = self._compute_version()
        return self

    def partial_fit(self, events: pa.Table, states: Mapping[str, bytes | None] | None = None,
                    labels=None) -> "Pipeline":
        """Online adaptation: add a batch of events (with the keys' states before it) to the
        global models' statistics. Same as ``step(events, states, learn=True)`` without the
        results."""
        lab = self._labels(events, labels)
        run = self._run(events, states or {}, learn=True)
        self.learner.partial_fit(run.learned, lab)
        self.model_version = self._compute_version()
        return self

    def _labels(self, table: pa.Table, labels):
        if labels is None:
            return None
        if isinstance(labels, str):
            if labels not in table.column_names:
                raise ValueError(f"labels: the table has no column {labels!r}")
            labels = table.column(labels).to_numpy(zero_copy_only=False)
        lab = np.asarray(labels, np.float64).reshape(-1)
        if lab.shape[0] != table.num_rows:
            raise ValueError(f"labels: {lab.shape[0]} labels for {table.num_rows} events")
        return lab

    # ---- scoring ----------------------------------------------------------------------------
    def step(self, events: pa.Table, states: Mapping[str, bytes | None],
             learn: bool = False) -> StepResult:
        """Score a micro-batch of events given the stored state of each of its keys. With
        ``learn=True`` the global models then adapt to the batch (scores are computed before)."""
        run = self._run(events, states if states is not None else {}, learn=learn)
        result = StepResult(self._scores_table(events, run), self._alerts(run),
                            self._pack_states(run), run.restarted)
        if learn:
            self.learner.partial_fit(run.learned, None)
            self.model_version = self._compute_version()
        return result

    def warm_up(self) -> None:
        """Run two tiny micro-batches of made-up keys (nothing kept), so that the compiled
        loops of the bookkeeping (ember_models/kernels.py: numba loads them from its cache,
        ~1.5 s the first time in a process, or compiles them, ~11 s once after an install) are
        ready before the first real batch instead of inside it. The keys get different event counts, so the unaligned code paths load too."""
        d = self.config.data

        def batch(keys: list[str], t0: int) -> pa.Table:
            # (a timestamp column carries its own unit, whatever the config's time_unit)
            cols = {d.key_field: pa.array(keys, pa.string()),
                    d.time_field: pa.array([t0 + 60 * i for i in range(len(keys))],
                                           pa.timestamp("s"))}
            for j, name in enumerate(d.value_fields):
                cols[name] = pa.array([float(i + j) for i in range(len(keys))])
            for name in d.categorical_fields:
                cols[name] = pa.array(["a"] * len(keys), pa.string())
            return pa.table(cols)

        # (the second batch's rounds: all three keys, then a prefix of two at different counts,
        # so the loops load for whole arrays and for prefix views, aligned and not)
        first = self.step(batch(["warm-up-a"] * 3 + ["warm-up-b", "warm-up-c"], 1_700_000_000), {})
        self.step(batch(["warm-up-a", "warm-up-b", "warm-up-c", "warm-up-a", "warm-up-b"],
                        1_700_000_600), first.states)

    def score(self, table: pa.Table, states: Mapping[str, bytes | None] | None = None
              ) -> pa.Table:
        """Batch scoring (backfill): the same scores as ``step``, without alerts or states."""
        return self._scores_table(table, self._run(table, states or {}, details=False))

    def _run(self, table: pa.Table, states: Mapping, learn: bool = False,
             details: bool = True) -> _Run:
        if not isinstance(table, pa.Table):
            raise TypeError(f"events: expected a pyarrow.Table, got {type(table).__name__}")
        core = self.core
        cols = core.engine.read(table)
        # one grouping by key serves the feature engine and the detector's grid
        layout = RoundLayout(cols.key_index, len(cols.keys))
        grid = grid_from_layout(layout, cols.key_index, cols.keys, cols.times)
        code = np.take(layout.rank, cols.key_index)        # input row → grid key
        fstate, rows, restarted = self._gather_states(grid.keys, states)
        n_keys, n = len(grid.keys), table.num_rows
        # the reservoir's working array lives on the backend, the per-key bookkeeping in NumPy
        # (DetectorCore.batch_state)
        st = core.batch_state(rows)
        # Everything is in round order (round r's events are the rows starts[r]:starts[r + 1]
        # of layout.order, grid keys in order): the detector reads and writes slices, not
        # gathers.
        order = layout.order
        score_r, alert_r = np.zeros(n), np.zeros(n, bool)
        found: dict[int, tuple] = {}
        collected = []
        # The engine computes the features one round at a time (all keys in one block); the
        # detector takes them a chunk of rounds at a time (DetectorCore.run_rounds: only its
        # reservoir goes round by round), with the engine's round-ordered times and values
        # (values cleaned as the features see them: ±inf is missing). A chunk is at most
        # CHUNK_ROWS events, or one round: a backfill never holds a whole table's features.
        rounds = (core.engine.rounds(fstate, code, cols.times, cols.values, cols.categories,
                                     keys=grid.keys, layout=layout.by_rank(), block_keys=n_keys,
                                     keys_last=True)
                  if n_keys else ())
        feats = np.empty((core.d, max(min(CHUNK_ROWS, n), n_keys)), np.float32)
        c0, bounds = 0, [0]

        def run_chunk(c1: int) -> None:
            # (the whole buffer goes in, the chunk its first columns: one array layout, so
            # numba compiles the detector's loops once)
            s, a, dev, evid, learned = core.run_rounds(
                st, np.asarray(bounds, np.int64), rounds.t_r[c0:c1], rounds.x_r[:, c0:c1],
                feats, learn=learn, reasons=details)
            score_r[c0:c1], alert_r[c0:c1] = s, a
            if learned is not None:
                collected.append((order[c0:c1], learned))
            if details:
                for i in np.flatnonzero(a).tolist():
                    found[int(order[c0 + i])] = (dev[:, i].copy(), evid[i].copy(),
                                                 feats[:, i].copy())

        for r0, m, f_round in rounds:
            if r0 + m - c0 > feats.shape[1]:       # the chunk is full: run it
                run_chunk(r0)
                c0, bounds = r0, [0]
            feats[:, r0 - c0:r0 - c0 + m] = f_round
            bounds.append(r0 - c0 + m)
        if n_keys:
            run_chunk(n)
        score, alert = np.empty(n), np.empty(n, bool)
        score[order], alert[order] = score_r, alert_r
        fstate = rounds.state() if n_keys else None
        final = core.batch_rows(st) if n_keys else None
        run = _Run(grid, cols.times, cols.values, score, alert, found, fstate, final, restarted,
                   code)
        run.learned = self.learner.collect(collected, n) if learn else None
        return run

    def _gather_states(self, keys: list[str], states: Mapping):
        """(the keys' feature state, their detector rows, keys restarted): every stored
        state unpacked in one pass over the joined bytes."""
        engine = self.core.engine
        got, fmat, frows, foreign = unpack_many([states.get(key) for key in keys], keys,
                                                self.state_tag, engine.blob_size,
                                                self.core.layout.width)
        if len(got) == len(keys):
            rows = frows                   # every key has a state: read it where it lies
        else:
            rows = self.core.layout.init_rows(len(keys))
            rows[got] = frows
        restarted = [keys[i] for i in foreign]     # another architecture: start them fresh
        fstate = engine.states_from_blob_matrix(len(keys), got, fmat) if keys else None
        return fstate, rows, restarted

    def _pack_states(self, run: _Run) -> dict[str, bytes]:
        if not run.grid.keys:
            return {}
        fmat = self.core.engine.states_to_blob_matrix(run.feature_state)
        return dict(zip(run.grid.keys, pack_many(self.state_tag, fmat, run.state)))

    def _scores_table(self, table: pa.Table, run: _Run) -> pa.Table:
        key = table.column(self.config.key_field)
        if pa.types.is_dictionary(key.type):
            key = key.cast(key.type.value_type)
        if not pa.types.is_string(key.type):
            key = key.cast(pa.string())
        return pa.table({
            "key": key,
            "time": table.column(self.config.time_field),
            "score": pa.array(run.score, pa.float64()),
            "threshold": pa.array(np.full(table.num_rows, self.settings.alert_threshold),
                                  pa.float64()),
            "alert": pa.array(run.alert, pa.bool_()),
        })

    def _alerts(self, run: _Run) -> list[dict]:
        from .alerts import alert_records
        if not run.details:
            return []
        rows = sorted(run.details)
        dev, evid, feats = (np.stack([run.details[r][j] for r in rows]) for j in range(3))
        idx = np.asarray(rows, np.int64)
        return alert_records(self, [run.grid.keys[c] for c in np.take(run.code, idx).tolist()],
                             np.take(run.times, idx), np.take(run.score, idx),
                             np.take(run.values, idx, axis=0), dev, evid, feats)

    # ---- files ------------------------------------------------------------------------------
    def save(self, directory, states: Mapping[str, bytes] | None = None) -> Path:
        """Write the whole pipeline (config, settings, feature scaling, reservoir, readout and
        its statistics, RBM, label head) as one model directory (manifest + safetensors, no
        pickle); ``states`` (optional) are stored with it, per key."""
        arrays = {f"model.{k}": v for k, v in self.learner.arrays().items()}
        state_keys: list[str] = []
        if states:
            state_keys = sorted(states)
            arrays["states.blob"] = np.frombuffer(b"".join(bytes(states[k]) for k in state_keys),
                                                  np.uint8).copy()
            arrays["states.sizes"] = np.array([len(states[k]) for k in state_keys], np.int64)
        self.model_version = self._compute_version()
        return model_file.save_arrays(
            directory, arrays, cls_name=PIPELINE_CLASS, config=self._description(),
            metadata={"model_version": self.model_version, "state_tag": self.state_tag,
                      "state_keys": state_keys})

    @classmethod
    def load(cls, directory) -> "Pipeline":
        return cls.load_with_states(directory)[0]

    @classmethod
    def load_with_states(cls, directory) -> tuple["Pipeline", dict[str, bytes]]:
        """(pipeline, the key states saved with it — {} if none)."""
        manifest, arrays = model_file.load_arrays(directory)
        where = Path(directory) / "manifest.json"
        if manifest["class"] != PIPELINE_CLASS:
            raise model_file.ModelFileError(where, f"holds a {manifest['class']}, not a Pipeline")
        desc = manifest["config"]
        try:
            config = parse_config(desc["config"], source=str(where))
            settings = PipelineSettings.model_validate(desc["settings"])
        except (KeyError, TypeError, ValueError) as exc:
            raise model_file.ModelFileError(where, f"pipeline description unreadable: {exc}") \
                from None
        pipe = cls(config, settings)
        try:
            pipe.learner.load({k[6:]: v for k, v in arrays.items() if k.startswith("model.")})
        except (KeyError, ValueError) as exc:
            raise model_file.ModelFileError(Path(directory) / model_file.WEIGHTS,
                                            f"pipeline arrays do not fit: {exc}") from None
        pipe.model_version = pipe._compute_version()
        states: dict[str, bytes] = {}
        keys = manifest.get("metadata", {}).get("state_keys", [])
        if keys:
            blob, sizes = arrays["states.blob"].tobytes(), arrays["states.sizes"]
            offsets = np.concatenate([[0], np.cumsum(sizes)])
            states = {k: blob[offsets[i]:offsets[i + 1]] for i, k in enumerate(keys)}
        return pipe, states
