"""Change of a field since its previous observation (0 for the first one and for missing values)."""
from __future__ import annotations

import numpy as np

from .base import Feature, RoundInputs, State


class Delta(Feature):
    kind = "delta"

    def names(self) -> list[str]:
        return self._field_names("")

    def state_spec(self):
        return {"last": ((len(self.fields),), "<f8", np.nan)}

    def step(self, state: State, inp: RoundInputs) -> np.ndarray:
        _, obs, x0, _ = self.observed(inp)
        last = state["last"]
        d = x0 - last
        d[~(obs & np.isfinite(last))] = 0.0
        np.copyto(last, x0, where=obs)
        return d
