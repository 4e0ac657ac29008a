"""FeatureEngine: the configured features, evaluated over events of many keys.

Streaming and backfill are one code path: rows are grouped into rounds (round r = the r-th event
of every key, `RoundLayout`) and every feature's `step` runs once per round over all keys at once.
What differs is only where the state lives between calls: a streaming driver carries it as one
bytes blob per key (`step`, `state_to_bytes`/`states_from_bytes`), a backfill keeps it in arrays
(`transform`). Output is float32, one named column per feature output (`names`).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pyarrow as pa

from ..config import DataConfig, EmberConfig, default_features, load_config, parse_config
from .base import Feature
from .columns import EventColumns, read_columns
from .layout import RoundLayout
from .rounds import VALUE_LIMIT, FeatureRounds  # noqa: F401 (VALUE_LIMIT: public here)
from .registry import build_feature
from .state_codec import StateCodec
from .welford import WelfordStats
from .zscore import ZScore

State = dict  # flat: "<feature>/<state name>" -> array whose LAST axis is the key

# Times must lie within +-TIME_LIMIT_S (and values within rounds.VALUE_LIMIT): then every
# feature's float64 state stays finite and every output fits float32.
TIME_LIMIT_S = 1e12


@dataclass
class FeatureFrame:
    """Features of a table's events.

    values:    (N, d) float32, one row per input row, input order; columns named by `names`
    names:     output column names
    keys:      the distinct keys, in order of first appearance
    key_index: (N,) int64, row -> position in `keys`
    state:     the state after the last event of each key, rows aligned with `keys`
    """
    values: np.ndarray
    names: list[str]
    keys: list
    key_index: np.ndarray
    state: State


class FeatureEngine:
    def __init__(self, data: DataConfig, features: Sequence | None = None):
        self.data = data
        self.specs = list(features) if features is not None else default_features(data)
        self.features: list[Feature] = [build_feature(s, data) for s in self.specs]
        self._names: list[str] = []
        self._slices: list[slice] = []
        spec: dict[str, Any] = {}
        self._state_keys: list[list[tuple[str, str]]] = []
        for f, s in zip(self.features, self.specs):
            start = len(self._names)
            self._names.extend(f.names())
            self._slices.append(slice(start, len(self._names)))
            keys = []
            for local, entry in f.state_spec().items():
                spec[f"{s.id}/{local}"] = entry
                keys.append((f"{s.id}/{local}", local))
            self._state_keys.append(keys)
        if len(set(self._names)) != len(self._names):
            dup = sorted({n for n in self._names if self._names.count(n) > 1})
            raise ValueError(f"feature output names collide: {dup}; give features distinct names")
        self.codec = StateCodec(spec, self._config_text())
        self._state_alias, self._run_order = self._share_welford_state()
        self._clock = self._share_clock()
        self.center: np.ndarray | None = None   # set by fit()
        # Keys evaluated together per block (a speed knob only: results do not depend on it).
        self.block_keys = 65536
        self.scale_: np.ndarray | None = None

    def _share_welford_state(self) -> tuple[dict[str, str], list[int]]:
        """A z-score and a Welford feature of the same fields keep the same running count,
        mean and M2: same initial values, same update, same events. So the engine evaluates
        them on one set of arrays (the Welford feature's; {z-score state name: Welford state
        name}), updated once, by the Welford step, with the z-score run just before it (it
        scores each event against the statistics before it). The stored state keeps both
        copies (the blob layout is unchanged). Returns (aliases, order of evaluation)."""
        alias: dict[str, str] = {}
        order = list(range(len(self.features)))
        taken: set[int] = set()
        for i, z in enumerate(self.features):
            if not isinstance(z, ZScore):
                continue
            j = next((j for j, w in enumerate(self.features) if isinstance(w, WelfordStats)
                      and w.columns == z.columns and j not in taken), None)
            if j is None:
                continue
            taken.add(j)
            z.updated_elsewhere = True
            for name in ("n", "mean", "m2"):
                alias[f"{self.specs[i].id}/{name}"] = f"{self.specs[j].id}/{name}"
            order.remove(i)
            order.insert(order.index(j), i)
        return alias, order

    def _share_clock(self) -> tuple[int, str] | None:
        """Features that keep a clock (time since last, event rate, EWMA, rolling time
        windows) keep equal ones: NaN at first, then max(clock, time) at every event. The
        engine evaluates them on one array (the first one's): each reads it (through
        `Feature.clock`, elapsed time computed once per round) and the engine advances it
        after the round. The stored state keeps every copy (the blob layout is unchanged).
        Returns (feature index, state name) of the shared clock, or None."""
        clocked = [i for i, f in enumerate(self.features) if f.clock_state is not None]
        if len(clocked) < 2:
            return None
        first = clocked[0]
        shared = f"{self.specs[first].id}/{self.features[first].clock_state}"
        for i in clocked:
            self.features[i].shared_clock = True
            if i != first:
                self._state_alias[f"{self.specs[i].id}/{self.features[i].clock_state}"] = shared
        return first, self.features[first].clock_state

    # ---- construction ------------------------------------------------------------------------
    @classmethod
    def from_config(cls, config: EmberConfig | str | Path | Mapping) -> "FeatureEngine":
        """From an EmberConfig, a path to a TOML file, or a dict of the file's content."""
        if isinstance(config, (str, Path)):
            config = load_config(config)
        elif isinstance(config, Mapping):
            config = parse_config(dict(config))
        return cls(config.data, config.features)

    def _config_text(self) -> str:
        return json.dumps({"data": self.data.model_dump(mode="json"),
                           "features": [s.model_dump(mode="json") for s in self.specs]},
                          sort_keys=True)

    # ---- description -------------------------------------------------------------------------
    @property
    def names(self) -> list[str]:
        """One name per output column ("cpu.ewma_mean_h600s", "count_log1p", ...)."""
        return list(self._names)

    @property
    def n_features(self) -> int:
        return len(self._names)

    def feature_slices(self) -> dict[str, slice]:
        """Feature id -> its output columns."""
        return {s.id: sl for s, sl in zip(self.specs, self._slices)}

    # ---- state -------------------------------------------------------------------------------
    def init_state(self, n_keys: int) -> State:
        return self.codec.init(n_keys)

    def state_to_bytes(self, state: State, key_index: int) -> bytes:
        return self.codec.encode(state, key_index)

    def state_from_bytes(self, blob: bytes | None) -> State:
        """A one-key state (None -> a new key's state)."""
        return self.codec.decode_many([blob])

    def states_from_bytes(self, blobs: Sequence[bytes | None]) -> State:
        """Gather several keys' blobs into one state, row i = blobs[i] (None -> new key)."""
        return self.codec.decode_many(blobs)

    def states_to_bytes(self, state: State) -> list[bytes]:
        """Scatter a state into one blob per key (row order)."""
        return self.codec.encode_all(state)

    @property
    def blob_size(self) -> int:
        """Bytes of one key's blob (every key's is the same size)."""
        return self.codec.blob_size

    def states_to_blob_matrix(self, state: State) -> np.ndarray:
        """states_to_bytes as one uint8 array [keys, blob_size] (row i = key i's blob)."""
        return self.codec.record_bytes(state)

    def states_from_blob_matrix(self, n_keys: int, rows, blobs: np.ndarray) -> State:
        """states_from_bytes for n_keys keys of which keys ``rows`` have the blobs ``blobs``
        (uint8 [len(rows), blob_size]); the others start fresh."""
        return self.codec.decode_rows(n_keys, np.asarray(rows, np.int64), blobs)

    def take_state(self, state: State, rows) -> State:
        """The state of keys `rows` (indices into the state's keys)."""
        return self.codec.take(state, np.asarray(rows, dtype=np.int64))

    def concat_states(self, states: Sequence[State]) -> State:
        """One state holding the keys of `states` one after the other."""
        return self.codec.concat(states)

    def n_keys(self, state: State) -> int:
        return self.codec.n_keys(state)

    @property
    def state_nbytes(self) -> int:
        """Bytes of one key's state blob."""
        return self.codec.blob_size

    # ---- evaluation --------------------------------------------------------------------------
    def read(self, table: pa.Table | pa.RecordBatch) -> EventColumns:
        """The configured fields of `table` as arrays (errors name the field and row)."""
        d = self.data
        return read_columns(table, d.key_field, d.time_field, d.value_fields, d.categorical_fields,
                            d.time_unit)

    def step_events(self, state: State, key_index: np.ndarray, times: np.ndarray,
                    values: np.ndarray, categories: np.ndarray | None = None,
                    keys: Sequence | None = None, layout: RoundLayout | None = None,
                    round_order: bool = False) -> tuple[np.ndarray, State]:
        """Apply events of many keys to `state` (rows = keys; not modified) and return
        (features (N, d) float32 in row order, new state). Each key's events are applied in row
        order, so they must be in time order (`keys` only names a key in that error).
        `layout`: the rows' RoundLayout when the caller has built it (for this key_index) and
        checked the time order already. `round_order`: the features in the layout's round
        order (row ``layout.order[i]`` at i) instead of row order."""
        rounds = self.rounds(state, key_index, times, values, categories, keys, layout)
        order = rounds.layout.order
        out = np.empty((order.shape[0], self.n_features), dtype=np.float32)
        for a, n, feats in rounds:
            if round_order:
                np.copyto(out[a:a + n], feats)
            else:
                out[order[a:a + n]] = feats
        return out, rounds.state()

    def rounds(self, state: State, key_index: np.ndarray, times: np.ndarray,
               values: np.ndarray, categories: np.ndarray | None = None,
               keys: Sequence | None = None, layout: RoundLayout | None = None,
               block_keys: int | None = None, keys_last: bool = False) -> FeatureRounds:
        """``step_events`` one round at a time (see rounds.py): iterate the result for each
        round's (row in round order, n, features (n, d)), then ``.state()`` for the new state.
        ``block_keys`` (default ``self.block_keys``): keys evaluated together. ``keys_last``:
        yield each round's features as (d, n) (the engine's own layout, no transposition;
        rows have the stride of the block, so a view of a partial round is not contiguous)
        instead of (n, d)."""
        key_index = np.asarray(key_index, dtype=np.int64)
        times = np.asarray(times, dtype=np.float64)
        # (cleaned by FeatureRounds once in round order: non-finite -> NaN, clipped to
        # +-VALUE_LIMIT)
        values = np.asarray(values, dtype=np.float64).reshape(times.shape[0],
                                                              len(self.data.value_fields))
        # min/max are NaN if any time is: no temporaries unless something is wrong
        if times.size and not (times.min() >= -TIME_LIMIT_S and times.max() <= TIME_LIMIT_S):
            row = int(np.flatnonzero(~(np.abs(times) <= TIME_LIMIT_S))[0])
            raise ValueError(f"time {times[row]!r} of row {row} is not finite epoch seconds within "
                             f"+-{TIME_LIMIT_S:g} (milliseconds? set data.time_unit)")
        if categories is None:
            categories = np.full((times.shape[0], len(self.data.categorical_fields)), -1, np.int64)
        n_keys = self.n_keys(state) if state else int(key_index.max(initial=-1)) + 1
        if key_index.size and (key_index.min() < 0 or key_index.max() >= n_keys):
            raise ValueError(f"key_index out of range for a state of {n_keys} keys")
        if layout is None:
            layout = RoundLayout(key_index, n_keys)
            layout.check_time_order(key_index, times, keys if keys is not None else range(n_keys))
        elif layout.n_keys != n_keys or len(layout.order) != len(key_index):
            raise ValueError(f"layout of {layout.n_keys} keys and {len(layout.order)} rows given "
                             f"for {n_keys} keys and {len(key_index)} rows")
        # np.take keeps the arrays C-contiguous (v[..., idx] would not, and every op on a
        # strided state array costs 2-10x more).
        ranked = self.codec.take(state, layout.rank_order)
        return FeatureRounds(self, layout, ranked, times, values, categories,
                             self.block_keys if block_keys is None else block_keys, keys_last)

    def transform(self, table: pa.Table | pa.RecordBatch | EventColumns,
                  state: State | Mapping[Any, bytes | None] | None = None,
                  state_keys: Sequence | None = None) -> FeatureFrame:
        """Features of every row of `table` (each key's rows in time order; sorting by
        (key, time) is the fast case). `state`: None (all keys new), a mapping key -> bytes|None,
        or a State whose rows belong to `state_keys` (e.g. a previous frame's .state and .keys);
        keys of the table that the state does not have start fresh."""
        cols = table if isinstance(table, EventColumns) else self.read(table)
        if state is None:
            st = self.init_state(len(cols.keys))
        elif _is_state(state) or state_keys is not None:
            if state_keys is None:
                raise TypeError("transform(table, state=State) needs state_keys= (the key of "
                                "each state row, e.g. the previous frame's .keys)")
            st = self.align_state(state, state_keys, cols.keys)
        else:
            st = self.states_from_bytes([state.get(k) for k in cols.keys])
        out, new_state = self.step_events(st, cols.key_index, cols.times, cols.values,
                                          cols.categories, keys=cols.keys)
        return FeatureFrame(out, self.names, cols.keys, cols.key_index, new_state)

    def align_state(self, state: State, state_keys: Sequence, keys: Sequence) -> State:
        """A state with one row per key of `keys`: the row of `state` (whose rows are
        `state_keys`) for known keys, a fresh state for the others."""
        if self.n_keys(state) != len(state_keys) and state:
            raise ValueError(f"state has {self.n_keys(state)} keys but {len(state_keys)} "
                             "state_keys were given")
        where = {k: i for i, k in enumerate(state_keys)}
        rows = np.array([where.get(k, -1) for k in keys], dtype=np.int64)
        out = self.init_state(len(keys))
        known = np.flatnonzero(rows >= 0)
        self.codec.put(out, known, self.codec.take(state, rows[known]))
        return out

    def step(self, table: pa.Table | pa.RecordBatch, states: Mapping[Any, bytes | None]
             ) -> tuple[FeatureFrame, dict[Any, bytes]]:
        """The streaming form: events of any keys plus each key's stored blob (missing/None =
        new key) -> (features, {key: new blob} for every key in `table`)."""
        frame = self.transform(table, {k: states.get(k) for k in self.read_keys(table)})
        return frame, dict(zip(frame.keys, self.states_to_bytes(frame.state)))

    def read_keys(self, table: pa.Table | pa.RecordBatch) -> list:
        from .columns import encode_keys
        if isinstance(table, pa.RecordBatch):
            table = pa.Table.from_batches([table])
        if self.data.key_field not in table.column_names:
            raise ValueError(f"the events have no key field {self.data.key_field!r} "
                             f"(columns: {table.column_names})")
        return encode_keys(table.column(self.data.key_field), self.data.key_field)[0]

    # ---- fitted output scaling (optional) ----------------------------------------------------
    def fit(self, table: pa.Table | pa.RecordBatch | FeatureFrame, max_rows: int = 200_000
            ) -> "FeatureEngine":
        """Learn a robust per-column center (median) and scale (IQR/1.349, else std, floored)
        of the features of `table`, for `standardize`. The features themselves need no fitting."""
        frame = table if isinstance(table, FeatureFrame) else self.transform(table)
        x = frame.values
        if x.shape[0] == 0:
            raise ValueError("cannot fit feature scaling on an empty table")
        step = max(1, x.shape[0] // max_rows)
        sample = x[::step].astype(np.float64)
        q25, q50, q75 = np.quantile(sample, [0.25, 0.5, 0.75], axis=0)
        scale = (q75 - q25) / 1.349
        std = sample.std(axis=0)
        scale = np.where(scale > 1e-9, scale, std)
        self.center = q50
        self.scale_ = np.maximum(scale, 1e-6)
        return self

    def standardize(self, values: np.ndarray, clip: float = 10.0) -> np.ndarray:
        """(values - center) / scale from `fit`, clipped to ±clip, float32."""
        if self.center is None:
            raise RuntimeError("FeatureEngine.standardize needs fit() (or a loaded engine) first")
        z = (np.asarray(values, dtype=np.float64) - self.center) / self.scale_
        return np.clip(z, -clip, clip).astype(np.float32)

    # ---- saving ------------------------------------------------------------------------------
    def export(self) -> tuple[dict, dict[str, np.ndarray]]:
        """(JSON-able manifest, arrays) that `from_export` rebuilds the engine from."""
        manifest = json.loads(self._config_text())
        manifest["names"] = self.names
        manifest["state_fingerprint"] = self.codec.fingerprint.hex()
        arrays = {}
        if self.center is not None:
            arrays = {"center": self.center.copy(), "scale": self.scale_.copy()}
        return manifest, arrays

    @classmethod
    def from_export(cls, manifest: dict, arrays: Mapping[str, np.ndarray] | None = None
                    ) -> "FeatureEngine":
        cfg = parse_config({"data": manifest["data"], "features": manifest["features"]},
                           source="feature manifest")
        engine = cls(cfg.data, cfg.features)
        if engine.names != manifest.get("names", engine.names):
            raise ValueError("feature manifest names do not match this ember's features")
        if arrays and "center" in arrays:
            engine.center = np.asarray(arrays["center"], dtype=np.float64)
            engine.scale_ = np.asarray(arrays["scale"], dtype=np.float64)
        return engine


def _is_state(m: Mapping) -> bool:
    return bool(m) and all(isinstance(v, np.ndarray) for v in m.values())
