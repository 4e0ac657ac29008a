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
        x = self.observed(inp)[0]                                          # (V, n), NaN missing
        _, t_last = self.clock(state, inp)               # time never runs backwards for a key
        closed, open_, ref = state["closed_total"], state["open"], state["ref"]
        # (the state update is a compiled loop over the keys: rolling_time_kernel.py)
        kernels("ember_models.features.rolling_time_kernel").rolling_time_round(
            x, t_last, self._inv_width, state["ring_id"], state["ring"], closed, open_,
            state["open_id"], ref, state["seen"])
        full = self.complete(inp)            # every value observed: no masking needed
        tot = closed + open_                                               # (W, 3, V, n)
        out = out.reshape(tot.shape, copy=False)
        cnt = tot[:, 0]
        out[:, 0] = np.log1p(cnt)
        # every key was just observed in every field: no window is empty (count >= 1)
        inv = 1.0 / cnt if full else 1.0 / np.maximum(cnt, 1.0)
        mean = tot[:, 1] * inv
        var = tot[:, 2] * inv
        var -= mean * mean
        out[:, 2] = np.sqrt(np.maximum(var, 0.0, out=var), out=var)
        mean += ref if full else ref * (cnt > 0)        # an empty window's mean is 0
        out[:, 1] = mean
