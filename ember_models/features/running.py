"""Running-statistics updates shared by several features (one definition of each)."""
from __future__ import annotations

import numpy as np


def welford_update(n: np.ndarray, mean: np.ndarray, m2: np.ndarray, x0: np.ndarray,
                   obsf: np.ndarray, complete: bool = False) -> None:
    """Welford's update, in place, of count `n`, `mean` and sum of squared deviations `m2` with
    the values `x0` where the float mask `obsf` is 1 (entries where it is 0 are unchanged).
    `complete`: obsf is all 1 (then the masking is skipped; same results)."""
    n += 1.0 if complete else obsf      # (a scalar: cheaper than a mask of 1s)
    delta = x0 - mean
    if complete:
        step = 1.0 / n                   # n >= 1
    else:
        # obsf / max(n, 1) is 0 where nothing was observed, 1/n where something was.
        step = obsf / np.maximum(n, 1.0)
    step *= delta
    mean += step
    delta *= x0 - mean
    if not complete:
        delta *= obsf
    m2 += delta


def welford_std(n: np.ndarray, m2: np.ndarray) -> np.ndarray:
    """Population standard deviation from Welford state (0 before two observations)."""
    var = np.maximum(m2, 0.0)
    var /= np.maximum(n, 1.0)
    return np.sqrt(var, out=var)


def elapsed(times: np.ndarray, t_last: np.ndarray) -> np.ndarray:
    """Seconds since `t_last` (NaN = never: 0); never negative, so an event that arrives with an
    earlier timestamp than the previous one counts as simultaneous with it."""
    return np.fmax(times - t_last, 0.0)
