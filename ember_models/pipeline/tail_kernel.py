"""The tail bookkeeping of a run of rounds as one compiled loop over (key, raw score) pairs
(numba).

``tail.TailEvidence.step`` is per-pair scalar logic: compare a value with its pair's kept
minimum, and only for the pairs above it (K/n of them once a key is warm, nearly all of them
while it is young) compute the evidence, put the value into the kept tail and find the new
minimum. As NumPy array calls on gathered rows of the pairs that entered that cost a fixed
~34-38 µs per round, and a row gather of K values per entering pair that missed the cache (a
1,250-key shard's tails are 2.2 MB): ~0.13-0.17 µs per event of a backfill, 423 µs a round
against 98 once warm while keys are young (rounds 32-100). Here one pass over the pairs touches each pair's row in
place. Same formulas, same order of operations, so the same kept values, counts and sums;
the evidence's log10 is the C library's (NumPy's SIMD one may differ by an ulp).
"""
from __future__ import annotations

import math

from numba import njit

_LN10 = math.log(10.0)


@njit(cache=True, nogil=True)
def tail_rounds(raw, starts, top, count, tmin, slot, total, k, memory, log_k, empty, weights,
                evidence_t, best):
    """Rounds in order, in place on the tails: raw [c, S] (NaN = no observation), round r its
    rows ``starts[r]:starts[r + 1]``, the i-th of them key i's; top [keys, S, K]; count, tmin,
    slot, total [keys, S] (float64, slot holds an integer); weights [S] or an empty array (no
    weighting); k = float(K). Fills evidence_t [S, c] (zero where a value did not enter a full
    tail) and best [c] (the row maxima of the evidence, NaN-propagating like ``max``)."""
    for r in range(starts.shape[0] - 1):
        s0 = starts[r]
        for i in range(starts[r + 1] - s0):
            best[s0 + i] = _pair_row(raw, s0 + i, i, top, count, tmin, slot, total, k, memory,
                                     log_k, empty, weights, evidence_t)


@njit(cache=True, nogil=True, inline="always")
def _pair_row(raw, p, i, top, count, tmin, slot, total, k, memory, log_k, empty, weights,
              evidence_t):
    """Row p of raw (an event of key i) against and into key i's tails; its largest evidence."""
    s = raw.shape[1]
    kn = top.shape[2]
    weighted = weights.shape[0] > 0
    b = 0.0
    for j in range(s):
        r = raw[p, j]
        n_before = count[i, j]
        if math.isfinite(r):
            count[i, j] = n_before + 1.0
        old = tmin[i, j]
        if not r > old:             # NaN compares False: no observation, nothing enters
            evidence_t[j, p] = 0.0
            continue
        ev = 0.0
        if n_before >= k:           # a full tail: the value's evidence against it
            x = total[i, j] / k - old
            y = 1e-9 * (abs(old) + 1e-12)
            beta = x if (x >= y or x != x) else y          # np.maximum: NaN wins
            ev = (math.log10(min(n_before, memory)) - log_k) + (r - old) / (beta * _LN10)
            if weighted:
                ev *= weights[j]
        evidence_t[j, p] = ev
        if ev > b or ev != ev:
            b = ev
        # the value evicts the minimum (its slot); the sum of the real kept values moves
        at = int(slot[i, j])
        row = top[i, j]
        row[at] = r
        total[i, j] += (r - old) if old > empty else r
        # A tail still filling (min EMPTY) took the value into its first empty slot; if the
        # next slot is empty too it is the new first minimum: no search.
        if old == empty and at + 1 < kn and row[at + 1] == empty:
            slot[i, j] = at + 1
            continue
        m, a = row[0], 0            # the first minimum (np.argmin's tie rule)
        for q in range(1, kn):
            if row[q] < m:
                m, a = row[q], q
        tmin[i, j] = m
        slot[i, j] = a
    return b
