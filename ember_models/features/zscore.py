"""Scaling from running statistics: how many standard deviations an observation lies from the
key's earlier observations of the field (Welford mean/std before this event), clipped.

Missing values and the first two observations give 0. A change after a constant run (std 0)
gives the clip value with its sign, which is what an anomaly detector wants to see.
"""
from __future__ import annotations

import numpy as np

from .base import Feature, RoundInputs, State
from .running import welford_std, welford_update


class ZScore(Feature):
    kind = "zscore"

    def __init__(self, fields=(), columns=(), prefix: str = "zscore", clip: float = 5.0):
        super().__init__(fields, columns, prefix)
        self.clip = float(clip)
        # Set by the engine when a Welford feature of the same fields updates the same count,
        # mean and M2 after this step (see FeatureEngine: the two share those arrays).
        self.updated_elsewhere = False

    def names(self) -> list[str]:
        return self._field_names("")

    def state_spec(self):
        v = (len(self.fields),)
        return {"n": (v, "<f8", 0.0), "mean": (v, "<f8", 0.0), "m2": (v, "<f8", 0.0)}

    def step(self, state: State, inp: RoundInputs, out: np.ndarray) -> None:
        _, _, x0, obsf = self.observed(inp)
        n, mean, m2 = state["n"], state["mean"], state["m2"]
        # A floor relative to the mean's size, so float noise on a constant does not explode.
        scale = np.maximum(welford_std(n, m2), 1e-9 * (1.0 + np.abs(mean)))
        z = x0 - mean
        z /= scale
        np.clip(z, -self.clip, self.clip, out=z)
        full = self.complete(inp)
        z *= (n >= 2.0) if full else obsf * (n >= 2.0)
        out[...] = z
        if not self.updated_elsewhere:
            welford_update(n, mean, m2, x0, obsf, full)
