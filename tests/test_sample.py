"""The generated sample stream: seeded, irregular, every anomaly kind labelled after the clean part."""

import numpy as np
import pyarrow.compute as pc

from stream_app.episodes import alert_episodes, match_windows
from stream_app.sample import ANOMALY_KINDS, make_sample


def test_same_seed_same_stream_other_seed_other_stream():
    a, b, c = make_sample(seed=1, n_keys=3, events_per_key=300), make_sample(seed=1, n_keys=3, events_per_key=300), \
        make_sample(seed=2, n_keys=3, events_per_key=300)
    assert a.events.equals(b.events) and a.labels.equals(b.labels) and a.windows.equals(b.windows)
    assert not a.events.equals(c.events)


def test_stream_shape_and_labels():
    s = make_sample(seed=5, n_keys=8, events_per_key=1000, clean_fraction=0.5)
    ev = s.events
    keys = ev.column("service").to_numpy(zero_copy_only=False)
    t = ev.column("time").to_numpy()
    assert np.all(np.diff(t) >= 0)                          # delivered in time order
    assert sorted(set(keys)) == [f"svc-{k:02d}" for k in range(8)]
    gaps = np.diff(t[keys == "svc-00"])
    assert gaps.std() > 0.5 * gaps.mean()                   # irregular (exponential-like) gaps
    assert set(s.windows.column("kind").to_pylist()) == set(ANOMALY_KINDS)
    split = s.split_time(0.5)
    assert pc.min(s.labels.column("time")).as_py() >= split - 1.0   # the first half is clean
    # every label is an event of the stream
    events = set(zip(keys.tolist(), t.tolist()))
    assert all((k, x) in events for k, x in zip(s.labels.column("service").to_pylist(),
                                                s.labels.column("time").to_pylist()))
    stuck = s.windows.filter(pc.equal(s.windows.column("kind"), "stuck")).to_pylist()[0]
    sel = (keys == stuck["service"]) & (t >= stuck["start"]) & (t < stuck["end"])
    assert sel.sum() > 3 and np.unique(ev.column("requests").to_numpy()[sel]).size == 1


def test_episodes_group_alerts_and_match_windows():
    keys = ["a"] * 6 + ["b"] * 2
    times = [0, 100, 200, 10_000, 10_050, 50_000, 0, 99_000]
    scores = [0.1, 0.9, 0.8, 0.7, 0.95, 0.2, 0.6, 0.9]
    alert = [False, True, True, True, True, False, True, True]
    eps = alert_episodes(keys, times, scores, alert, merge_gap_s=3600)
    assert [(e.key, e.start, e.end, e.alerts, e.peak_score) for e in eps] == [
        ("b", 0, 0, 1, 0.6), ("a", 100, 200, 2, 0.9), ("a", 10_000, 10_050, 2, 0.95), ("b", 99_000, 99_000, 1, 0.9)]
    import pyarrow as pa
    windows = pa.table({"service": ["a", "a", "b"], "kind": ["spike", "stuck", "spike"],
                        "start": [150.0, 30_000.0, 98_500.0], "end": [150.0, 31_000.0, 98_500.0]})
    m = match_windows(eps, windows, "service", tolerance_s=600)
    assert (m.windows, m.detected, m.false_episodes) == (3, 2, 2)
    assert m.by_kind == {"spike": (2, 2), "stuck": (0, 1)}
