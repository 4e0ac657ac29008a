"""``HashedCategorical.step`` for one round as a compiled loop over keys (numba).

As NumPy array calls (a scatter of the one-hot, gathers and scatters of the keys' bucket
counts at flat positions, cached index arrays) the feature cost a fixed ~40 µs a round, the
largest of the default features; here one call. Same arithmetic, element by element: the
same states and outputs, bit for bit.
"""
from __future__ import annotations

from numba import njit


@njit(cache=True, nogil=True)
def hashed_round(h, cols, buckets, novelty, counts, total, out):
    """h [C_all, n] stable hashes (>= 0; -1 = missing); cols [C]; counts [C, B, n] and
    total [C, n] (unused without ``novelty``); out rows (field, bucket[, novelty]) — every row
    written (the engine's buffer holds the last round's numbers)."""
    width = buckets + (1 if novelty else 0)
    n = h.shape[1]
    for k in range(cols.shape[0]):
        c = cols[k]
        for j in range(width):
            for i in range(n):
                out[k * width + j, i] = 0.0
        for i in range(n):
            hv = h[c, i]
            present = hv >= 0
            b = hv % buckets if present else 0
            if present:
                out[k * width + b, i] = 1.0
            if novelty:
                pf = 1.0 if present else 0.0
                seen = counts[k, b, i]
                tot = total[k, i]
                share = seen / (tot if tot >= 1.0 else 1.0)    # 0 while the total is 0
                out[k * width + buckets, i] = (1.0 - share) * pf
                counts[k, b, i] = seen + pf
                total[k, i] = tot + pf
