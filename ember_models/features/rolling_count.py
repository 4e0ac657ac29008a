"""Mean and standard deviation over each field's last n observations, for several n.

Exact sliding windows: a ring buffer of the last max(n) observations per key and field, with
running sums per window (add the new value, subtract the one that leaves). Values are stored
relative to a per-key reference, and every time the ring buffer wraps the sums are recomputed
from it exactly and the reference moves to the buffer's mean, so rounding never accumulates
and large offsets do not cancel. Until a field has n observations its n-window covers those seen.
"""
from __future__ import annotations

import numpy as np

from .base import Feature, RoundInputs, State


class RollingCountWindow(Feature):
    kind = "rolling_count"

    def __init__(self, fields=(), columns=(), prefix: str = "rolling_count", sizes=(8, 64)):
        super().__init__(fields, columns, prefix)
        self.sizes = tuple(sorted({int(s) for s in sizes}))
        if self.sizes[0] < 2:
            raise ValueError(f"rolling_count sizes must be >= 2, got {list(sizes)}")
        self._sizes = np.asarray(self.sizes, dtype=np.int64)
        self.capacity = self.sizes[-1]

    def names(self) -> list[str]:
        return self._field_names(*[f"{stat}_n{s}" for s in self.sizes for stat in ("mean", "std")])

    def state_spec(self):
        v, s = len(self.fields), len(self.sizes)
        return {"buf": ((v, self.capacity), "<f8", 0.0), "count": ((v,), "<i8", 0),
                "ref": ((v,), "<f8", 0.0), "sum": ((v, s), "<f8", 0.0),
                "sumsq": ((v, s), "<f8", 0.0)}

    def step(self, state: State, inp: RoundInputs) -> np.ndarray:
        _, obs, x0 = self.observed(inp)
        buf, count, ref = state["buf"], state["count"], state["ref"]
        s, ss = state["sum"], state["sumsq"]
        cap, sizes = self.capacity, self._sizes
        np.copyto(ref, x0, where=obs & (count == 0))
        y = (x0 - ref) * obs                                          # 0 where missing
        pos = count % cap                                             # (n, V) next slot
        leaving = np.take_along_axis(buf, (pos[:, :, None] - sizes) % cap, axis=2)
        leaving *= (count[:, :, None] >= sizes) & obs[:, :, None]     # only a full window sheds
        s += y[:, :, None] - leaving
        ss += (y * y)[:, :, None] - leaving * leaving
        slot = pos[:, :, None]
        kept = np.take_along_axis(buf, slot, axis=2)[:, :, 0]
        np.put_along_axis(buf, slot, np.where(obs, y, kept)[:, :, None], axis=2)
        count += obs
        wrapped = obs & (count % cap == 0)
        if wrapped.any():
            self._recompute(buf, ref, s, ss, *np.nonzero(wrapped))
        n = np.minimum(count[:, :, None], sizes).astype(np.float64)
        inv = np.where(n > 0, 1.0 / np.maximum(n, 1.0), 0.0)
        mean = s * inv
        std = np.sqrt(np.maximum(ss * inv - mean * mean, 0.0))
        mean += ref[:, :, None] * (n > 0)
        return np.stack([mean, std], axis=3).reshape(len(inp), -1)

    def _recompute(self, buf, ref, s, ss, rows, cols) -> None:
        # The buffer just wrapped: slots 0..cap-1 hold the last `cap` values, oldest first.
        b = buf[rows, cols]                                           # (m, cap) copy
        shift = b.mean(axis=1)
        b -= shift[:, None]
        ref[rows, cols] += shift
        buf[rows, cols] = b
        for j, size in enumerate(self.sizes):
            tail = b[:, self.capacity - size:]
            s[rows, cols, j] = tail.sum(axis=1)
            ss[rows, cols, j] = (tail * tail).sum(axis=1)
