"""The motor trigger: adaptive threshold per sample and output, edge/level firing, warm-up,
directions, time-based adaptation, and a state that round-trips through bytes."""
from __future__ import annotations

import numpy as np
import pytest

from ember_models import backend as backend_mod
from ember_models.backend import set_backend
from ember_models.liquid import AdaptiveTrigger


@pytest.fixture(autouse=True)
def numpy_backend():
    previous = backend_mod._current
    set_backend("numpy")
    yield
    if previous is not None:
        set_backend(previous.name)


def _noise(batch=3, steps=200, size=2, seed=0):
    return np.random.default_rng(seed).normal(0, 0.1, size=(batch, steps, size)).astype(np.float32)


def test_only_the_sample_and_output_with_the_spike_fire():
    y = _noise()
    y[1, 150, 0] += 3.0                       # key 1, motor 0 spikes
    fired, upper, _ = AdaptiveTrigger(2, k=4.0, warmup=20)(y)
    hits = np.argwhere(fired)
    assert hits.tolist() == [[1, 150, 0]]
    assert 0.1 < upper[1, 150, 0] < 1.0       # ~ mean + 4 std of the noise


def test_edge_fires_once_per_crossing_level_fires_while_beyond():
    y = _noise(batch=1, size=1)
    y[0, 100:110, 0] += 5.0
    edge, _, _ = AdaptiveTrigger(1, k=4.0, adapt_on_fire=False)(y)
    level, _, _ = AdaptiveTrigger(1, k=4.0, edge=False, adapt_on_fire=False)(y)
    assert np.flatnonzero(edge[0, :, 0]).tolist() == [100]
    assert np.flatnonzero(level[0, :, 0]).tolist() == list(range(100, 110))


def test_warmup_silences_the_first_events_and_directions():
    y = _noise(batch=1, size=1)
    y[0, 5, 0] += 5.0
    y[0, 120, 0] -= 5.0
    above, _, _ = AdaptiveTrigger(1, warmup=20)(y)
    below, _, _ = AdaptiveTrigger(1, warmup=20, direction="below")(y)
    both, _, _ = AdaptiveTrigger(1, warmup=3, direction="both")(y)
    assert not above.any()                                    # spike at 5 is in warm-up
    assert np.flatnonzero(below[0, :, 0]).tolist() == [120]
    assert np.flatnonzero(both[0, :, 0]).tolist() == [5, 120]


def test_threshold_adapts_to_a_new_level():
    y = _noise(batch=1, size=1)
    y[0, 100:, 0] += 2.0                       # a level shift: fires once, then adapts
    fired, upper, _ = AdaptiveTrigger(1, k=4.0, halflife=10)(y)
    assert fired[0, 100, 0] and not fired[0, 150:].any()
    assert upper[0, -1, 0] > 2.0


def test_time_constant_adapts_by_elapsed_time():
    y = _noise(batch=2, size=1)
    y[:, 100:, 0] += 1.0
    dt = np.ones((2, 200), np.float32)
    dt[1] = 10.0                               # key 1's events are 10x further apart
    _, upper, _ = AdaptiveTrigger(1, time_constant=50.0)(y, dt=dt)
    # after the shift key 1 has seen 10x more time, so its threshold has moved further up
    assert upper[1, 110, 0] > upper[0, 110, 0] + 0.2
    with pytest.raises(ValueError, match="needs dt"):
        AdaptiveTrigger(1, time_constant=5.0)(y)


def test_state_round_trips_through_bytes_and_resumes_exactly():
    y = _noise()
    y[2, 160, 1] += 3.0
    trig = AdaptiveTrigger(2, k=4.0)
    fired_all, upper_all, state_all = trig(y)
    _, _, state = trig(y[:, :120])
    blobs = [row.tobytes() for row in state]                    # per-key storage
    restored = np.stack([np.frombuffer(b, dtype=np.float32) for b in blobs])
    fired_rest, upper_rest, state_rest = trig(y[:, 120:], restored)
    np.testing.assert_array_equal(fired_rest, fired_all[:, 120:])
    np.testing.assert_array_equal(upper_rest, upper_all[:, 120:])
    np.testing.assert_array_equal(state_rest, state_all)
    assert fired_rest[2, 40, 1]


def test_bad_arguments():
    with pytest.raises(ValueError, match="direction"):
        AdaptiveTrigger(1, direction="up")
    with pytest.raises(ValueError, match="y must be"):
        AdaptiveTrigger(2).step(np.zeros((1, 3), np.float32), np.zeros((1, 8), np.float32))
