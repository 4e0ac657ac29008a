"""Count, mean and standard deviation of each field over the last w seconds, for several w.

Bounded state needs bucketing: a w-second window is kept as `buckets` time buckets of w/buckets
seconds. The window at time t is the bucket holding t and the buckets-1 before it, so it reaches
back between w (buckets-1)/buckets and w seconds. Each bucket holds count, sum and sum of squares
of the values relative to a per-key reference (the field's first observation), which keeps the
variance accurate for large offsets.

The bucket being filled (`open`) is separate from a ring of closed buckets, and the total of the
live closed buckets (`closed_total`) is recomputed exactly only when a key moves into a new
bucket, the only time a bucket can close or expire. A round is one compiled pass over the keys
(rolling_time_kernel.py, numba): the bucket work is done for the keys that changed bucket only.
"""
from __future__ import annotations

import numpy as np

from ..kernels import kernels
from .base import Feature, RoundInputs, State, fmt_seconds

_NEVER = np.iinfo(np.int64).min // 2


class RollingTimeWindow(Feature):
    kind = "rolling_time"
    clock_state = "t_last"

    def __init__(self, fields=(), columns=(), prefix: str = "rolling_time",
                 windows_s=(3600.0,), buckets: int = 6):
        super().__init__(fields, columns, prefix)
        self.windows_s = tuple(sorted({float(w) for w in windows_s}))
        self.buckets = int(buckets)
        self._inv_width = self.buckets / np.asarray(self.windows_s)              # (W,)

    def names(self) -> list[str]:
        return [f"{f}.{self.prefix}_{stat}_w{fmt_seconds(w)}" for w in self.windows_s
                for stat in ("count_log1p", "mean", "std") for f in self.fields]

    def state_spec(self):
        nw, b, v = len(self.windows_s), self.buckets, len(self.fields)
        # The ring is read a key at a time when the key changes bucket: key-first keeps one
        # key's buckets in a few cache lines instead of one line per number.
        return {"ring_id": ((nw, b), "<i8", _NEVER, "key_first"),
                "ring": ((nw, b, 3, v), "<f8", 0.0, "key_first"),
                "closed_total": ((nw, 3, v), "<f8", 0.0), "open": ((nw, 3, v), "<f8", 0.0),
                "open_id": ((nw,), "<i8", _NEVER), "ref": ((v,), "<f8", 0.0),
                "seen": ((v,), "<f8", 0.0), "t_last": ((), "<f8", np.nan)}

    def step(self, state: State, inp: RoundInputs, out: np.ndarray) -> None:
        _, t_last = self.clock(state, inp)               # time never runs backwards for a key
        closed, open_, ref = state["closed_total"], state["open"], state["ref"]
        # (compiled loops over the keys: rolling_time_kernel.py)
        loops = kernels("ember_models.features.rolling_time_kernel")
        loops.rolling_time_round(inp.values, self.column_index, t_last, self._inv_width,
                                 state["ring_id"], state["ring"], closed, open_,
                                 state["open_id"], ref, state["seen"])
        loops.rolling_time_outputs(closed, open_, ref, out)
        w, v = len(self.windows_s), len(self.fields)
        counts = out.reshape(w, 3, v, -1, copy=False)[:, 0]             # (W, V, n)
        counts[...] = np.log1p(closed[:, 0] + open_[:, 0])
