"""Seconds since the key's previous event (0 for its first event)."""
from __future__ import annotations

import numpy as np

from .base import Feature, RoundInputs, State


class TimeSinceLast(Feature):
    kind = "time_since_last"
    reads = "none"
    clock_state = "t_last"

    def __init__(self, log1p: bool = True, prefix: str = "time_since_last"):
        super().__init__(prefix=prefix)
        self.log1p = log1p

    def names(self) -> list[str]:
        return [f"{self.prefix}_log1p_s" if self.log1p else f"{self.prefix}_s"]

    def state_spec(self):
        return {"t_last": ((), "<f8", np.nan)}

    def step(self, state: State, inp: RoundInputs, out: np.ndarray) -> None:
        dt, _ = self.clock(state, inp)
        if self.log1p:
            out[0] = np.log1p(dt)
        else:
            out[0] = dt
