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
    clock_state = "t_last"

    def __init__(self, fields=(), columns=(), prefix: str = "rolling_time",
                 windows_s=(3600.0,), buckets: int = 6):
        super().__init__(fields, columns, prefix)
        self.windows_s = tuple(sorted({float(w) for w in windows_s}))
        self.buckets = int(buckets)
        self._inv_width = (self.buckets / np.asarray(self.windows_s))[:, None]   # (W, 1)

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
        _, obs, x0, obsf = self.observed(inp)                            # (V, n)
        closed, open_, open_id, ref, seen = (
            state[k] for k in ("closed_total", "open", "open_id", "ref", "seen"))
        n = len(inp)
        full = self.complete(inp)            # every value observed: no masking needed
        if not full:
            np.copyto(ref, x0, where=obs & (seen == 0))
        elif seen.size and seen.min() == 0.0:    # some field's first observation: its reference
            np.copyto(ref, x0, where=seen == 0)
        seen += 1.0 if full else obsf          # (a scalar: cheaper than a mask of 1s)
        _, t_last = self.clock(state, inp)               # time never runs backwards for a key
        y = x0 - ref if full else (x0 - ref) * obsf
        bid = np.floor(t_last * self._inv_width).astype(np.int64)          # (W, n)
        for w in range(bid.shape[0]):
            moved = (bid[w] != open_id[w]).nonzero()[0]
            if moved.size:
                self._close(state, w, moved, bid[w])
        open_[:, 0] += 1.0 if full else obsf
        open_[:, 1] += y
        open_[:, 2] += y * y
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

    def _close(self, state: State, w: int, k: np.ndarray, bid: np.ndarray) -> None:
        """Keys k moved to bucket bid[k] of window w: file the open bucket into the ring, start
        an empty one, and recompute the total of the ring buckets still inside the window."""
        nb, nw, c = self.buckets, len(self.windows_s), 3 * len(self.fields)
        open_id = state["open_id"][w]
        was = np.take(open_id, k)
        new = np.take(bid, k)
        np.put(open_id, k, new)
        # window w's (3, V, n) blocks as (3V, n) views; the ring as rows of one bucket (3V
        # numbers) and the ids as one per bucket, (key, window, slot) in C order (key first:
        # one key's buckets are one block)
        open_w = state["open"][w].reshape(c, -1, copy=False)
        tot_w = state["closed_total"][w].reshape(c, -1, copy=False)
        ring = state["ring"].reshape(-1, c, copy=False)
        ring_id = state["ring_id"].reshape(-1, copy=False)
        bucket = np.take(open_w, k, axis=1)                               # (3V, m)
        open_w[:, k] = 0.0
        rows = k if nw == 1 else k * nw + w                               # (key, window)
        at = rows * nb
        at += was % nb                                                    # the open one's slot
        # File the open bucket (keys that had one) into its ring slot.
        if was.min() > _NEVER:               # the usual case: skip the selections
            ring[at] = bucket.T
            np.put(ring_id, at, was)
        else:
            had = was != _NEVER
            ring[at[had]] = bucket.T[had]
            np.put(ring_id, at[had], was[had])
        # the (key, window)s' rings as whole rows: (m, B) ids, (m, B, 3V) buckets
        live = np.take(ring_id.reshape(-1, nb), rows, axis=0) > (new - nb)[:, None]
        blocks = np.take(ring.reshape(-1, nb, c), rows, axis=0)
        # (a float mask and keys-first output: einsum is ~2x slower with a bool operand or a
        # transposed output)
        tot_w[:, k] = np.einsum("mb,mbc->mc", live.astype(np.float64), blocks).T
