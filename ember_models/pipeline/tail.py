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

Like the features, this is per-key bookkeeping rather than model math: it runs on NumPy
arrays, in place on the key rows it is given (the batch's state), on every backend, as one
compiled loop over the (key, score) pairs of a run of rounds (tail_kernel.py, numba). Only
the pairs whose value enters the kept tail — K/n of them once a key is warm — touch the K kept
values, so a step costs O(keys × scores), not O(keys × scores × K).
"""
from __future__ import annotations

import math

import numpy as np

from ..kernels import kernels

EMPTY = -1e300      # an unused slot of the kept tail (below any real value)
_NO_WEIGHTS = np.empty(0)


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

    def step(self, state: dict, raw: np.ndarray, weights: np.ndarray | None = None,
             starts: np.ndarray | None = None):
        """raw [c, S] float64 (NaN = no observation): one round of c keys, or with ``starts``
        the rounds ``starts[r]:starts[r + 1]`` in order, the i-th row of a round key i's.
        Returns (evidence [c, S] (>= 0) of each raw value against the tail before it, each
        row's largest evidence [c]), evidence times ``weights`` [S] when given; the values go
        into the tails, in place. (The per-pair loop is compiled: tail_kernel.py.)"""
        raw = np.ascontiguousarray(raw, dtype=np.float64)
        c, s = raw.shape
        if starts is None:
            starts = np.array([0, c], np.int64)
        # evidence is filled score-major, [S, c], and returned as its [c, S] view (the
        # caller's row maxima come with it, ``best``)
        evidence_t = np.empty((s, c))
        best = np.empty(c)
        kernels("ember_models.pipeline.tail_kernel").tail_rounds(
            raw, starts, state["tail_top"], state["tail_n"], state["tail_min"],
            state["tail_slot"], state["tail_sum"], float(self.k), self.memory, self._log_k,
            EMPTY, _NO_WEIGHTS if weights is None else np.asarray(weights, np.float64),
            evidence_t, best)
        return evidence_t.T, best

    def get_config(self) -> dict:
        return {"n_raw": self.n_raw, "k": self.k, "memory": self.memory}
