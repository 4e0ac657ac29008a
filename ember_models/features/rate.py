"""Change of a field per second since its previous observation.

0 for the first observation and for missing values. Two observations with the same timestamp
have no defined rate: the previous rate is repeated (and the later value becomes the reference).
"""
from __future__ import annotations

import numpy as np

from ..kernels import kernels
from .base import Feature, RoundInputs, State


class Rate(Feature):
    kind = "rate"

    def names(self) -> list[str]:
        return self._field_names("per_s")

    def state_spec(self):
        v = (len(self.fields),)
        return {"last": (v, "<f8", np.nan), "t_last": (v, "<f8", np.nan), "rate": (v, "<f8", 0.0)}

    def step(self, state: State, inp: RoundInputs, out: np.ndarray) -> None:
        # (a compiled loop over the keys: running_kernel.py)
        kernels("ember_models.features.running_kernel").rate_round(
            inp.values, self.column_index, inp.times, state["last"], state["t_last"],
            state["rate"], out)
