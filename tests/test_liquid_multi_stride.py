"""Multi-stride network: branches update on their own stride (steps or seconds, per sample),
see the whole elapsed time and the pooled inputs since their last update, resume exactly,
and the motor layer starts as the branches' mean."""
from __future__ import annotations

import numpy as np
import pytest

from ember_models import backend as backend_mod
from ember_models.backend import set_backend
from ember_models.liquid import CfCCell, LiquidSequence, LTCCell, MultiStrideLiquid, WiredCfCCell
from ember_models.wiring import AutoNCP
from liquid_nets import KEYS_LAST_CASES, mixed_reservoir


@pytest.fixture(autouse=True)
def numpy_backend():
    previous = backend_mod._current
    set_backend("numpy")
    yield
    if previous is not None:
        set_backend(previous.name)


def _data(batch=3, steps=24, feats=5, seed=0):
    g = np.random.default_rng(seed)
    return (g.normal(size=(batch, steps, feats)).astype(np.float32),
            g.uniform(0.1, 1.5, size=(batch, steps)).astype(np.float32))


def _states_over_time(ms, x, dt):
    h, out = ms.initial_state(x.shape[0]), []
    for t in range(x.shape[1]):
        _, h = ms.step(x[:, t], h, dt[:, t])
        out.append([s.copy() for s in ms.branch_states(h)])
    return out, h


def test_step_strides_update_branches_every_sth_step_with_pooled_input_and_summed_time():
    cells = [WiredCfCCell(5, AutoNCP(10, 2, seed=i), seed=i) for i in range(3)]
    ms = MultiStrideLiquid(cells, [1, 3, 4], "steps").eval()
    x, dt = _data()
    history, _ = _states_over_time(ms, x, dt)
    for k, stride in enumerate([1, 3, 4]):
        ref_cell, h_ref = cells[k], cells[k].initial_state(3)
        for t in range(24):
            if (t + 1) % stride == 0:   # the branch's turn: mean input, elapsed time since last
                xs = x[:, t + 1 - stride:t + 1].mean(axis=1)
                _, h_ref = ref_cell.step(xs, h_ref, dt[:, t + 1 - stride:t + 1].sum(axis=1))
                changed = np.abs(history[t][k] - (history[t - 1][k] if t else 0)).max()
                assert changed > 0
            elif t:
                np.testing.assert_array_equal(history[t][k], history[t - 1][k])
            np.testing.assert_allclose(history[t][k], h_ref, atol=1e-5)


def test_second_strides_follow_each_samples_own_clock():
    cells = [CfCCell(5, 6, backbone_layers=0, seed=1), LTCCell(5, AutoNCP(8, 2, seed=2), seed=2)]
    ms = MultiStrideLiquid(cells, [0.5, 2.0], "seconds", pool="last").eval()
    x, dt = _data(batch=2, steps=20)
    dt[0] = 0.3
    dt[1] = 0.9
    history, _ = _states_over_time(ms, x, dt)
    for sample, step_dt in ((0, 0.3), (1, 0.9)):
        elapsed = 0.0
        for t in range(20):
            elapsed += step_dt
            due = elapsed >= 2.0 - 1e-6
            prev = history[t - 1][1][sample] if t else np.zeros(8, np.float32)
            moved = np.abs(history[t][1][sample] - prev).max() > 0
            assert moved == due, (sample, t)
            if due:
                elapsed = 0.0


def test_resume_mid_stride_in_seconds_mode():
    ms = MultiStrideLiquid.build(5, AutoNCP(10, 2, seed=3), [0.7, 2.5, 6.0], stride_unit="seconds")
    seq = LiquidSequence(ms).eval()
    x, dt = _data()
    y, h = seq(x, dt)
    y1, h1 = seq(x[:, :11], dt[:, :11])
    y2, h2 = seq(x[:, 11:], dt[:, 11:], h1)
    np.testing.assert_array_equal(np.concatenate([y1, y2], 1), y)
    np.testing.assert_array_equal(h2, h)
    book = ms._book
    assert (h1[:, book + 3:book + 6] > 0).any()     # mid-stride elapsed time was carried


def test_motor_layer_starts_as_the_mean_of_branch_outputs():
    ms = MultiStrideLiquid.build(5, AutoNCP(10, 2, seed=4), [1, 2]).eval()
    x, dt = _data()
    y, h = ms.step(x[:, 0], ms.initial_state(3), dt[:, 0])
    outs = [c.output(s) for c, s in zip(ms.branches, ms.branch_states(h))]
    np.testing.assert_allclose(y, (outs[0] + outs[1]) / 2, atol=1e-6)
    assert ms.hidden(h).shape == (3, 20)


def test_bad_configurations_are_refused():
    c = CfCCell(5, 4, backbone_layers=0)
    with pytest.raises(ValueError, match="one stride per branch"):
        MultiStrideLiquid([c, c], [1])
    with pytest.raises(ValueError, match="whole numbers"):
        MultiStrideLiquid([c], [1.5])
    with pytest.raises(ValueError, match="same inputs"):
        MultiStrideLiquid([c, CfCCell(3, 4, backbone_layers=0)], [1, 2])
    with pytest.raises(ValueError, match="stride_unit"):
        MultiStrideLiquid([c], [1], stride_unit="minutes")


@pytest.mark.parametrize("unit,pool", [("steps", "mean"), ("seconds", "mean"), ("steps", "last")])
def test_next_state_in_place_equals_the_new_array_it_would_return(unit, pool):
    # keys at different phases (some due, some not, in one step) and large batches (the
    # layered CfC runner): writing the new state into h must give the same state
    cells = [WiredCfCCell(5, AutoNCP(10, 2, seed=i), seed=i) for i in range(3)]
    strides = [1, 3, 4] if unit == "steps" else [0.5, 2.0, 3.0]
    ms = MultiStrideLiquid(cells, strides, unit, pool=pool).eval()
    for batch in (3, 40):
        x, dt = _data(batch=batch, steps=12)
        h = ms.initial_state(batch)
        h_own = np.array(h, copy=True)
        for t in range(x.shape[1]):
            expect = ms.next_state(x[:, t], h, dt[:, t:t + 1])
            got = ms.next_state(x[:, t], h_own, dt[:, t:t + 1], in_place=True)
            assert got is h_own
            np.testing.assert_array_equal(got, expect)
            h = expect


@pytest.mark.parametrize("unit,pool,mode", KEYS_LAST_CASES)
def test_keys_last_reservoir_steps_like_next_state_bit_for_bit(unit, pool, mode):
    # the pipeline's batch loop steps the reservoir keys-last over a working array: the
    # states it stores must be next_state's exactly — keys at different phases (some due,
    # some not in one step), wired and plain branches, a column prefix (the keys still
    # running) stepped through a view
    from ember_models.liquid.keys_last import KeysLastReservoir, supports
    ms = mixed_reservoir(unit, pool, mode)
    assert supports(ms)
    res = KeysLastReservoir.for_network(ms)
    batch, steps = 40, 12
    x, dt = _data(batch=batch, steps=steps)
    h = ms.initial_state(batch)
    h[:, ms._book:ms._book + 3] = np.arange(batch)[:, None] % 4     # per-key phases
    X = res.load(h)
    np.testing.assert_array_equal(res.store(X), h)
    for t in range(steps):
        m = batch if t < steps // 2 else batch - 7
        h = np.array(h, copy=True)
        h[:m] = ms.next_state(x[:m, t], h[:m], dt[:m, t:t + 1])
        res.step(X[:, :m], np.ascontiguousarray(x[:m, t].T), dt[:m, t].reshape(1, -1))
        np.testing.assert_array_equal(res.store(X), h)
    outs = np.concatenate([c.output(s) for c, s in zip(ms.branches, ms.branch_states(h))], 1)
    np.testing.assert_array_equal(res.outputs(X).T, outs)
    np.testing.assert_allclose(res.motor(res.outputs(X)).T, ms.output(h), rtol=1e-6, atol=1e-6)


def test_keys_last_reservoir_refuses_what_it_cannot_step():
    from ember_models.liquid.keys_last import KeysLastReservoir, supports
    ms = MultiStrideLiquid([CfCCell(5, 6, seed=1)], [1])            # a backbone
    assert not supports(ms)
    with pytest.raises(ValueError, match="without a backbone"):
        KeysLastReservoir(ms)
    ms = MultiStrideLiquid([CfCCell(5, 6, mode="pure", backbone_layers=0, seed=1)], [1])
    assert not supports(ms)


def test_keys_last_reservoir_follows_replaced_weights():
    # the pipeline refits the motor layer (partial_fit): the cached keys-last runner must see
    # the new weights, as the cached plans do
    from ember_models.liquid.keys_last import KeysLastReservoir
    ms = MultiStrideLiquid([WiredCfCCell(5, AutoNCP(10, 2, seed=1), seed=1)], [1]).eval()
    res = KeysLastReservoir.for_network(ms)
    assert KeysLastReservoir.for_network(ms) is res
    h = np.random.default_rng(0).normal(size=(9, ms.state_size)).astype(np.float32)
    ms.motor_w = np.full(np.shape(ms.motor_w), 0.25, np.float32)
    res2 = KeysLastReservoir.for_network(ms)
    assert res2 is not res
    X = res2.load(h)
    np.testing.assert_allclose(res2.motor(res2.outputs(X)).T, ms.output(h), rtol=1e-6, atol=1e-6)
