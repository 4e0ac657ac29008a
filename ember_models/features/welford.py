"""Running mean and standard deviation of all of a field's observations so far (Welford)."""
from __future__ import annotations

import numpy as np

from .base import Feature, RoundInputs, State
from .running import welford_std, welford_update


class WelfordStats(Feature):
    kind = "welford"

    def names(self) -> list[str]:
        return self._field_names("mean", "std")

    def state_spec(self):
        v = (len(self.fields),)
        return {"n": (v, "<f8", 0.0), "mean": (v, "<f8", 0.0), "m2": (v, "<f8", 0.0)}

    def step(self, state: State, inp: RoundInputs, out: np.ndarray) -> None:
        _, _, x0, obsf = self.observed(inp)
        n, mean, m2 = state["n"], state["mean"], state["m2"]
        welford_update(n, mean, m2, x0, obsf, self.complete(inp))
        out = out.reshape(len(self.fields), 2, -1, copy=False)        # (field, mean/std, n)
        out[:, 0] = mean
        out[:, 1] = welford_std(n, m2)
