"""Cyclical encodings of the event time: sin/cos of the phase within the day (period 24 h) and
within the week (period 7 days, phase 0 at Monday 00:00). Stateless.

Time is epoch seconds in UTC; `utc_offset_hours` shifts to a local clock (no daylight saving).
"""
from __future__ import annotations

import numpy as np

from .base import Feature, RoundInputs, State

DAY_S = 24 * 3600.0
WEEK_S = 7 * DAY_S
# 1970-01-01 was a Thursday: add 3 days so phase 0 of the week is Monday 00:00.
_WEEK_SHIFT_S = 3 * DAY_S
PERIODS = {"day": (DAY_S, 0.0), "week": (WEEK_S, _WEEK_SHIFT_S)}


class CyclicalTime(Feature):
    kind = "cyclical_time"
    reads = "none"

    def __init__(self, periods=("day", "week"), utc_offset_hours: float = 0.0,
                 prefix: str = "cyclical_time"):
        super().__init__(prefix=prefix)
        unknown = [p for p in periods if p not in PERIODS]
        if unknown:
            raise ValueError(f"cyclical_time periods must be among {sorted(PERIODS)}, not {unknown}")
        self.periods = tuple(periods)
        self.offset_s = float(utc_offset_hours) * 3600.0

    def names(self) -> list[str]:
        return [f"{self.prefix}_{p}_{f}" for p in self.periods for f in ("sin", "cos")]

    def state_spec(self):
        return {}

    def step(self, state: State, inp: RoundInputs, out: np.ndarray) -> None:
        for i, p in enumerate(self.periods):
            period, shift = PERIODS[p]
            # The fraction of the period first, so the angle is small and sin/cos stay precise
            # (t / period ~ 2e4 cycles: the fraction keeps ~1e-12 of a cycle).
            cycles = (inp.times + (self.offset_s + shift)) * (1.0 / period)
            # sin/cos in float32 (the output's precision; NumPy's float32 sin/cos are vectorised).
            angle = ((cycles - np.floor(cycles)) * (2.0 * np.pi)).astype(np.float32)
            np.sin(angle, out=out[2 * i])
            np.cos(angle, out=out[2 * i + 1])
