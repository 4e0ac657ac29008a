"""Scaling from running statistics: how many standard deviations an observation lies from the
key's earlier observations of the field (Welford mean/std before this event), clipped.

Missing values and the first two observations give 0. A change after a constant run (std 0)
gives the clip value with its sign, which is what an anomaly detector wants to see.
"""
from __future__ import annotations

import numpy as np

from ..kernels import kernels
from .base import Feature, RoundInputs, State


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
        # (a compiled loop over the keys: running_kernel.py). The standard deviation has a
        # floor relative to the mean's size (1e-9 (1 + |mean|)), so float noise on a constant
        # does not explode.
        kernels("ember_models.features.running_kernel").zscore_round(
            inp.values, self.column_index, state["n"], state["mean"], state["m2"], self.clip,
            not self.updated_elsewhere, out)
