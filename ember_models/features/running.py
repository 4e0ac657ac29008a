"""Running-statistics helpers shared by several features (one definition of each). The
Welford update the welford, zscore and impute features share is ``_welford_at`` in
running_kernel.py (their rounds are compiled loops)."""
from __future__ import annotations

import numpy as np


def elapsed(times: np.ndarray, t_last: np.ndarray) -> np.ndarray:
    """Seconds since `t_last` (NaN = never: 0); never negative, so an event that arrives with an
    earlier timestamp than the previous one counts as simultaneous with it."""
    return np.fmax(times - t_last, 0.0)
