"""The sequence wrapper: resuming from a carried state equals running whole, per-event
stepping equals the batch path, training-mode (parameter) path equals the cached plan,
random untrained networks stay alive and bounded, and bad input gets clear errors."""
from __future__ import annotations

import numpy as np
import pytest

from ember_models import ops
from ember_models import backend as backend_mod
from ember_models.backend import set_backend
from ember_models.liquid import (CfC, LTC, CfCCell, LiquidSequence, MixedMemoryCell,
                                 MultiStrideLiquid)
from ember_models.nn import Parameter
from ember_models.wiring import AutoNCP


@pytest.fixture(autouse=True)
def numpy_backend():
    previous = backend_mod._current       # not get_backend(): its automatic choice imports torch
    set_backend("numpy")
    yield
    if previous is not None:
        set_backend(previous.name)


def _data(batch=4, steps=30, feats=6, seed=0):
    g = np.random.default_rng(seed)
    x = g.normal(size=(batch, steps, feats)).astype(np.float32)
    dt = g.exponential(1.0, size=(batch, steps)).astype(np.float32)   # irregular arrivals
    return x, dt


MODELS = {
    "cfc_wired": lambda: CfC(6, AutoNCP(16, 3, seed=1), seed=1),
    "cfc_full_pure": lambda: CfC(6, 10, mode="pure", backbone_units=12, seed=2),
    "cfc_no_gate_mixed": lambda: CfC(6, AutoNCP(14, 2, seed=3), mode="no_gate", mixed_memory=True, seed=3),
    "ltc_wired": lambda: LTC(6, AutoNCP(16, 3, seed=4), seed=4),
    "multi_stride": lambda: LiquidSequence(MultiStrideLiquid.build(6, AutoNCP(12, 2, seed=5), [1, 3, 5])),
}


@pytest.mark.parametrize("batch", [4, 50])    # 50: the large-batch CfC runner
@pytest.mark.parametrize("name", sorted(MODELS))
def test_resuming_from_state_equals_running_whole(name, batch):
    model = MODELS[name]().eval()
    x, dt = _data(batch=batch)
    y_whole, h_whole = model(x, dt)
    state, pieces = None, []
    for a, b in ((0, 7), (7, 8), (8, 21), (21, 30)):
        y, state = model(x[:, a:b], dt[:, a:b], state)
        pieces.append(y)
    np.testing.assert_array_equal(np.concatenate(pieces, axis=1), y_whole)
    np.testing.assert_array_equal(state, h_whole)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_event_by_event_cell_steps_equal_the_sequence(name):
    model = MODELS[name]().eval()
    x, dt = _data(batch=3, steps=10)
    y_seq, h_seq = model(x, dt)
    h = model.initial_state(3)
    for t in range(10):
        y, h = model.cell.step(x[:, t], h, dt[:, t])
        np.testing.assert_allclose(y, y_seq[:, t], atol=1e-6)
    np.testing.assert_allclose(h, h_seq, atol=1e-6)


@pytest.mark.parametrize("make", [
    lambda: CfC(6, AutoNCP(16, 3, seed=1), seed=1).cell,
    lambda: CfC(6, AutoNCP(16, 3, seed=1), mode="no_gate", seed=1).cell,
    lambda: CfCCell(6, 9, backbone_layers=0, seed=2)])
def test_cfc_step_is_one_function_at_every_batch_size(make):
    # one row runs as 1-D vectors, small batches through the fused plan, large ones through
    # the layered runner: the same numbers (rounding ~1e-7), shapes (batch, ·) throughout;
    # forward (plan from the parameters, what training differentiates) equals step exactly
    cell = make().eval()
    g = np.random.default_rng(0)
    n = 60
    x = g.normal(size=(n, 6)).astype(np.float32)
    h = (0.5 * g.normal(size=(n, cell.state_size))).astype(np.float32)
    dt = g.exponential(1.0, size=(n, 1)).astype(np.float32)
    y_all, h_all = cell.step(x, h, dt)
    assert y_all.shape == (n, cell.output_size) and h_all.shape == (n, cell.state_size)
    for a in range(0, n, 5):
        y, h_new = cell.step(x[a:a + 5], h[a:a + 5], dt[a:a + 5])
        np.testing.assert_allclose(y, y_all[a:a + 5], atol=1e-6)
        np.testing.assert_allclose(h_new, h_all[a:a + 5], atol=1e-6)
    for i in range(0, n, 7):
        y, h_new = cell.step(x[i:i + 1], h[i:i + 1], dt[i, 0])
        assert y.shape == (1, cell.output_size) and h_new.shape == (1, cell.state_size)
        np.testing.assert_allclose(y, y_all[i:i + 1], atol=1e-6)
        np.testing.assert_allclose(h_new, h_all[i:i + 1], atol=1e-6)
        y_f, h_f = cell.forward(x[i:i + 1], h[i:i + 1], dt[i, 0])
        np.testing.assert_array_equal(y_f, y)
        np.testing.assert_array_equal(h_f, h_new)
    assert np.abs(h_all - h).max() > 1e-2           # the step did something


@pytest.mark.parametrize("name", sorted(MODELS))
def test_training_path_from_parameters_equals_cached_plan(name):
    model = MODELS[name]()
    x, dt = _data(batch=2, steps=8)
    y_eval, _ = model.eval()(x, dt)
    y_train, _ = model.train()(x, dt)
    np.testing.assert_allclose(y_train, y_eval, atol=1e-6)


def test_cached_plan_follows_replaced_parameters():
    model = CfC(6, AutoNCP(16, 3, seed=1), seed=1).eval()
    x, dt = _data(batch=2, steps=5)
    before, _ = model(x, dt)
    layer = model.cell.layers[2]
    layer.ff1_b = Parameter(layer.ff1_b + 0.5)            # what an optimizer step does
    after, _ = model(x, dt)
    assert np.abs(after - before).max() > 1e-3
    fresh = CfC(6, AutoNCP(16, 3, seed=1), seed=1).eval()
    fresh.load_state_dict(model.state_dict())
    np.testing.assert_array_equal(fresh(x, dt)[0], after)


@pytest.mark.parametrize("make", [lambda: CfC(8, AutoNCP(32, 4, seed=0), seed=0),
                                  lambda: CfC(8, 32, seed=0),
                                  lambda: LTC(8, AutoNCP(32, 4, seed=0), seed=0)])
def test_random_untrained_network_neither_dies_nor_explodes(make):
    # reservoir use: random weights, long irregular sequence
    model = make().eval()
    x, dt = _data(batch=2, steps=2000, feats=8, seed=3)
    y, h = model(x, dt)
    late = y[:, 1000:]
    assert np.isfinite(y).all() and np.abs(h).max() < 10.0
    assert late.std(axis=1).min() > 1e-3                      # still responding to inputs


def test_elapsed_time_matters_and_defaults_to_one():
    model = CfC(6, AutoNCP(16, 3, seed=1), seed=1).eval()
    x, dt = _data(batch=2, steps=6)
    y_dt, _ = model(x, dt)
    y_one, _ = model(x, np.ones_like(dt))
    np.testing.assert_array_equal(model(x)[0], y_one)
    np.testing.assert_array_equal(model(x, 1.0)[0], y_one)
    assert np.abs(y_dt - y_one).max() > 1e-3


@pytest.mark.parametrize("name", ["cfc_wired", "ltc_wired", "multi_stride"])
def test_masked_steps_hold_the_state_so_ragged_keys_batch_together(name):
    model = MODELS[name]().eval()
    x, dt = _data(batch=3, steps=12)
    lengths = [12, 5, 9]
    mask = np.arange(12)[None, :] < np.asarray(lengths)[:, None]
    y, h = model(x, dt, mask=mask)
    for b, n in enumerate(lengths):
        y_b, h_b = model(x[b:b + 1, :n], dt[b:b + 1, :n])
        np.testing.assert_allclose(y[b, :n], y_b[0], atol=1e-6)
        np.testing.assert_allclose(h[b], h_b[0], atol=1e-6)
        np.testing.assert_array_equal(y[b, n:], np.repeat(y[b, n - 1:n], 12 - n, axis=0))
    with pytest.raises(ValueError, match="mask must be"):
        model(x, dt, mask=mask[:, :3])


def test_return_last_and_empty_sequences():
    model = CfC(6, AutoNCP(16, 3, seed=1), return_sequences=False, seed=1).eval()
    x, dt = _data(batch=2, steps=6)
    y_last, h = model(x, dt)
    assert y_last.shape == (2, 3)
    np.testing.assert_array_equal(y_last, model.cell.output(h))
    y0, h0 = model(x[:, :0], dt[:, :0], h)
    np.testing.assert_array_equal(h0, h)


def test_bad_inputs_are_named():
    model = CfC(6, AutoNCP(16, 3, seed=1)).eval()
    x, dt = _data(batch=2, steps=4)
    with pytest.raises(ValueError, match=r"x must be \(batch, time, features\)"):
        model(x[0], dt)
    with pytest.raises(ValueError, match="x has 5 features, the model takes 6"):
        model(x[..., :5], dt)
    with pytest.raises(ValueError, match="dt must be"):
        model(x, dt[:, :3])
    with pytest.raises(ValueError, match="finite and >= 0"):
        model(x, -dt)
    with pytest.raises(ValueError, match="state must be"):
        model(x, dt, np.zeros((2, 5), np.float32))
    with pytest.raises(ValueError, match="unknown CfC mode"):
        CfCCell(3, 4, mode="fast")


def test_mixed_memory_state_holds_lstm_memory():
    cell = MixedMemoryCell(CfCCell(4, 5, backbone_layers=0, seed=1), seed=1).eval()
    assert cell.state_size == 10
    y, h = cell.step(np.ones((1, 4), np.float32), cell.initial_state(1), 1.0)
    assert np.abs(ops.to_numpy(h)[:, 5:]).max() > 0                # the LSTM memory moved
