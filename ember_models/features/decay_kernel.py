"""``Ewma.step`` for one round as a compiled loop over keys (numba), given the round's decay
factors.

As NumPy array calls the feature cost a fixed ~28 µs a round (the largest of the per-field
features after the categorical one); here one call. The decay factors ``2^(-dt/h)`` stay one
NumPy call (``np.exp2``: its SIMD loop rounds differently from the C library's ``exp2`` that
compiled code calls, in ~5 % of values); the rest is the array version's arithmetic, element by
element and in the same order: the same states and outputs, bit for bit.
"""
from __future__ import annotations

import math

from numba import njit


@njit(cache=True, nogil=True)
def ewma_round(x, cols, decay, w, mean, var, with_std, out):
    """x [V_all, n] values (NaN = missing); cols [V]; decay [H, n] this event's decay of the
    total weight; w, mean, var [V, H, n]; out rows (field, half-life[, mean/std])."""
    h_n = decay.shape[0]
    per = 2 if with_std else 1
    for v in range(cols.shape[0]):
        c = cols[v]
        for h in range(h_n):
            row = (v * h_n + h) * per
            for i in range(x.shape[1]):
                xv = x[c, i]
                o = 1.0 if xv == xv else 0.0
                ww = w[v, h, i] * decay[h, i]
                ww += o
                w[v, h, i] = ww
                alpha = o / (ww + (1.0 - o))    # 1/W where observed, 0 where missing
                d = (xv if xv == xv else 0.0) - mean[v, h, i]
                ad = alpha * d
                mu = mean[v, h, i] + ad
                mean[v, h, i] = mu
                ad *= d
                s2 = var[v, h, i] + ad
                s2 *= 1.0 - alpha
                var[v, h, i] = s2
                out[row, i] = mu
                if with_std:
                    out[row + 1, i] = math.sqrt(s2)
