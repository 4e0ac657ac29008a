"""Running mean and standard deviation of all of a field's observations so far (Welford)."""
from __future__ import annotations

import numpy as np

from ..kernels import kernels
from .base import Feature, RoundInputs, State


class WelfordStats(Feature):
    kind = "welford"

    def names(self) -> list[str]:
        return self._field_names("mean", "std")

    def state_spec(self):
        v = (len(self.fields),)
        return {"n": (v, "<f8", 0.0), "mean": (v, "<f8", 0.0), "m2": (v, "<f8", 0.0)}

    def step(self, state: State, inp: RoundInputs, out: np.ndarray) -> None:
        # (a compiled loop over the keys: running_kernel.py; outputs (field, mean/std))
        kernels("ember_models.features.running_kernel").welford_round(
            inp.values, self.column_index, state["n"], state["mean"], state["m2"], out)
