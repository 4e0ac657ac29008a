"""Exponentially weighted mean and standard deviation with time-based decay, at several half-lives.

Each observation's weight halves every `h` seconds of elapsed time. Kept as a decayed total
weight W and the weighted mean/variance:  W <- W * 2^(-dt/h) + 1,  alpha = 1/W,
mean <- mean + alpha (x - mean),  var <- (1 - alpha) (var + alpha (x - mean)^2).
So alpha follows from the elapsed time and the half-life (irregular streams are right), the
first observation gets weight 1 (no bias towards 0), and observations with the same timestamp
are weighted equally. A missing value changes nothing; its time is covered by the next decay.
"""
from __future__ import annotations

import numpy as np

from .base import Feature, RoundInputs, State, fmt_seconds
from .running import elapsed


class Ewma(Feature):
    kind = "ewma"

    def __init__(self, fields=(), columns=(), prefix: str = "ewma",
                 half_lives_s=(600.0, 3600.0, 21600.0), std: bool = True):
        super().__init__(fields, columns, prefix)
        self.half_lives_s = tuple(float(h) for h in half_lives_s)
        self.std = bool(std)
        self._neg_inv_h = (-1.0 / np.asarray(self.half_lives_s))[None, :, None]

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
                "t_last": ((len(self.fields),), "<f8", np.nan)}

    def step(self, state: State, inp: RoundInputs) -> np.ndarray:
        _, obs, x0 = self.observed(inp)                                   # (V, n)
        w, mean, var, t_last = state["w"], state["mean"], state["var"], state["t_last"]
        decay = np.exp2(elapsed(inp.times, t_last)[:, None, :] * self._neg_inv_h)   # (V, H, n)
        obs3 = obs[:, None, :]
        np.copyto(w, w * decay + 1.0, where=obs3)
        alpha = obs3 / np.maximum(w, 1.0)                                  # 0 where missing
        d = x0[:, None, :] - mean
        ad = alpha * d
        mean += ad
        var += ad * d
        var *= 1.0 - alpha
        np.copyto(t_last, np.fmax(t_last, inp.times), where=obs)
        if not self.std:
            return mean.reshape(-1, len(inp))
        return np.stack([mean, np.sqrt(var)], axis=2).reshape(-1, len(inp))
