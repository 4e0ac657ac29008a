"""``RollingTimeWindow.step`` for one round as a compiled loop over keys (numba).

The feature's state is per-key bucket bookkeeping: a key that moved into a new bucket files its
open bucket into its ring and recomputes its window total from the ring's live buckets; every
key adds its event to the open bucket. As NumPy array calls that cost a fixed 41-46 µs a round
(at 32 keys; the largest of the default features) plus gathers of the moved keys' rings
(docs/performance.md, "Backfill", session 5). Here each key is one pass over its own numbers.
The arithmetic is the array version's, element by element and in the same order (the ring
total summed bucket by bucket): the same states, bit for bit.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit

from .rolling_time import _NEVER as NEVER     # an open bucket / ring slot never used


@njit(cache=True, nogil=True)
def rolling_time_round(x, cols, t_last, inv_width, ring_id, ring, closed, open_, open_id, ref, seen):
    """x [V_all, n] values (NaN = missing), cols [V] the feature's fields; t_last [n] the
    keys' clocks after this event; inv_width [W] buckets per second; ring_id [n, W, B] (int64)
    and ring [n, W, B, 3, V] (key first); closed, open_ [W, 3, V, n]; open_id [W, n] (int64);
    ref, seen [V, n]. The state only: the outputs are a second pass (``rolling_time_outputs``;
    with them in this loop, calling the C library's log1p, the feature took 101 µs a round at
    1,250 keys against 72 with NumPy's outputs)."""
    v_n, n = cols.shape[0], x.shape[1]
    w_n, b_n = ring_id.shape[1], ring_id.shape[2]
    # (passes over the keys, each along the keys' axis of the arrays it touches: streaming
    # access: 13.7 against 32.8 µs at 1,250 keys for a pass per key over all its numbers)
    for v in range(v_n):
        for i in range(n):
            xv = x[cols[v], i]
            if math.isfinite(xv):       # the field's first observation: its reference
                if seen[v, i] == 0.0:
                    ref[v, i] = xv
                seen[v, i] += 1.0
    for w in range(w_n):
        for i in range(n):
            bid = np.int64(math.floor(t_last[i] * inv_width[w]))
            was = open_id[w, i]
            if bid == was:
                continue
            # file the open bucket into its ring slot, start an empty one, recompute the total
            # of the ring's buckets still inside the window
            open_id[w, i] = bid
            if was != NEVER:
                at = was % b_n
                ring_id[i, w, at] = was
                for c in range(3):
                    for v in range(v_n):
                        ring[i, w, at, c, v] = open_[w, c, v, i]
            for c in range(3):
                for v in range(v_n):
                    open_[w, c, v, i] = 0.0
                    acc = 0.0
                    for b in range(b_n):
                        live = 1.0 if ring_id[i, w, b] > bid - b_n else 0.0
                        acc += live * ring[i, w, b, c, v]
                    closed[w, c, v, i] = acc
        for v in range(v_n):
            for i in range(n):
                xv = x[cols[v], i]
                obs = 1.0 if math.isfinite(xv) else 0.0
                y = ((xv if obs else 0.0) - ref[v, i]) * obs
                open_[w, 0, v, i] += obs
                open_[w, 1, v, i] += y
                open_[w, 2, v, i] += y * y


@njit(cache=True, nogil=True)
def rolling_time_outputs(closed, open_, ref, out):
    """Each window's mean and standard deviation (population; 0 for an empty window) into out
    rows (window, stat, field), stat 1 the mean and 2 the std (row 0, log1p of the count, is
    NumPy's: its SIMD log1p rounds differently from the C library's). closed, open_
    [W, 3, V, n]: count, sum and sum of squares relative to ``ref`` [V, n]."""
    w_n, _, v_n, n = closed.shape
    for w in range(w_n):
        for v in range(v_n):
            for i in range(n):
                cnt = closed[w, 0, v, i] + open_[w, 0, v, i]
                inv = 1.0 / (cnt if cnt >= 1.0 else 1.0)
                mean = (closed[w, 1, v, i] + open_[w, 1, v, i]) * inv
                var = (closed[w, 2, v, i] + open_[w, 2, v, i]) * inv
                var -= mean * mean
                out[(w * 3 + 2) * v_n + v, i] = math.sqrt(var if var >= 0.0 else 0.0)
                # an empty window's mean is 0
                out[(w * 3 + 1) * v_n + v, i] = mean + ref[v, i] * (1.0 if cnt > 0.0 else 0.0)
