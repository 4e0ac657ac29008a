"""The detector core: per key and per event, raw anomaly evidence → calibrated score → alert.

Runs "batch = keys, loop over time" (see events.KeyGrid): every array here has a leading key
axis and one call of ``step`` advances the first n keys by one event each. Streaming
(``Pipeline.step``) and backfill (``Pipeline.score``) both run this loop, so they agree by
construction.

INTERIM raw evidence: until the feature engine, RBM and liquid network land, the raw score is
the largest |z| of the event's values against the key's exponentially weighted mean/variance.
"""
from __future__ import annotations

import numpy as np

from .. import ops
from .calibration import AnomalyLikelihood
from .settings import PipelineSettings


class DetectorCore:
    def __init__(self, n_values: int, feature_names: list[str], settings: PipelineSettings):
        self.n_values = n_values
        self.feature_names = list(feature_names)
        self.settings = settings
        self.calibration = AnomalyLikelihood(
            1, short=settings.short_window, long=settings.long_window,
            warmup=settings.warmup_events, half=settings.half_log10_p)
        self.alpha = 0.01

    # ---- per-key state ------------------------------------------------------------------
    def layout(self) -> dict[str, tuple[tuple, str]]:
        v = self.n_values
        out = {"n_seen": ((), "float64"), "quiet": ((), "float64"),
               "z_mean": ((v,), "float64"), "z_var": ((v,), "float64")}
        out.update(self.calibration.layout())
        return out

    def init_state(self, n_keys: int) -> dict[str, np.ndarray]:
        return {name: np.zeros((n_keys,) + tuple(shape), dtype)
                for name, (shape, dtype) in self.layout().items()}

    # ---- one event for each of the first n keys ------------------------------------------
    def step(self, st: dict, t, x):
        """st: state views of the n keys (backend arrays, updated in place as a dict);
        t [n] epoch seconds, x [n, V] values (NaN = missing).
        Returns score [n], alert [n] bool, deviations [n, F] (signed, in std units)."""
        n_seen = st["n_seen"]
        first = ops.expand_dims(n_seen < 0.5, 1)
        obs = ops.isfinite(x)
        x0 = ops.where(obs, x, ops.zeros_like(x))
        mean, var = st["z_mean"], st["z_var"]
        mean = ops.where(first, x0, mean)
        dev = (x0 - mean) / ops.sqrt(var + 1e-12)
        dev = ops.where(obs & (ops.expand_dims(n_seen, 1) > 1.5), ops.clip(dev, -1e3, 1e3),
                        ops.zeros_like(dev))
        raw = ops.max(ops.abs(dev), axis=1, keepdims=True)
        score = self.calibration.step(st, n_seen, raw)[:, 0]
        # plain averages while the key is young, then exponential forgetting
        a = ops.expand_dims(ops.maximum(1.0 / (n_seen + 1.0), self.alpha), 1)
        d = x0 - mean
        st["z_mean"] = ops.where(obs, mean + a * d, mean)
        st["z_var"] = ops.where(obs & ~first, (1 - a) * (var + a * d * d), var)
        alert = (score >= self.settings.alert_threshold) & (st["quiet"] < 0.5)
        st["quiet"] = ops.where(alert, ops.full(ops.shape(score), float(
            self.settings.refractory_events), "float64"), ops.maximum(st["quiet"] - 1.0, 0.0))
        st["n_seen"] = n_seen + 1.0
        return score, alert, dev

    def get_config(self) -> dict:
        return {"n_values": self.n_values, "feature_names": self.feature_names}
