"""``RollingCountWindow``'s window update at each (field, key)'s own slot, as a compiled loop
(numba).

When the keys of a round are at different counts (a streaming micro-batch, always), each
(field, key) writes its own ring slot and reads the values leaving each window from its own
positions, and every 64th value (the capacity) its buffer wraps and is recentred with its sums
recomputed exactly. As NumPy array calls that was a table of flat positions, two gathers and a
scatter per round, and gathers for the wrapped buffers (the feature: a fixed ~39 µs and ~0.35
µs per key a round, the recomputation ~47 µs in rounds with a wrap; the largest feature of a
streaming round; docs/performance.md, "Streaming", session 5). Here each (field, key) reads and writes its own slots in place. The arithmetic is the array
version's, element by element (a missing value adds its masked, zero, differences), and the
exact sums are NumPy's pairwise summation (``pairwise_sum``: the same blocks and order as
``np.add.reduce`` along a row), so the states are the same bit for bit.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def pairwise_sum(a, n, off, stride):
    """a[off], a[off + stride], … (n values) summed as ``np.add.reduce`` sums a contiguous row
    of float64 (numpy/_core/src/umath/loops_utils.h.src, ``pairwise_sum``: up to 128 values a
    block (``_block_sum``); above that the sum of the two halves, split at a multiple of 8 —
    walked here with an explicit stack: numba's cache mishandles recursive functions).
    The reduction starts from NumPy's identity, +0.0 (so a sum of -0.0s is +0.0, as NumPy's).
    Checked against np.add.reduce in tests/test_features_kernels.py."""
    if n <= 128:
        return 0.0 + _block_sum(a, n, off, stride)
    # post-order walk of NumPy's split tree: (offset, count, next child) per level, partial
    # sums on a second stack
    at = np.empty(64, np.int64)
    cnt = np.empty(64, np.int64)
    stage = np.empty(64, np.int64)
    sums = np.empty(64)
    top, k = 0, 0
    at[0], cnt[0], stage[0] = off, n, 0
    while top >= 0:
        m = cnt[top]
        if m <= 128:
            sums[k] = _block_sum(a, m, at[top], stride)
            k += 1
            top -= 1
            continue
        half = m // 2
        half -= half % 8
        if stage[top] == 0:                     # the left half first
            stage[top] = 1
            at[top + 1], cnt[top + 1], stage[top + 1] = at[top], half, 0
            top += 1
        elif stage[top] == 1:                   # then the right half
            stage[top] = 2
            at[top + 1], cnt[top + 1], stage[top + 1] = at[top] + half * stride, m - half, 0
            top += 1
        else:                                   # both done: left + right
            sums[k - 2] = sums[k - 2] + sums[k - 1]
            k -= 1
            top -= 1
    return 0.0 + sums[0]


@njit(cache=True, nogil=True)
def _block_sum(a, n, off, stride):
    """NumPy's pairwise sum of at most 128 values: below 8 a plain loop from -0.0, else eight
    accumulators, combined as ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7)), then the rest."""
    if n < 8:
        res = -0.0
        for i in range(n):
            res += a[off + i * stride]
        return res
    r0, r1 = a[off], a[off + stride]
    r2, r3 = a[off + 2 * stride], a[off + 3 * stride]
    r4, r5 = a[off + 4 * stride], a[off + 5 * stride]
    r6, r7 = a[off + 6 * stride], a[off + 7 * stride]
    i = 8
    while i < n - (n % 8):
        j = off + i * stride
        r0 += a[j]
        r1 += a[j + stride]
        r2 += a[j + 2 * stride]
        r3 += a[j + 3 * stride]
        r4 += a[j + 4 * stride]
        r5 += a[j + 5 * stride]
        r6 += a[j + 6 * stride]
        r7 += a[j + 7 * stride]
        i += 8
    res = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    while i < n:
        res += a[off + i * stride]
        i += 1
    return res


@njit(cache=True, nogil=True)
def rolling_count_any(x, cols, buf, count, ref, s, ss, sizes):
    """x [V_all, n] the round's values (NaN = missing); cols [V] the feature's fields;
    buf [V, capacity, n]; count [V, n] (int64); ref [V, n]; s, ss [V, S, n] the windows' sums
    of values relative to ``ref``; sizes [S] (int64, ascending). A field's first observation
    becomes its reference."""
    v_n, cap, n = buf.shape
    mask = cap - 1
    for v in range(v_n):
        c = cols[v]
        for i in range(n):
            xv = x[c, i]
            seen = xv == xv
            if seen and count[v, i] == 0:
                ref[v, i] = xv
            o = 1.0 if seen else 0.0
            yv = ((xv if seen else 0.0) - ref[v, i]) * o          # 0 where missing
            p = count[v, i] & mask                    # the next slot
            for j in range(sizes.shape[0]):
                # (read before the write below: a window of `capacity` values leaves slot p)
                leaving = buf[v, (p - sizes[j]) & mask, i]
                s[v, j, i] += (yv - leaving) * o
                ss[v, j, i] += (yv * yv - leaving * leaving) * o
            if not seen:
                continue
            buf[v, p, i] = yv
            count[v, i] += 1
            if p == mask:
                _recompute(buf, v, i, ref, s, ss, sizes)


@njit(cache=True, nogil=True)
def rolling_count_outputs(s, ss, count, ref, sizes, out):
    """Each window's mean and standard deviation (population) into out rows (field, size,
    mean/std): over the last ``size`` observations, or all of them while there are fewer."""
    v_n, s_n, n = s.shape
    for v in range(v_n):
        for j in range(s_n):
            size = float(sizes[j])
            row = (v * s_n + j) * 2
            for i in range(n):
                m = float(count[v, i])
                m = m if m < size else size
                inv = 1.0 / (m if m > 1.0 else 1.0)
                mean = s[v, j, i] * inv
                var = ss[v, j, i] * inv
                var -= mean * mean
                out[row + 1, i] = math.sqrt(var if var >= 0.0 else 0.0)
                # (ref is 0 until the first observation, like the sums)
                out[row, i] = mean + ref[v, i]


@njit(cache=True, nogil=True)
def _recompute(buf, v, i, ref, s, ss, sizes):
    """(field v, key i)'s buffer just wrapped: slots 0..cap-1 hold its last `cap` values,
    oldest first. Recentre them on their mean and recompute the sums (``_recentre`` and
    ``_sums`` of rolling_count.py, the same operations)."""
    cap = buf.shape[1]
    col = buf[v, :, i].copy()                         # the buffer in slot order
    shift = pairwise_sum(col, cap, 0, 1) / cap
    for q in range(cap):
        col[q] -= shift
        buf[v, q, i] = col[q]
    ref[v, i] += shift
    sq = col * col
    for j in range(sizes.shape[0]):
        size = sizes[j]
        s[v, j, i] = pairwise_sum(col, size, cap - size, 1)
        ss[v, j, i] = pairwise_sum(sq, size, cap - size, 1)
