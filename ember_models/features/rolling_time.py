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

from .base import Feature, RoundInputs, State, flat_view, fmt_seconds

_NEVER = np.iinfo(np.int64).min // 2


class RollingTimeWindow(Feature):
    kind = "rolling_time"

    def __init__(self, fields=(), columns=(), prefix: str = "rolling_time",
                 windows_s=(3600.0,), buckets: int = 6):
        super().__init__(fields, columns, prefix)
        self.windows_s = tuple(sorted({float(w) for w in windows_s}))
        self.buckets = int(buckets)
        self._inv_width = (self.buckets / np.asarray(self.windows_s))[:, None]   # (W, 1)
        self._cell_cache: dict = {}

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

    def step(self, state: State, inp: RoundInputs) -> np.ndarray:
        _, obs, x0, obsf = self.observed(inp)                            # (V, n)
        closed, open_, open_id, ref, seen, t_last = (
            state[k] for k in ("closed_total", "open", "open_id", "ref", "seen", "t_last"))
        n = len(inp)
        full = self.complete(inp)            # every value observed: no masking needed
        np.copyto(ref, x0, where=(seen == 0) if full else obs & (seen == 0))
        seen += obsf
        np.fmax(t_last, inp.times, out=t_last)           # time never runs backwards for a key
        y = x0 - ref if full else (x0 - ref) * obsf
        bid = np.floor(t_last * self._inv_width).astype(np.int64)          # (W, n)
        moved = bid != open_id
        if moved.any():
            self._close(state, bid, *np.nonzero(moved))
        open_[:, 0] += obsf
        open_[:, 1] += y
        open_[:, 2] += y * y
        tot = closed + open_                                               # (W, 3, V, n)
        out = np.empty_like(tot)
        cnt = tot[:, 0]
        np.log1p(cnt, out=out[:, 0])
        # every key was just observed in every field: no window is empty (count >= 1)
        inv = 1.0 / cnt if full else 1.0 / np.maximum(cnt, 1.0)
        mean = np.multiply(tot[:, 1], inv, out=out[:, 1])
        var = tot[:, 2] * inv
        var -= mean * mean
        np.sqrt(np.maximum(var, 0.0, out=var), out=out[:, 2])
        mean += ref if full else ref * (cnt > 0)        # an empty window's mean is 0
        return out.reshape(-1, n)

    def _close(self, state: State, bid, w, k) -> None:
        """Keys k moved to a new bucket of window w: file the open bucket into the ring, start
        an empty one, and recompute the total of the ring buckets still inside the window."""
        nb, v = self.buckets, len(self.fields)
        ring_flat, (rk, rw, rb, rc, rv) = flat_view(state, "ring")        # (n, W, B, 3, V)
        id_flat, (ik, iw, ib) = flat_view(state, "ring_id")                # (n, W, B)
        open_flat, (ow, oc, ov, ok) = flat_view(state, "open")            # (W, 3, V, n)
        tot_flat, _ = flat_view(state, "closed_total")                    # same layout as open
        open_id = state["open_id"]
        open_cells, cells3 = self._cells(oc, ov, rc, rv)
        if len(self.windows_s) == 1:         # w is all 0: skip its index arithmetic
            was = np.take(open_id[0], k)
            new = np.take(bid[0], k)
            np.put(open_id[0], k, new)
            at_open = (k * ok)[:, None] + open_cells                      # (m, 3V)
            ring_key = k * rk
            id_key = k * ik
            rows = k
        else:
            was = open_id[w, k]
            new = bid[w, k]
            open_id[w, k] = new
            at_open = (w * ow + k * ok)[:, None] + open_cells             # (m, 3V)
            ring_key = w * rw + k * rk                                    # (m,)
            id_key = w * iw + k * ik
            rows = k * len(self.windows_s) + w
        bucket = np.take(open_flat, at_open)
        had = was != _NEVER
        slot = was % nb
        # File the open bucket (keys that had one) into its ring slot.
        if had.all():                        # the usual case: skip the selections
            np.put(ring_flat, (ring_key + slot * rb)[:, None] + cells3, bucket)
            np.put(id_flat, id_key + slot * ib, was)
        else:
            np.put(ring_flat, (ring_key + slot * rb)[had, None] + cells3, bucket[had])
            np.put(id_flat, (id_key + slot * ib)[had], was[had])
        np.put(open_flat, at_open, 0.0)
        # One (key, window)'s buckets are one block of the key-first arrays: gather whole
        # blocks by row (a contiguous copy of a strided view first, which only a caller
        # passing such a view pays for; these are reads)
        ids = np.ascontiguousarray(state["ring_id"]).reshape(-1, nb)
        live = np.take(ids, rows, axis=0) > (new - nb)[:, None]
        ring = np.take(np.ascontiguousarray(state["ring"]).reshape(-1, nb, 3 * v), rows,
                       axis=0)                                            # (m, B, 3V)
        np.put(tot_flat, at_open, np.einsum("mb,mbc->mc", live.astype(np.float64), ring))

    def _cells(self, oc, ov, rc, rv):
        """Offsets of one bucket's 3V numbers in the open array and in a ring block (cached:
        they depend on the number of keys only through the open array's strides)."""
        key = (oc, ov, rc, rv)
        hit = self._cell_cache.get(key)
        if hit is None:
            v = len(self.fields)
            hit = self._cell_cache[key] = (
                (np.arange(3)[:, None] * oc + np.arange(v) * ov).ravel(),
                (np.arange(3)[:, None] * rc + np.arange(v) * rv).ravel())
        return hit
