"""The value with missing observations filled in, plus a missing flag.

strategy "last": the key's last observed value; "mean": the key's running mean. Before any
observation of the field the fill is 0 (the flag says so).
"""
from __future__ import annotations

import numpy as np

from ..kernels import kernels
from .base import Feature, RoundInputs, State


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
        # (a compiled loop over the keys: running_kernel.py; outputs (field, value/missing))
        fill = state["fill"]
        by_mean = self.strategy == "mean"
        kernels("ember_models.features.running_kernel").impute_round(
            inp.values, self.column_index, fill, state["n"] if by_mean else fill,
            state["m2"] if by_mean else fill, by_mean, out)
