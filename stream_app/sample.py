"""A seeded, generated multi-key event stream with injected anomalies: ember's sample data set.

The README's main job (``ember run-sample``) trains on the first part of this stream and scores
the rest, so the stream is built to look like something a person would monitor: a handful of
services (keys), each sending metric events at irregular times (exponential inter-arrival gaps,
a different mean rate per key), with a daily cycle, two numeric value fields and a categorical
field. Anomalies of five kinds are injected only after ``clean_fraction`` of each key's time
range, so the training part is normal data and every labelled anomaly lands in the scored part:

- ``spike``: one event whose ``requests`` jumps to several times its expected value;
- ``level_shift``: ``requests`` moves to a new level (up or down) for several hours;
- ``variance_burst``: the noise on both fields grows several-fold for a few hours, with more
  ``error`` statuses;
- ``stuck``: ``requests`` repeats the same value exactly for several hours (a frozen sensor);
- ``dropout``: the key sends nothing for several hours, and its first event after the silence
  reads near zero (labelled: the gap itself holds no rows).

Same seed, same stream: every random draw comes from one ``numpy.random.Generator``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

ANOMALY_KINDS = ("spike", "level_shift", "variance_burst", "stuck", "dropout")

KEY_FIELD = "service"
TIME_FIELD = "time"
VALUE_FIELDS = ("requests", "latency_ms")
CATEGORY_FIELD = "status"
STATUSES = ("ok", "warn", "error")

DAY_S = 86_400.0
HOUR_S = 3_600.0
# 2024-03-04 00:00:00 UTC, a Monday: a fixed start keeps the sample identical for every user.
DEFAULT_START = 1_709_510_400.0


@dataclass(frozen=True)
class Sample:
    """The generated stream and its ground truth.

    ``events``: one row per event, sorted by time (keys interleaved as a stream would deliver
    them; each key's rows in time order). Columns: service (string), time (float64 epoch
    seconds), requests, latency_ms (float64), status (string).
    ``labels``: the anomalous events, one row each: service, time, kind, window_id.
    ``windows``: one row per injected anomaly: window_id, service, kind, start, end (epoch s;
    for a dropout, the silent span and the first event after it).
    """

    events: pa.Table
    labels: pa.Table
    windows: pa.Table

    def split_time(self, train_fraction: float) -> float:
        """The time before which ``train_fraction`` of the sample's span lies."""
        times = self.events.column(TIME_FIELD).to_numpy()
        return float(times.min() + train_fraction * (times.max() - times.min()))


def make_sample(
    seed: int = 7,
    n_keys: int = 8,
    events_per_key: int = 3_000,
    days: float = 10.0,
    anomalies_per_key: int = 3,
    clean_fraction: float = 0.5,
    start: float = DEFAULT_START,
) -> Sample:
    """Generate the sample stream. See the module docstring for what is in it."""
    if n_keys < 1 or events_per_key < 200:
        raise ValueError(f"make_sample needs n_keys >= 1 and events_per_key >= 200, got {n_keys}, {events_per_key}")
    if not 0.0 < clean_fraction < 0.9:
        raise ValueError(f"clean_fraction must lie in (0, 0.9), got {clean_fraction}")
    rng = np.random.default_rng(seed)
    event_parts, label_parts, window_rows = [], [], []
    for k in range(n_keys):
        service = f"svc-{k:02d}"
        n = int(events_per_key * rng.uniform(0.7, 1.3))
        kinds = [ANOMALY_KINDS[(k + j) % len(ANOMALY_KINDS)] for j in range(anomalies_per_key)]
        events, labels, windows = _one_key(rng, service, n, days, kinds, clean_fraction, start, len(window_rows))
        event_parts.append(events)
        label_parts.append(labels)
        window_rows.extend(windows)

    events = pa.concat_tables(event_parts)
    order = np.argsort(events.column(TIME_FIELD).to_numpy(), kind="stable")
    events = events.take(pa.array(order))
    labels = pa.concat_tables(label_parts)
    labels = labels.take(pa.array(np.argsort(labels.column(TIME_FIELD).to_numpy(), kind="stable")))
    windows = pa.Table.from_pylist(
        window_rows,
        schema=pa.schema([("window_id", pa.int64()), (KEY_FIELD, pa.string()), ("kind", pa.string()),
                          ("start", pa.float64()), ("end", pa.float64())]),
    )
    return Sample(events=events, labels=labels, windows=windows)


def _one_key(rng, service, n, days, kinds, clean_fraction, start, first_window_id):
    """One key's events (normal behaviour, then the injected anomalies) and its ground truth."""
    # Every key covers the same days (so one split time cuts each key at the same fraction);
    # keys differ in rate, and the gaps between events are exponential (irregular).
    mean_gap = days * DAY_S / n
    # Draw more gaps than needed and cut at the end of the span, so no key stops early.
    t = start + rng.uniform(0, mean_gap) + np.cumsum(np.maximum(rng.exponential(mean_gap, size=int(n * 1.2) + 50), 0.5))
    t = t[t < start + days * DAY_S]
    n = t.size

    # Normal behaviour: a daily cycle peaking at a per-key hour, multiplicative noise.
    base = rng.uniform(40.0, 400.0)
    amplitude = rng.uniform(0.25, 0.6)
    peak_hour = rng.uniform(10.0, 18.0)
    hour = (t % DAY_S) / HOUR_S
    day_cycle = np.cos(2 * np.pi * (hour - peak_hour) / 24.0)
    # No weekly cycle: the training part (the first days) could not show it to a model.
    expected = base * (1.0 + amplitude * day_cycle)
    noise_sd = 0.06
    noise = rng.normal(0.0, noise_sd, size=n)
    requests = expected * (1.0 + noise)
    lat_base = rng.uniform(15.0, 80.0)
    lat_noise = rng.normal(0.0, 0.08, size=n)
    latency = lat_base * (1.0 + 0.5 * (requests / base - 1.0)) * np.exp(lat_noise)
    status_p = np.array([0.965, 0.03, 0.005])
    status_idx = rng.choice(3, size=n, p=status_p)

    # Anomalies: one per slot, slots spread over the part after clean_fraction, kept off the edges.
    t0, t1 = t[0] + clean_fraction * (t[-1] - t[0]), t[-1] - 0.03 * (t[-1] - t[0])
    edges = np.linspace(t0, t1, len(kinds) + 1)
    keep = np.ones(n, dtype=bool)
    label_idx, label_kind, label_window, windows = [], [], [], []
    for j, kind in enumerate(kinds):
        slot_lo, slot_hi = edges[j], edges[j + 1]
        dur = {"spike": 0.0, "level_shift": rng.uniform(4, 10) * HOUR_S,
               "variance_burst": rng.uniform(2, 5) * HOUR_S, "stuck": rng.uniform(3, 8) * HOUR_S,
               "dropout": rng.uniform(3, 8) * HOUR_S}[kind]
        a = rng.uniform(slot_lo + 0.1 * (slot_hi - slot_lo), slot_hi - dur - 0.1 * (slot_hi - slot_lo))
        b = a + dur
        wid = first_window_id + j
        if kind == "spike":
            i = int(np.searchsorted(t, a))
            requests[i] = expected[i] * rng.uniform(3.0, 6.0)
            latency[i] *= rng.uniform(2.0, 4.0)
            idx = np.array([i])
            a = b = t[i]
        else:
            idx = np.flatnonzero((t >= a) & (t < b))
            if kind == "level_shift":
                factor = rng.choice([rng.uniform(1.6, 2.2), rng.uniform(0.35, 0.55)])
                requests[idx] *= factor
                latency[idx] *= 1.0 + 0.5 * (factor - 1.0)
            elif kind == "variance_burst":
                requests[idx] = expected[idx] * (1.0 + rng.normal(0.0, 6 * noise_sd, size=idx.size))
                latency[idx] *= np.exp(rng.normal(0.0, 0.5, size=idx.size))
                status_idx[idx] = rng.choice(3, size=idx.size, p=[0.7, 0.2, 0.1])
            elif kind == "stuck":
                requests[idx] = requests[idx[0] - 1] if idx.size else 0.0
            elif kind == "dropout":
                keep[idx] = False
                after = int(np.searchsorted(t, b))
                requests[after] = expected[after] * rng.uniform(0.0, 0.05)
                idx = np.array([after])
                b = t[after]
        windows.append({"window_id": wid, KEY_FIELD: service, "kind": kind,
                        "start": round(float(a), 3), "end": round(float(b), 3)})
        label_idx.append(idx)
        label_kind.extend([kind] * idx.size)
        label_window.extend([wid] * idx.size)

    requests = np.maximum(requests, 0.0)
    # Millisecond timestamps, as most event sources send them.
    t = np.round(t, 3)
    new_row = np.cumsum(keep) - 1                     # row index once the dropout rows are gone
    events = pa.table({
        KEY_FIELD: pa.array([service] * int(keep.sum()), pa.string()),
        TIME_FIELD: pa.array(t[keep]),
        "requests": pa.array(np.round(requests[keep], 3)),
        "latency_ms": pa.array(np.round(latency[keep], 3)),
        CATEGORY_FIELD: pa.array([STATUSES[s] for s in status_idx[keep]], pa.string()),
    })
    idx = np.concatenate(label_idx) if label_idx else np.zeros(0, dtype=np.int64)
    labels = pa.table({
        KEY_FIELD: pa.array([service] * idx.size, pa.string()),
        TIME_FIELD: pa.array(t[idx], pa.float64()),
        "kind": pa.array(label_kind, pa.string()),
        "window_id": pa.array(label_window, pa.int64()),
    })
    assert keep[idx].all() and (new_row[idx] >= 0).all()
    return events, labels, windows


def write_sample(out_dir, seed: int = 7, n_keys: int = 8, events_per_key: int = 3_000,
                 train_fraction: float = 0.5) -> dict[str, Path]:
    """Write the sample's files (see scripts/make_sample.py) under ``out_dir``; returns their paths."""
    import pyarrow.compute as pc

    from stream_app.files import write_events

    if not 0.0 < train_fraction <= 0.9:
        raise ValueError(f"train_fraction must lie in (0, 0.9], got {train_fraction}")
    # Anomalies start after the training part, so `ember train` on history sees normal data only.
    sample = make_sample(seed=seed, n_keys=n_keys, events_per_key=events_per_key,
                         clean_fraction=min(train_fraction + 0.02, 0.89))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    split = sample.split_time(train_fraction)
    before = pc.less(sample.events.column(TIME_FIELD), split)
    paths = {
        "events": write_events(sample.events, out / "events.parquet", TIME_FIELD),
        "events_csv": write_events(sample.events, out / "events.csv", TIME_FIELD),
        "history": write_events(sample.events.filter(before), out / "history.parquet", TIME_FIELD),
        "live": write_events(sample.events.filter(pc.invert(before)), out / "live.csv", TIME_FIELD),
        "labels": write_events(sample.labels, out / "labels.csv", TIME_FIELD),
        "windows": write_events(sample.windows, out / "windows.csv", None),
    }
    return paths


# The configuration for the sample's fields; the repository's example ember.toml is this text
# (tests/test_cli_model.py holds them equal), and `ember run-sample` writes it beside its output.
SAMPLE_CONFIG = '''\
# ember configuration for the bundled sample stream (stream_app/sample.py, `ember run-sample`).
# Point the [data] fields at your own event files' columns to use ember on your data.

[data]
key_field = "service"                        # one model state per distinct key
time_field = "time"                          # ISO 8601 strings or epoch numbers
time_unit = "s"                              # unit of numeric times: s, ms, us or ns
value_fields = ["requests", "latency_ms"]    # numeric fields the detector watches
categorical_fields = ["status"]              # string fields (hashed into features)

# [[features]] left out: the default feature set (see ember_models/config.py).
# [model] left out: the pipeline's defaults (see ember_models/pipeline/settings.py).
'''
