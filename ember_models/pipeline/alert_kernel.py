"""Alerts with a refractory period over a run of rounds, as a compiled loop (numba).

An alert silences its key for the next ``refractory`` events: whether an event may alert
depends on the key's alerts before it, so the rounds go in order (round r: rows
``starts[r]:starts[r + 1]``, the i-th of them key i's). Without a refractory period alerts
are a plain comparison (core.DetectorCore.run_rounds) and this loop is not used.
"""
from __future__ import annotations

from numba import njit


@njit(cache=True, nogil=True)
def refractory_alerts(score, starts, quiet, threshold, refractory, alert):
    """score [c]; quiet [keys] float64 (events the key stays silent), updated in place; fills
    alert [c] (bool)."""
    for r in range(starts.shape[0] - 1):
        s0 = starts[r]
        for i in range(starts[r + 1] - s0):
            a = score[s0 + i] >= threshold and quiet[i] < 0.5
            alert[s0 + i] = a
            quiet[i] = refractory if a else max(quiet[i] - 1.0, 0.0)
