"""Exponentially weighted mean and standard deviation with time-based decay, at several half-lives.

Each observation's weight halves every `h` seconds of elapsed time. Kept as a decayed total
weight W and the weighted mean/variance:  W <- W * 2^(-dt/h) + 1,  alpha = 1/W,
mean <- mean + alpha (x - mean),  var <- (1 - alpha) (var + alpha (x - mean)^2).
So alpha follows from the elapsed time and the half-life (irregular streams are right), the
first observation gets weight 1 (no bias towards 0), and observations with the same timestamp
are weighted equally. A missing value leaves mean and var unchanged; W decays at every event of
the key (decay multiplies, so decaying in steps equals decaying once over the whole gap), which
lets all fields share one exp2 per half-life.
"""
from __future__ import annotations

import numpy as np

from ..kernels import kernels
from .base import Feature, RoundInputs, State, fmt_seconds


class Ewma(Feature):
    kind = "ewma"
    clock_state = "t_last"

    def __init__(self, fields=(), columns=(), prefix: str = "ewma",
                 half_lives_s=(600.0, 3600.0, 21600.0), std: bool = True):
        super().__init__(fields, columns, prefix)
        self.half_lives_s = tuple(float(h) for h in half_lives_s)
        self.std = bool(std)
        self._neg_inv_h = (-1.0 / np.asarray(self.half_lives_s))[:, None]         # (H, 1)

    def names(self) -> list[str]:
        parts = []
        for h in self.half_lives_s:
            parts.append(f"mean_h{fmt_seconds(h)}")
            if self.std:
                parts.append(f"std_h{fmt_seconds(h)}")
        return self._field_names(*parts)

    def state_spec(self):
        vh = (len(self.fields), len(self.half_lives_s))
        return {"w": (vh, "<f8", 0.0), "mean": (vh, "<f8", 0.0), "var": (vh, "<f8", 0.0),
                "t_last": ((), "<f8", np.nan)}

    def step(self, state: State, inp: RoundInputs, out: np.ndarray) -> None:
        dt, _ = self.clock(state, inp)
        decay = np.exp2(dt * self._neg_inv_h)                            # (H, n), shared by V
        # (the rest is a compiled loop over the keys: decay_kernel.py; outputs (field,
        # half-life[, mean/std]))
        kernels("ember_models.features.decay_kernel").ewma_round(
            inp.values, self.column_index, decay, state["w"], state["mean"], state["var"],
            self.std, out)
