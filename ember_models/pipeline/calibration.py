"""Calibration of raw anomaly scores to [0, 1]: an anomaly likelihood in the manner of HTM.

The raw score of a key (prediction error, RBM free energy, ...) means different things on
different streams, so a fixed threshold on it would not. What is comparable across streams is
how improbable the *recent* raw score is against that stream's own history: the short-window
mean of the raw score is compared with the long-run distribution of that mean (a Gaussian with
exponentially weighted mean and variance), and the upper-tail probability p of the Gaussian is
the evidence. The calibrated score maps -log10(p) smoothly onto [0, 1) without ever reaching 1
(NAB's threshold search needs distinct values at the top):

    score = x / (x + half),  x = -log10 p,  so score 0.5 ⇔ p = 10**-half.

Everything is vectorised over keys; the state is four float64 numbers per raw score per key.
"""
from __future__ import annotations

import math

from .. import ops

_LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)
_LN10 = math.log(10.0)


def log10_upper_tail(z):
    """log10 of the standard normal upper tail Q(z) for z >= 0 (Börjesson–Sundberg: relative
    error < 0.3 %, so -log10 Q is within 0.002 of exact), and log10(0.5) for z < 0 (a score
    below the long-run mean is never evidence)."""
    z = ops.maximum(z, 0.0)
    a, b = 0.339, 5.510
    log_q = -0.5 * z * z - _LOG_SQRT_2PI - ops.log((1.0 - a) * z + a * ops.sqrt(z * z + b))
    return log_q / _LN10


class AnomalyLikelihood:
    """Streaming anomaly likelihood for S raw scores per key.

    short: window (in events) of the recent mean of the raw score.
    long: window of its long-run mean/variance (the first ``long`` events use plain averages,
          so a cold key is calibrated after ``warmup`` events instead of ``long``).
    warmup: events before any score above 0.
    half: -log10 p that maps to a calibrated 0.5.
    """

    STATE = ("cal_short", "cal_mean", "cal_var")

    def __init__(self, n_raw: int, short: float = 10.0, long: float = 2000.0,
                 warmup: int = 200, half: float = 5.0, min_std: float = 1e-3):
        self.n_raw, self.short, self.long = n_raw, float(short), float(long)
        self.warmup, self.half, self.min_std = int(warmup), float(half), float(min_std)

    def layout(self) -> dict:
        return {name: ((self.n_raw,), "float64") for name in self.STATE}

    def step(self, state: dict, n_seen, raw):
        """raw [K, S] of the current events (n_seen [K] = events of the key before this one).
        Returns the calibrated score [K, S] and updates ``state`` in place (rows = keys)."""
        n = ops.expand_dims(n_seen, 1)
        first = n < 0.5
        short_prev = state["cal_short"]
        a_short = ops.maximum(1.0 / ops.minimum(n + 1.0, self.short), 1.0 / self.short)
        short = ops.where(first, raw, short_prev + a_short * (raw - short_prev))
        mean, var = state["cal_mean"], state["cal_var"]
        sd = ops.sqrt(var + self.min_std * self.min_std)
        z = (short - mean) / sd
        x = -log10_upper_tail(z)
        # -log10(0.5) = 0.301 at z <= 0: subtract it so "nothing unusual" scores exactly 0
        x = ops.maximum(x - 0.30103, 0.0)
        score = ops.where(n >= self.warmup, x / (x + self.half), ops.zeros_like(x))
        # long-run statistics of the short mean, updated after scoring (no self-influence)
        a_long = 1.0 / ops.minimum(n + 1.0, self.long)
        d = short - mean
        new_mean = mean + a_long * d
        new_var = ops.where(first, ops.zeros_like(var), (1.0 - a_long) * (var + a_long * d * d))
        state["cal_short"], state["cal_mean"], state["cal_var"] = short, new_mean, new_var
        return score

    def get_config(self) -> dict:
        return {"n_raw": self.n_raw, "short": self.short, "long": self.long,
                "warmup": self.warmup, "half": self.half, "min_std": self.min_std}
