"""Change of a field since its previous observation (0 for the first one and for missing values)."""
from __future__ import annotations

import numpy as np

from ..kernels import kernels
from .base import Feature, RoundInputs, State


class Delta(Feature):
    kind = "delta"

    def names(self) -> list[str]:
        return self._field_names("")

    def state_spec(self):
        return {"last": ((len(self.fields),), "<f8", np.nan)}

    def step(self, state: State, inp: RoundInputs, out: np.ndarray) -> None:
        # (a compiled loop over the keys: running_kernel.py)
        kernels("ember_models.features.running_kernel").delta_round(
            inp.values, self.column_index, state["last"], out)
