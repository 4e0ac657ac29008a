"""Number of events seen for the key."""
from __future__ import annotations

import numpy as np

from .base import Feature, RoundInputs, State


class EventCount(Feature):
    kind = "count"
    reads = "none"

    def __init__(self, log1p: bool = True, prefix: str = "count"):
        super().__init__(prefix=prefix)
        self.log1p = log1p

    def names(self) -> list[str]:
        return [f"{self.prefix}_log1p" if self.log1p else self.prefix]

    def state_spec(self):
        return {"n": ((), "<f8", 0.0)}

    def step(self, state: State, inp: RoundInputs, out: np.ndarray) -> None:
        n = state["n"]
        n += 1.0
        if self.log1p:
            out[0] = np.log1p(n)
        else:
            out[0] = n
