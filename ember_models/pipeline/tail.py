"""Tail evidence: how improbable a raw anomaly score is against the key's own history.

A raw score (a value, a prediction error, an RBM free energy) means different things on
different streams; what is comparable is how rare it is *for that stream*. Each key keeps, per
raw score, the K largest values it has seen (a peaks-over-threshold sample) and a count n.
For a new raw value r above the smallest kept one u, the tail is modelled as exponential
(the peaks-over-threshold approximation, β = mean excess of the kept values over u):

    P(R >= r) ≈ (K / n) · exp(-(r - u) / β),   evidence x = -log10 P  (0 when r <= u)

so a new record of a stream with n events scores ≈ log10(n / K) plus how far beyond the
kept tail it goes, in decades. n is capped at ``memory`` events, so a stream that has run
for months does not become impossible to surprise, nor much easier to.

Like the features, this is per-key bookkeeping rather than model math: it runs in NumPy, in
place on the key rows it is given (views of the batch's state), on every backend. Only the
(key, score) pairs whose value enters the kept tail — K/n of them once a key is warm — touch
the K kept values, so a step costs O(keys × scores), not O(keys × scores × K).
"""
from __future__ import annotations

import math

import numpy as np

EMPTY = -1e300      # an unused slot of the kept tail (below any real value)
_LN10 = math.log(10.0)


class TailEvidence:
    NAMES = ("tail_top", "tail_n", "tail_min", "tail_slot", "tail_sum")

    def __init__(self, n_raw: int, k: int = 32, memory: float = 20000.0):
        if k < 2:
            raise ValueError(f"tail size k must be >= 2, got {k}")
        self.n_raw, self.k, self.memory = int(n_raw), int(k), float(memory)
        self._log_k = math.log10(self.k)

    def layout(self) -> dict:
        s = self.n_raw
        # top: the kept values; min/slot: the smallest one and where it is; sum: of the kept
        # values that are real (the mean excess needs it once the tail is full)
        return {"tail_top": ((s, self.k), EMPTY), "tail_n": ((s,), 0.0),
                "tail_min": ((s,), EMPTY), "tail_slot": ((s,), 0.0), "tail_sum": ((s,), 0.0)}

    def step(self, state: dict, raw: np.ndarray, weights: np.ndarray | None = None):
        """raw [n, S] float64 (NaN = no observation). Returns (evidence [n, S] (>= 0) of each
        raw value against the tail before it, each row's largest evidence [n]), evidence
        times ``weights`` [S] when given; then adds the values to the tails, in place."""
        top, count = state["tail_top"], state["tail_n"]
        u, total = state["tail_min"], state["tail_sum"]
        # Only the pairs above their kept tail have evidence or touch the tail: once keys are
        # warm that is K/n of them, so the arithmetic runs on those alone (same formulas).
        # (np.take/np.put on flat positions: 2-3x faster than fancy indexing here; comparisons
        # with NaN are False and quiet)
        # (the method chain: np.flatnonzero's Python wrapper costs ~2 us more per call)
        flat = (raw > u).reshape(-1).nonzero()[0]
        count1 = count.reshape(-1)
        n_before = np.take(count1, flat)
        # (bool to float64 is a slow casting loop: as uint8, ~1.5x faster; same counts)
        count += np.isfinite(raw).view(np.uint8)
        n, s = raw.shape
        # evidence is filled score-major, [S, n], and returned as its [n, S] view: the row
        # maxima are then a reduction along axis 0 (contiguous rows: ~3 us for 1,250 x 7),
        # where [n, S] reduces its short rows one at a time (~50 us) and ufunc.at's time per
        # pair varied 10x with where its operands were allocated (measured: 1.7 vs 19 us for
        # the same 327 pairs, identical bytes)
        evidence_t = np.zeros((s, n))
        if not len(flat):
            return evidence_t.T, np.zeros(n)
        k = self.k
        u1, total1 = u.reshape(-1), total.reshape(-1)
        r, old = np.take(raw.reshape(-1), flat), np.take(u1, flat)
        total_before = np.take(total1, flat)
        full = n_before >= k
        n_full = np.count_nonzero(full)     # all of them once keys are warm: no selects then
        if n_full:
            # every pair above its tail, then the not-yet-full ones zeroed: fewer calls than
            # selecting the full ones first (elementwise the same formulas)
            with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
                beta = np.maximum(total_before / k - old, 1e-9 * (np.abs(old) + 1e-12))
                # (n capped at memory; the floor at k only matters for pairs zeroed below)
                ev = (np.log10(np.minimum(n_before, self.memory)) - self._log_k
                      + (r - old) / (beta * _LN10))
            if n_full < len(flat):
                ev = np.where(full, ev, 0.0)
            key, score = np.divmod(flat, s)
            if weights is not None:
                ev *= np.take(weights, score)
            np.put(evidence_t, score * n + key, ev)
        best = evidence_t.max(axis=0)
        # the kept values of the (key, score) rows: the new value evicts the min
        top1, slot1 = top.reshape(-1), state["tail_slot"].reshape(-1)
        pos = flat * k + np.take(slot1, flat).astype(np.int64)
        np.put(top1, pos, r)
        # (a tail that has counted k values holds k real ones: while it had an empty slot every
        # finite value entered it; so its min is real and the select is needed only before)
        np.put(total1, flat, total_before + (r - old if n_full == len(flat)
                                             else np.where(old > EMPTY, r - old, r)))
        if n_full < len(flat):
            # A tail with an empty slot (min EMPTY) took the value into its first empty slot
            # (the argmin: the first of the minima), so the slots before it are filled; if the
            # next slot is empty too, it is the new argmin and the min stays EMPTY — no row
            # search for the tails still filling (every finite value of a young key: ~K times
            # more pairs than once warm). Rows that filled up search as below.
            nxt = pos + 1
            filling = (old == EMPTY) & (nxt % k != 0)
            filling[filling] = np.take(top1, nxt[filling]) == EMPTY
            if filling.any():
                # (a fancy assignment: np.put casts value by value, ~10x slower here)
                slot1[flat[filling]] = nxt[filling] % k
                flat = flat[~filling]
        rows = np.take(top.reshape(-1, k), flat, axis=0)
        new_slot = np.argmin(rows, axis=1)
        # the value at the argmin (a flat take: rows.min(axis=1) reduces row by row, 3x slower)
        np.put(u1, flat, np.take(rows, np.arange(0, len(flat) * k, k) + new_slot))
        slot1[flat] = new_slot      # (np.put of int64 into float64: ~3x slower than this)
        return evidence_t.T, best

    def get_config(self) -> dict:
        return {"n_raw": self.n_raw, "k": self.k, "memory": self.memory}
