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

State per key and raw score: K floats and one count. Vectorised over keys and scores.
"""
from __future__ import annotations

import math

from .. import ops

EMPTY = -1e300      # an unused slot of the kept tail (below any real value)
_LN10 = math.log(10.0)


class TailEvidence:
    def __init__(self, n_raw: int, k: int = 32, memory: float = 20000.0):
        if k < 2:
            raise ValueError(f"tail size k must be >= 2, got {k}")
        self.n_raw, self.k, self.memory = int(n_raw), int(k), float(memory)

    def layout(self) -> dict:
        return {"tail_top": ((self.n_raw, self.k), EMPTY), "tail_n": ((self.n_raw,), 0.0)}

    def step(self, state: dict, raw):
        """raw [n, S] (NaN = no observation). Returns evidence [n, S] (>= 0) of each raw value
        against the tail before it, then adds the value to the tail (``state`` updated)."""
        top, count = state["tail_top"], state["tail_n"]
        seen = ops.isfinite(raw)
        r = ops.where(seen, raw, ops.full(ops.shape(raw), EMPTY, "float64"))
        u = ops.min(top, axis=2)
        beta = ops.mean(top, axis=2) - u
        beta = ops.maximum(beta, 1e-9 * (ops.abs(u) + 1e-12))
        full = count >= float(self.k)
        n_eff = ops.maximum(ops.minimum(count, self.memory), float(self.k))
        x = ops.log(n_eff / self.k) / _LN10 + (r - u) / (beta * _LN10)
        evidence = ops.where(full & seen & (r > u), x, ops.zeros_like(x))
        # the new value replaces the smallest kept one if it is larger
        slot = ops.argmin(top, axis=2)
        k_idx = ops.reshape(ops.arange(self.k), (1, 1, self.k))
        replace = ops.equal(k_idx, ops.expand_dims(slot, 2)) & ops.expand_dims(r > u, 2)
        state["tail_top"] = ops.where(replace, ops.expand_dims(r, 2), top)
        state["tail_n"] = count + ops.astype(seen, "float64")
        return evidence

    def get_config(self) -> dict:
        return {"n_raw": self.n_raw, "k": self.k, "memory": self.memory}
