"""Change of a field per second since its previous observation.

0 for the first observation and for missing values. Two observations with the same timestamp
have no defined rate: the previous rate is repeated (and the later value becomes the reference).
"""
from __future__ import annotations

import numpy as np

from .base import Feature, RoundInputs, State


class Rate(Feature):
    kind = "rate"

    def names(self) -> list[str]:
        return self._field_names("per_s")

    def state_spec(self):
        v = (len(self.fields),)
        return {"last": (v, "<f8", np.nan), "t_last": (v, "<f8", np.nan), "rate": (v, "<f8", 0.0)}

    def step(self, state: State, inp: RoundInputs, out: np.ndarray) -> None:
        _, obs, x0, obsf = self.observed(inp)
        last, t_last, rate = state["last"], state["t_last"], state["rate"]
        t = inp.times
        dt = t - t_last                       # NaN where never observed
        moving = dt > 0.0                     # NaN > 0 is False
        if self.complete(inp):                # every value observed: no masks
            np.divide(x0 - last, dt, out=rate, where=moving)
            np.copyto(last, x0)
            np.fmax(t_last, t, out=t_last)
            out[...] = rate
        else:
            moving &= obs
            np.divide(x0 - last, dt, out=rate, where=moving)
            np.copyto(last, x0, where=obs)
            np.copyto(t_last, np.fmax(t_last, t), where=obs)
            out[...] = rate * obsf
