"""The per-field running features' ``step`` for one round as compiled loops over keys (numba):
Welford statistics, z-scores, imputation, deltas and rates.

As NumPy array calls each of these cost a fixed 7-23 µs a round (10-20 small calls: masks,
temporaries, selects), most of a streaming micro-batch's rounds, which hold a few dozen to a
few hundred keys each (docs/performance.md, "Session 10"). Here each is one call. The
arithmetic is the array version's, element by element and in the same order, masked the same
way (a missing value multiplies by 0.0 where the array version did): the same states and
outputs, bit for bit (checked against the NumPy version when these loops replaced it).

Values arrive as the round's (V, n) block with NaN for missing (the engine turned ±inf into
NaN); ``cols`` picks the feature's fields. Outputs are written into the engine's float32 round
buffer, rounded once from float64 as the array assignment did.
"""
from __future__ import annotations

import math

from numba import njit


@njit(inline="always")
def _welford_at(n, mean, m2, v, i, x0, o):
    """Welford's update of field v of key i with x0 where o (1.0 observed, 0.0 missing)."""
    cnt = n[v, i] + o
    n[v, i] = cnt
    delta = x0 - mean[v, i]
    step = o / (cnt if cnt >= 1.0 else 1.0)
    step *= delta
    mu = mean[v, i] + step
    mean[v, i] = mu
    delta *= x0 - mu
    delta *= o
    m2[v, i] += delta


@njit(inline="always")
def _std(n, m2, v, i):
    """Population standard deviation from Welford state (0 before two observations)."""
    var = m2[v, i]
    var = var if var >= 0.0 else 0.0
    c = n[v, i]
    var /= c if c >= 1.0 else 1.0
    return math.sqrt(var)


@njit(cache=True, nogil=True)
def welford_round(x, cols, n, mean, m2, out):
    """x [V_all, n_keys] values; cols [V] the fields; n, mean, m2 [V, n_keys]; out rows
    (field, mean/std)."""
    for v in range(cols.shape[0]):
        c = cols[v]
        for i in range(x.shape[1]):
            xv = x[c, i]
            o = 1.0 if xv == xv else 0.0
            _welford_at(n, mean, m2, v, i, xv if xv == xv else 0.0, o)
            out[2 * v, i] = mean[v, i]
            out[2 * v + 1, i] = _std(n, m2, v, i)


@njit(cache=True, nogil=True)
def zscore_round(x, cols, n, mean, m2, clip, update, out):
    """The z-score of each value against the key's Welford state before it, clipped, 0 for
    missing values and the first two observations; then the Welford update unless ``update``
    is False (a Welford feature of the same fields updates the shared state after)."""
    for v in range(cols.shape[0]):
        c = cols[v]
        for i in range(x.shape[1]):
            xv = x[c, i]
            o = 1.0 if xv == xv else 0.0
            x0 = xv if xv == xv else 0.0
            floor = 1e-9 * (1.0 + abs(mean[v, i]))
            sd = _std(n, m2, v, i)
            scale = sd if sd >= floor else floor
            z = x0 - mean[v, i]
            z /= scale
            z = -clip if z < -clip else (clip if z > clip else z)
            z *= o * (1.0 if n[v, i] >= 2.0 else 0.0)
            out[v, i] = z
            if update:
                _welford_at(n, mean, m2, v, i, x0, o)


@njit(cache=True, nogil=True)
def impute_round(x, cols, fill, n, m2, by_mean, out):
    """The value, or the key's fill value where it is missing, and a missing flag; then the
    fill moves on: the last observed value, or (``by_mean``) the running mean (Welford, with
    ``n`` and ``m2``; unused otherwise)."""
    for v in range(cols.shape[0]):
        c = cols[v]
        for i in range(x.shape[1]):
            xv = x[c, i]
            o = 1.0 if xv == xv else 0.0
            out[2 * v, i] = xv if xv == xv else fill[v, i]
            out[2 * v + 1, i] = 1.0 - o
            if by_mean:
                _welford_at(n, fill, m2, v, i, xv if xv == xv else 0.0, o)
            elif xv == xv:
                fill[v, i] = xv


@njit(cache=True, nogil=True)
def delta_round(x, cols, last, out):
    """The change since the key's last observed value of the field (0 when either is missing)."""
    for v in range(cols.shape[0]):
        c = cols[v]
        for i in range(x.shape[1]):
            xv = x[c, i]
            was = last[v, i]
            out[v, i] = xv - was if (xv == xv and math.isfinite(was)) else 0.0
            if xv == xv:
                last[v, i] = xv


@njit(cache=True, nogil=True)
def rate_round(x, cols, t, last, t_last, rate, out):
    """Change per second since the key's last observed value of the field (kept while time does
    not move; 0 for missing values)."""
    for v in range(cols.shape[0]):
        c = cols[v]
        for i in range(x.shape[1]):
            xv = x[c, i]
            o = 1.0 if xv == xv else 0.0
            tl = t_last[v, i]
            dt = t[i] - tl                      # NaN while never observed: not moving
            if xv == xv:
                if dt > 0.0:
                    rate[v, i] = (xv - last[v, i]) / dt
                last[v, i] = xv
                t_last[v, i] = t[i] if (tl != tl or t[i] > tl) else tl      # fmax
            out[v, i] = rate[v, i] * o
