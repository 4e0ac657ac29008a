"""Events per second for the key, from time-decayed event counts at several half-lives.

The decayed count is N <- N * 2^(-dt/h) + 1 at each event; for a steady stream with interval d
it settles at 1 / (1 - 2^(-d/h)) ~ h / (d ln 2), so N ln2 / h estimates events per second. Using
elapsed time (not event count) makes the estimate right for irregular streams, and repeated
timestamps (dt = 0) simply add up.
"""
from __future__ import annotations

import math

import numpy as np

from .base import Feature, RoundInputs, State, fmt_seconds


class EventRate(Feature):
    kind = "event_rate"
    reads = "none"
    clock_state = "t_last"

    def __init__(self, half_lives_s=(600.0, 3600.0), prefix: str = "event_rate"):
        super().__init__(prefix=prefix)
        self.half_lives_s = tuple(float(h) for h in half_lives_s)
        self._neg_inv_h = -1.0 / np.asarray(self.half_lives_s)[:, None]
        self._scale = math.log(2.0) / np.asarray(self.half_lives_s)[:, None]

    def names(self) -> list[str]:
        return [f"{self.prefix}_h{fmt_seconds(h)}" for h in self.half_lives_s]

    def state_spec(self):
        return {"n": ((len(self.half_lives_s),), "<f8", 0.0), "t_last": ((), "<f8", np.nan)}

    def step(self, state: State, inp: RoundInputs, out: np.ndarray) -> None:
        n = state["n"]
        dt, _ = self.clock(state, inp)
        n *= np.exp2(dt * self._neg_inv_h)                 # (H, n)
        n += 1.0
        out[...] = n * self._scale
