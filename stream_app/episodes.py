"""Alerts grouped into episodes, and episodes matched against known anomaly windows.

A level shift raises an alert on many consecutive events; a person wants to read "svc-03 from
10:05 to 14:20, 63 alerts", not 63 lines. An episode is a run of one key's alerts with no more
than ``merge_gap_s`` between consecutive ones. Matching episodes to the sample's ground-truth
windows gives the numbers ``ember run-sample`` prints: how many injected anomalies were caught,
how many episodes fall outside every injected anomaly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa


@dataclass(frozen=True)
class Episode:
    key: str
    start: float         # epoch seconds of the first alert
    end: float           # ... and of the last
    alerts: int
    peak_score: float
    peak_time: float


def alert_episodes(keys, times, scores, alert, merge_gap_s: float = 3600.0) -> list[Episode]:
    """Episodes from per-event arrays (any order), sorted by start time."""
    keys = np.asarray(keys, dtype=object)
    times = np.asarray(times, np.float64)
    scores = np.asarray(scores, np.float64)
    idx = np.flatnonzero(np.asarray(alert, bool))
    out: list[Episode] = []
    for key in sorted(set(keys[idx].tolist())):
        rows = idx[keys[idx] == key]
        rows = rows[np.argsort(times[rows], kind="stable")]
        cuts = np.flatnonzero(np.diff(times[rows]) > merge_gap_s) + 1
        for part in np.split(rows, cuts):
            peak = part[int(np.argmax(scores[part]))]
            out.append(Episode(str(key), float(times[part[0]]), float(times[part[-1]]), len(part),
                               float(scores[peak]), float(times[peak])))
    out.sort(key=lambda e: (e.start, e.key))
    return out


def episodes_from_scores(scores: pa.Table, key: str, time: str, merge_gap_s: float = 3600.0) -> list[Episode]:
    return alert_episodes(scores.column(key).to_pylist(), scores.column(time).to_numpy(),
                          scores.column("score").to_numpy(), scores.column("alert").to_numpy(zero_copy_only=False),
                          merge_gap_s)


@dataclass(frozen=True)
class Match:
    """How alert episodes line up with known anomaly windows."""

    windows: int
    detected: int                       # windows with an alert inside [start, end + tolerance]
    by_kind: dict[str, tuple[int, int]]  # kind -> (detected, total)
    episodes: int
    false_episodes: int                 # episodes touching no window (± tolerance)
    first_alert_delay_s: list[float]    # per detected window: first alert time - window start

    def summary(self) -> str:
        kinds = ", ".join(f"{k} {d}/{n}" for k, (d, n) in sorted(self.by_kind.items()))
        return (f"caught {self.detected} of {self.windows} injected anomalies ({kinds}); "
                f"{self.false_episodes} of {self.episodes} alert episodes outside every injected anomaly")


def match_windows(episodes: list[Episode], windows: pa.Table, key: str, tolerance_s: float = 3600.0,
                  alert_times: dict[str, np.ndarray] | None = None) -> Match:
    """``windows``: columns ``key`` (named as the events' key), kind, start, end (epoch s).
    ``alert_times``: per key, the time of every alert (for exact detection and delay); when
    omitted, episode spans are used."""
    wk = windows.column(key).to_pylist()
    kinds = windows.column("kind").to_pylist()
    starts = windows.column("start").to_numpy()
    ends = windows.column("end").to_numpy()
    by_kind: dict[str, list[int]] = {}
    detected, delays = 0, []
    for k, kind, a, b in zip(wk, kinds, starts, ends):
        hit_times = _alert_times_for(k, episodes, alert_times)
        inside = hit_times[(hit_times >= a) & (hit_times <= b + tolerance_s)]
        counts = by_kind.setdefault(kind, [0, 0])
        counts[1] += 1
        if inside.size:
            counts[0] += 1
            detected += 1
            delays.append(float(inside.min() - a))
    false = 0
    for e in episodes:
        touches = any(k == e.key and e.end >= a - tolerance_s and e.start <= b + tolerance_s
                      for k, a, b in zip(wk, starts, ends))
        false += not touches
    return Match(len(wk), detected, {k: (v[0], v[1]) for k, v in by_kind.items()}, len(episodes),
                 false, delays)


def _alert_times_for(key, episodes, alert_times) -> np.ndarray:
    if alert_times is not None:
        return np.asarray(alert_times.get(key, np.zeros(0)), np.float64)
    return np.asarray([t for e in episodes if e.key == key for t in (e.start, e.end)], np.float64)
