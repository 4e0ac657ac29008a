"""``Pipeline``: the one object both drivers call (docs/contracts.md).

    pipe = Pipeline(config).fit(history)        # or Pipeline.load("model/")
    res = pipe.step(events, states)             # streaming: scores, alerts, new per-key states
    table = pipe.score(history)                 # backfill: same numbers, one vectorised pass
    pipe.save("model/")

Both ``step`` and ``score`` run the same loop (``_run``): events are grouped into a
[keys, steps] grid and the detector core advances all keys one event at a time, so scoring a
sequence event by event, in micro-batches or as one table gives the same scores.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

import numpy as np
import pyarrow as pa

from .. import ops
from ..config import EmberConfig, parse_config
from .. import model_file
from . import events as ev
from .core import DetectorCore
from .key_state import KeyStateError, pack, unpack
from .settings import PipelineSettings

PIPELINE_CLASS = "Pipeline"


@dataclass
class StepResult:
    scores: pa.Table                    # key, time, score, threshold, alert; input row order
    alerts: list[dict]                  # alert records (docs/alerts.md)
    states: dict[str, bytes]            # new state of every key present in the events
    restarted: list[str] = field(default_factory=list)  # keys whose stored state was unusable


@dataclass
class _Run:
    grid: ev.KeyGrid
    times: np.ndarray
    values: np.ndarray
    score: np.ndarray
    threshold: np.ndarray
    alert: np.ndarray
    deviations: dict[int, np.ndarray]   # input row → per-feature deviation, alert rows only
    state: dict[str, np.ndarray]        # final state, rows = grid keys
    restarted: list[str]


class Pipeline:
    def __init__(self, config: EmberConfig, settings: PipelineSettings | None = None):
        if not isinstance(config, EmberConfig):
            raise TypeError(f"Pipeline(config): expected an ember_models.config.EmberConfig "
                            f"(load_config / parse_config), got {type(config).__name__}")
        self.config = config
        self.settings = settings or config.validate_section("model", PipelineSettings)
        self.core = DetectorCore(len(config.value_fields), list(config.value_fields),
                                 self.settings)
        self._layout = self.core.layout()
        self.model_version = self._compute_version()

    # ---- identity -------------------------------------------------------------------------
    def _description(self) -> dict:
        return {"config": self.config.model_dump(mode="json"),
                "settings": self.settings.model_dump(mode="json"),
                "core": self.core.get_config()}

    def _model_arrays(self) -> dict[str, np.ndarray]:
        return {}

    def _compute_version(self) -> str:
        h = hashlib.sha256(json.dumps(self._description(), sort_keys=True).encode())
        for name, arr in sorted(self._model_arrays().items()):
            h.update(name.encode())
            h.update(np.ascontiguousarray(arr).tobytes())
        return h.hexdigest()[:16]

    @property
    def state_tag(self) -> str:
        """What a stored key state must have been made by: the architecture (config, settings,
        state layout), not the weights, so states survive refits and online updates."""
        d = self._description()
        d["layout"] = {k: [list(s), t] for k, (s, t) in self._layout.items()}
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]

    # ---- learning ---------------------------------------------------------------------------
    def fit(self, history: pa.Table, labels=None) -> "Pipeline":
        """Learn from a history table (any keys, each key in time order). INTERIM: the z-score
        core has no global parameters; per-key statistics are learnt online in the key state."""
        self._check_table(history)
        self.model_version = self._compute_version()
        return self

    def partial_fit(self, events: pa.Table, labels=None) -> "Pipeline":
        """Online adaptation on a new batch of events (see fit)."""
        self._check_table(events)
        self.model_version = self._compute_version()
        return self

    def _check_table(self, table) -> None:
        if not isinstance(table, pa.Table):
            raise TypeError(f"expected a pyarrow.Table, got {type(table).__name__}")
        ev.column(table, self.config.key_field, "key")
        ev.column(table, self.config.time_field, "time")
        ev.value_matrix(table.slice(0, 0), self.config.value_fields)

    # ---- scoring ----------------------------------------------------------------------------
    def step(self, events: pa.Table, states: Mapping[str, bytes | None]) -> StepResult:
        """Score a micro-batch of events given the stored state of each of its keys."""
        if states is None:
            states = {}
        run = self._run(events, states)
        return StepResult(self._scores_table(events, run), self._alerts(run),
                          self._pack_states(run), run.restarted)

    def score(self, table: pa.Table, states: Mapping[str, bytes | None] | None = None
              ) -> pa.Table:
        """Batch scoring (backfill): the same scores as ``step``, without building alerts or
        packing states."""
        return self._scores_table(table, self._run(table, states or {}, keep_devs=False))

    def _run(self, table: pa.Table, states: Mapping, keep_devs: bool = True) -> _Run:
        if not isinstance(table, pa.Table):
            raise TypeError(f"events: expected a pyarrow.Table, got {type(table).__name__}")
        cfg = self.config
        keys = ev.key_strings(table, cfg.key_field)
        times = ev.epoch_seconds(table, cfg.time_field)
        values = ev.value_matrix(table, cfg.value_fields)
        grid = ev.key_grid(keys, times)
        state, restarted = self._gather_states(grid.keys, states)
        n = table.num_rows
        score = np.zeros(n, np.float64)
        alert = np.zeros(n, bool)
        devs: dict[int, np.ndarray] = {}
        st = {k: ops.from_numpy(v) for k, v in state.items()}
        for t in range(grid.steps):
            m = int(grid.active[t])
            rows = grid.rows[:m, t]
            view = st if m == len(grid.keys) else {k: v[:m] for k, v in st.items()}
            s, a, dev = self.core.step(view, ops.from_numpy(times[rows]),
                                       ops.from_numpy(values[rows]))
            if m == len(grid.keys):
                st = view
            else:
                st = {k: ops.concatenate([view[k], st[k][m:]], axis=0) for k in st}
            score[rows] = ops.to_numpy(s)
            a_np = ops.to_numpy(a)
            alert[rows] = a_np
            if keep_devs and a_np.any():
                d_np = ops.to_numpy(dev)
                for i in np.flatnonzero(a_np):
                    devs[int(rows[i])] = d_np[i]
        final = {k: np.asarray(ops.to_numpy(v)) for k, v in st.items()}
        thr = np.full(n, self.settings.alert_threshold)
        return _Run(grid, times, values, score, thr, alert, devs, final, restarted)

    def _gather_states(self, keys: list[str], states: Mapping) -> tuple[dict, list[str]]:
        state = self.core.init_state(len(keys))
        restarted = []
        tag = self.state_tag
        for k, key in enumerate(keys):
            blob = states.get(key)
            if blob is None:
                continue
            try:
                arrays = unpack(blob, key, tag, self._layout)
            except KeyStateError as exc:
                if "was made by model" in str(exc):
                    restarted.append(key)      # another architecture: start the key fresh
                    continue
                raise
            for name in state:
                state[name][k] = arrays[name]
        return state, restarted

    def _pack_states(self, run: _Run) -> dict[str, bytes]:
        tag = self.state_tag
        return {key: pack({name: arr[k] for name, arr in run.state.items()}, tag)
                for k, key in enumerate(run.grid.keys)}

    def _scores_table(self, table: pa.Table, run: _Run) -> pa.Table:
        keys = ev.key_strings(table, self.config.key_field)
        return pa.table({
            "key": pa.array(keys, pa.string()),
            "time": table.column(self.config.time_field),
            "score": pa.array(run.score, pa.float64()),
            "threshold": pa.array(run.threshold, pa.float64()),
            "alert": pa.array(run.alert, pa.bool_()),
        })

    def _alerts(self, run: _Run) -> list[dict]:
        out = []
        names = self.core.feature_names
        keys = None
        for row in sorted(run.deviations):
            if keys is None:
                keys = {int(r): run.grid.keys[k] for k in range(len(run.grid.keys))
                        for r in run.grid.rows[k][run.grid.rows[k] >= 0]}
            dev = run.deviations[row]
            top = np.argsort(-np.abs(dev), kind="stable")[:self.settings.reasons]
            out.append({
                "key": keys[row],
                "time": float(run.times[row]),
                "score": float(run.score[row]),
                "threshold": float(run.threshold[row]),
                "model_version": self.model_version,
                "values": {f: _num(run.values[row, j])
                           for j, f in enumerate(self.config.value_fields)},
                "top_features": [
                    {"name": names[j], "deviation": float(dev[j])}
                    for j in top if dev[j] != 0.0],
            })
        return out

    # ---- files ------------------------------------------------------------------------------
    def save(self, directory, states: Mapping[str, bytes] | None = None) -> Path:
        """Write the whole pipeline (config, settings, model arrays, calibration) as one model
        directory; ``states`` (optional) are stored with it, per key."""
        arrays = {f"model.{k}": v for k, v in self._model_arrays().items()}
        state_keys: list[str] = []
        if states:
            state_keys = sorted(states)
            arrays["states.blob"] = np.frombuffer(b"".join(states[k] for k in state_keys),
                                                  np.uint8).copy()
            arrays["states.sizes"] = np.array([len(states[k]) for k in state_keys], np.int64)
        self.model_version = self._compute_version()
        return model_file.save_arrays(
            directory, arrays, cls_name=PIPELINE_CLASS, config=self._description(),
            metadata={"model_version": self.model_version, "state_tag": self.state_tag,
                      "state_keys": state_keys})

    @classmethod
    def load(cls, directory) -> "Pipeline":
        pipe, _ = cls.load_with_states(directory)
        return pipe

    @classmethod
    def load_with_states(cls, directory) -> tuple["Pipeline", dict[str, bytes]]:
        manifest, arrays = model_file.load_arrays(directory)
        where = Path(directory) / "manifest.json"
        if manifest["class"] != PIPELINE_CLASS:
            raise model_file.ModelFileError(where, f"holds a {manifest['class']}, not a Pipeline")
        desc = manifest["config"]
        try:
            config = parse_config(desc["config"], source=str(where))
            settings = PipelineSettings.model_validate(desc["settings"])
        except (KeyError, ValueError) as exc:
            raise model_file.ModelFileError(where, f"pipeline description unreadable: {exc}") \
                from None
        pipe = cls(config, settings)
        pipe._load_model_arrays({k[6:]: v for k, v in arrays.items() if k.startswith("model.")})
        pipe.model_version = pipe._compute_version()
        states: dict[str, bytes] = {}
        keys = manifest.get("metadata", {}).get("state_keys", [])
        if keys:
            blob, sizes = arrays["states.blob"].tobytes(), arrays["states.sizes"]
            offsets = np.concatenate([[0], np.cumsum(sizes)])
            states = {k: blob[offsets[i]:offsets[i + 1]] for i, k in enumerate(keys)}
        return pipe, states

    def _load_model_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        pass


def _num(x: float):
    return None if not np.isfinite(x) else float(x)
