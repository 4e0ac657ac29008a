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

    def step(self, state: State, inp: RoundInputs, out: np.ndarray) -> None:
        _, obs, x0, _ = self.observed(inp)
        last = state["last"]
        known = np.isfinite(last)
        full = self.complete(inp)
        if not full:
            known &= obs
        d = x0 - last
        np.copyto(d, 0.0, where=~known)
        out[...] = d
        np.copyto(last, x0, where=True if full else obs)
