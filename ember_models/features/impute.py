"""The value with missing observations filled in, plus a missing flag.

strategy "last": the key's last observed value; "mean": the key's running mean. Before any
observation of the field the fill is 0 (the flag says so).
"""
from __future__ import annotations

import numpy as np

from .base import Feature, RoundInputs, State
from .running import welford_update


class Impute(Feature):
    kind = "impute"

    def __init__(self, fields=(), columns=(), prefix: str = "impute", strategy: str = "last"):
        super().__init__(fields, columns, prefix)
        if strategy not in ("last", "mean"):
            raise ValueError(f"impute strategy must be 'last' or 'mean', not {strategy!r}")
        self.strategy = strategy

    def names(self) -> list[str]:
        return self._field_names("value", "missing")

    def state_spec(self):
        v = (len(self.fields),)
        if self.strategy == "last":
            return {"fill": (v, "<f8", 0.0)}
        return {"n": (v, "<f8", 0.0), "fill": (v, "<f8", 0.0), "m2": (v, "<f8", 0.0)}

    def step(self, state: State, inp: RoundInputs, out: np.ndarray) -> None:
        _, obs, x0, obsf = self.observed(inp)
        fill = state["fill"]
        out = out.reshape(len(self.fields), 2, -1, copy=False)        # (field, value/missing, n)
        full = self.complete(inp)
        if full:                             # every value observed: the value itself, flag 0
            out[:, 0] = x0
            out[:, 1] = 0.0
        else:
            out[:, 0] = np.where(obs, x0, fill)
            np.subtract(1.0, obsf, out=out[:, 1])
        if self.strategy == "last":
            np.copyto(fill, x0, where=True if full else obs)
        else:
            welford_update(state["n"], fill, state["m2"], x0, obsf, full)
