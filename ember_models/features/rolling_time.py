"""Count, mean and standard deviation of each field over the last w seconds, for several w.

Bounded state needs bucketing: a w-second window is kept as `buckets` time buckets of w/buckets
seconds. The window at time t is the bucket holding t and the buckets-1 before it, so it reaches
back between w (buckets-1)/buckets and w seconds. Each bucket holds count, sum and sum of squares
of the values relative to a per-key reference (the field's first observation), which keeps the
variance accurate for large offsets.

The bucket being filled (`open`) is separate from a ring of closed buckets, and the total of the
live closed buckets (`closed_total`) is recomputed exactly only when a key moves into a new
bucket, the only time a bucket can close or expire. So an event costs a few dense array ops, and
the bucket work is done for the keys that changed bucket only.
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
        self._inv_width = (self.buckets / np.asarray(self.windows_s))[:, None]   # (W, 1)

    def names(self) -> list[str]:
        return self._field_names(*[f"{stat}_w{fmt_seconds(w)}" for w in self.windows_s
                                   for stat in ("count_log1p", "mean", "std")])

    def state_spec(self):
        nw, b, v = len(self.windows_s), self.buckets, len(self.fields)
        return {"ring_id": ((nw, b), "<i8", _NEVER), "ring": ((nw, b, 3, v), "<f8", 0.0),
                "closed_total": ((nw, 3, v), "<f8", 0.0), "open": ((nw, 3, v), "<f8", 0.0),
                "open_id": ((nw,), "<i8", _NEVER), "ref": ((v,), "<f8", 0.0),
                "seen": ((v,), "<f8", 0.0), "t_last": ((), "<f8", np.nan)}

    def step(self, state: State, inp: RoundInputs) -> np.ndarray:
        _, obs, x0 = self.observed(inp)                                   # (V, n)
        ring_id, ring, closed, open_, open_id, ref, seen, t_last = (
            state[k] for k in ("ring_id", "ring", "closed_total", "open", "open_id", "ref",
                               "seen", "t_last"))
        n, nb = len(inp), self.buckets
        np.copyto(ref, x0, where=obs & (seen == 0))
        seen += obs
        np.fmax(t_last, inp.times, out=t_last)           # time never runs backwards for a key
        y = (x0 - ref) * obs
        bid = np.floor(t_last * self._inv_width).astype(np.int64)          # (W, n)
        moved = bid != open_id
        if moved.any():
            self._close(ring_id, ring, closed, open_, open_id, bid, *np.nonzero(moved))
        open_[:, 0] += obs
        open_[:, 1] += y
        open_[:, 2] += y * y
        tot = closed + open_                                               # (W, 3, V, n)
        cnt = tot[:, 0]
        inv = 1.0 / np.maximum(cnt, 1.0)
        mean = tot[:, 1] * inv
        var = tot[:, 2] * inv
        var -= mean * mean
        out = np.empty((len(self.fields), len(self.windows_s), 3, n))
        out[:, :, 0] = np.log1p(cnt).transpose(1, 0, 2)
        out[:, :, 1] = (mean + ref * (cnt > 0)).transpose(1, 0, 2)
        out[:, :, 2] = np.sqrt(np.maximum(var, 0.0)).transpose(1, 0, 2)
        return out.reshape(-1, n)

    def _close(self, ring_id, ring, closed, open_, open_id, bid, w, k) -> None:
        """Keys k moved to a new bucket of window w: file the open bucket into the ring, start
        an empty one, and recompute the total of the ring buckets still inside the window."""
        nb = self.buckets
        was = open_id[w, k]
        had = was != _NEVER
        wh, kh, slot = w[had], k[had], was[had] % nb
        ring[wh, slot, :, :, kh] = open_[wh, :, :, kh]
        ring_id[wh, slot, kh] = was[had]
        open_[w, :, :, k] = 0.0
        new = bid[w, k]
        open_id[w, k] = new
        live = ring_id[w, :, k] > (new - nb)[:, None]                       # (m, B)
        closed[w, :, :, k] = (ring[w, :, :, :, k] * live[:, :, None, None]).sum(axis=1)
