"""Alert records: what fired, how strongly, and why (docs/alerts.md).

``top_features`` are the features whose values the motor layer expected least, in standard
deviations of the key's own prediction errors (signed: + above, - below what was expected),
with the observed and expected values in the feature's own units. ``evidence`` names the raw
score that carried the alert (a value beyond the key's history, the prediction error, the RBM
free energy, the label head) and its strength in decades of improbability (-log10 p).
"""
from __future__ import annotations

import numpy as np


def alert_record(pipe, key: str, time: float, score: float, values: np.ndarray,
                 deviations: np.ndarray, evidence: np.ndarray, features: np.ndarray) -> dict:
    core, s = pipe.core, pipe.settings
    names = core.feature_names
    top = np.argsort(-np.abs(deviations), kind="stable")[:s.reasons]
    strongest = np.argsort(-evidence, kind="stable")[:2]
    return {
        "key": key,
        "time": time,
        "score": score,
        "threshold": s.alert_threshold,
        "model_version": pipe.model_version,
        "values": {f: _num(values[j]) for j, f in enumerate(core.value_fields)},
        "top_features": [{"name": names[j], "deviation": round(float(deviations[j]), 4),
                          "value": _num(features[j])}
                         for j in top if np.isfinite(deviations[j]) and deviations[j] != 0.0],
        "evidence": [{"source": core.stream_names[j], "log10_odds": round(float(evidence[j]), 3)}
                     for j in strongest if evidence[j] > 0],
    }


def _num(x) -> float | None:
    x = float(x)
    return x if np.isfinite(x) else None
