"""Mean and standard deviation over each field's last n observations, for several n.

Exact sliding windows: a ring buffer of the last observations per key and field (capacity: the
largest n rounded up to a power of two), with running sums per window (add the new value,
subtract the one that leaves). Values are stored relative to a per-key reference, and every time
the ring buffer wraps the sums are recomputed from it exactly and the reference moves to the
buffer's mean, so rounding never accumulates and large offsets do not cancel. Until a field has
n observations its n-window covers those seen.
"""
from __future__ import annotations

import numpy as np

from ..kernels import kernels
from .base import Feature, RoundInputs, State


class RollingCountWindow(Feature):
    kind = "rolling_count"

    def __init__(self, fields=(), columns=(), prefix: str = "rolling_count", sizes=(8, 64)):
        super().__init__(fields, columns, prefix)
        self.sizes = tuple(sorted({int(s) for s in sizes}))
        if self.sizes[0] < 2:
            raise ValueError(f"rolling_count sizes must be >= 2, got {list(sizes)}")
        self.capacity = 1 << (self.sizes[-1] - 1).bit_length()                   # power of two
        # slot p - size (mod capacity) of each window, for each next slot p: (capacity, S)
        self._back = ((np.arange(self.capacity)[:, None] - np.asarray(self.sizes))
                      & (self.capacity - 1))
        self._sizes_i = np.asarray(self.sizes, dtype=np.int64)

    def names(self) -> list[str]:
        return self._field_names(*[f"{stat}_n{s}" for s in self.sizes for stat in ("mean", "std")])

    def state_spec(self):
        v, s = len(self.fields), len(self.sizes)
        return {"buf": ((v, self.capacity), "<f8", 0.0), "count": ((v,), "<i8", 0),
                "ref": ((v,), "<f8", 0.0), "sum": ((v, s), "<f8", 0.0),
                "sumsq": ((v, s), "<f8", 0.0)}

    def step(self, state: State, inp: RoundInputs, out: np.ndarray) -> None:
        buf, count, ref = state["buf"], state["count"], state["ref"]     # (V, cap, n), (V, n)
        s, ss = state["sum"], state["sumsq"]                             # (V, S, n)
        loops = kernels("ember_models.features.rolling_count_kernel")
        least = int(count.min()) if count.size else 0
        if self.complete(inp) and least == int(count.max()):
            # Every (field, key) at the same count, every value observed (a backfill's fresh
            # keys with complete data): the next slot and the leaving ones are the same rows
            # of the buffer for all of them, read and written as rows, no positions.
            x0 = self.observed(inp)[2]
            if least == 0:                   # every field's first observation: its reference
                np.copyto(ref, x0)
            self._step_aligned(buf, count, ref, s, ss, least & (self.capacity - 1),
                               (x0 - ref)[:, None, :])
        else:
            # each (field, key) at its own slot, buffers that wrap recentred: a compiled loop
            loops.rolling_count_any(inp.values, self.column_index, buf, count, ref, s, ss,
                                    self._sizes_i)
        loops.rolling_count_outputs(s, ss, count, ref, self._sizes_i, out)

    def _step_aligned(self, buf, count, ref, s, ss, pos: int, y3) -> None:
        """The window update when every count is the same: slot `pos` next for all."""
        leaving = np.take(buf, self._back[pos], axis=1)                  # (V, S, n)
        s += y3 - leaving
        ss += y3 * y3 - leaving * leaving
        buf[:, pos] = y3[:, 0]
        count += 1
        if pos == self.capacity - 1:         # every buffer wrapped
            self._recompute_all(buf, ref, s, ss)

    def _recompute_all(self, buf, ref, s, ss) -> None:
        """Every (field, key) of the round just wrapped (aligned counts): slots 0..cap-1 hold
        their last `cap` values, oldest first. Recentre them on their mean and recompute the
        sums, the (V, cap, n) buffer as (V*n, cap) rows by one transposing copy."""
        v, cap, n = buf.shape
        b = buf.transpose(0, 2, 1).reshape(-1, cap)                      # (V*n, cap) copy
        shift = self._recentre(b)
        ref += shift.reshape(v, n)
        buf[...] = b.reshape(v, n, cap).transpose(0, 2, 1)
        for j, (total, squares) in enumerate(self._sums(b)):
            s[:, j] = total.reshape(v, n)
            ss[:, j] = squares.reshape(v, n)

    def _recentre(self, b: np.ndarray) -> np.ndarray:
        """Subtract each row's mean from the rows of b in place; return the means. (What
        b.mean(axis=1) computes, a sum then / count, without np.mean's ~10 us of Python-level
        overhead.)"""
        shift = np.add.reduce(b, axis=1)
        shift /= self.capacity
        b -= shift[:, None]
        return shift

    def _sums(self, b: np.ndarray):
        """(sum, sum of squares) of each row's last `size` values, for each window size."""
        for size in self.sizes:
            tail = b[:, self.capacity - size:]
            yield np.add.reduce(tail, axis=1), np.add.reduce(tail * tail, axis=1)
