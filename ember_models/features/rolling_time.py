"""Count, mean and standard deviation of each field over the last w seconds, for several w.

Bounded state needs bucketing: a w-second window is kept as `buckets` time buckets of w/buckets
seconds (ring buffer by bucket number). The window at time t is the bucket holding t and the
buckets-1 before it, so it reaches back between w (buckets-1)/buckets and w seconds. Each bucket
holds count, sum and sum of squares of the values relative to a per-key reference (the field's
first observation), which keeps the variance accurate for large offsets.
"""
from __future__ import annotations

import numpy as np

from .base import Feature, RoundInputs, State, fmt_seconds

_NEVER = np.iinfo(np.int64).min // 2


class RollingTimeWindow(Feature):
    kind = "rolling_time"

    def __init__(self, fields=(), columns=(), prefix: str = "rolling_time",
                 windows_s=(3600.0,), buckets: int = 6):
        super().__init__(fields, columns, prefix)
        self.windows_s = tuple(sorted({float(w) for w in windows_s}))
        self.buckets = int(buckets)
        self._width = np.asarray(self.windows_s) / self.buckets

    def names(self) -> list[str]:
        return self._field_names(*[f"{stat}_w{fmt_seconds(w)}" for w in self.windows_s
                                   for stat in ("count_log1p", "mean", "std")])

    def state_spec(self):
        nw, b, v = len(self.windows_s), self.buckets, len(self.fields)
        return {"bucket_id": ((nw, b), "<i8", _NEVER), "acc": ((nw, b, 3, v), "<f8", 0.0),
                "ref": ((v,), "<f8", 0.0), "seen": ((v,), "<f8", 0.0),
                "t_last": ((), "<f8", np.nan)}

    def step(self, state: State, inp: RoundInputs) -> np.ndarray:
        _, obs, x0 = self.observed(inp)
        ids, acc, ref, seen, t_last = (state[k] for k in ("bucket_id", "acc", "ref", "seen", "t_last"))
        np.copyto(ref, x0, where=obs & (seen == 0))
        seen += obs
        np.fmax(t_last, inp.times, out=t_last)            # time never runs backwards for a key
        y = (x0 - ref) * obs
        add = np.stack([obs.astype(np.float64), y, y * y], axis=1)     # (n, 3, V)
        rows = np.arange(len(inp))
        n_out = len(self.windows_s)
        out = np.empty((len(inp), len(self.fields), n_out, 3))
        for j in range(n_out):
            bid = np.floor(t_last / self._width[j]).astype(np.int64)
            slot = bid % self.buckets
            stale = ids[rows, j, slot] != bid
            if stale.any():
                acc[rows[stale], j, slot[stale]] = 0.0
                ids[rows, j, slot] = bid
            acc[rows, j, slot] += add
            live = ids[:, j, :] > (bid - self.buckets)[:, None]           # (n, B)
            tot = np.einsum("nbkv,nb->nkv", acc[:, j], live.astype(np.float64))
            cnt, s, ss = tot[:, 0], tot[:, 1], tot[:, 2]
            inv = 1.0 / np.maximum(cnt, 1.0)
            mean = s * inv
            out[:, :, j, 0] = np.log1p(cnt)
            out[:, :, j, 2] = np.sqrt(np.maximum(ss * inv - mean * mean, 0.0))
            out[:, :, j, 1] = mean + ref * (cnt > 0)
        return out.reshape(len(inp), -1)
