"""Every liquid model gives the same numbers on numpy, torch and mlx (float32 tolerance),
saves and loads across backends through model files, and differentiates on torch and mlx."""
from __future__ import annotations

import numpy as np
import pytest

from ember_models import backend as backend_mod
from ember_models import ops
from ember_models.backend import set_backend
from ember_models.liquid import (CfC, LTC, AdaptiveTrigger, LiquidSequence, MultiStrideLiquid)
from ember_models.model_file import load_module, save_module
from ember_models.wiring import AutoNCP

BACKENDS = ("numpy", "torch", "mlx")
TOL = 2e-5


@pytest.fixture(autouse=True)
def restore_backend():
    previous = backend_mod._current
    yield
    if previous is not None:
        set_backend(previous.name)


MODELS = {
    "cfc_wired": lambda: CfC(5, AutoNCP(14, 3, seed=1), seed=1),
    "cfc_no_gate_wired": lambda: CfC(5, AutoNCP(14, 3, seed=1), mode="no_gate", seed=2),
    "cfc_pure_full": lambda: CfC(5, 8, mode="pure", backbone_units=10, seed=3),
    "cfc_gelu_2layers_proj": lambda: CfC(5, 8, backbone_layers=2, backbone_units=10,
                                         backbone_activation="gelu", proj_size=2, seed=4),
    "cfc_mixed": lambda: CfC(5, AutoNCP(12, 2, seed=5), mixed_memory=True, seed=5),
    "ltc_wired": lambda: LTC(5, AutoNCP(14, 3, seed=6), seed=6),
    "ltc_full_mixed": lambda: LTC(5, 6, mixed_memory=True, implicit_param_constraints=False, seed=7),
    "multi_stride": lambda: LiquidSequence(MultiStrideLiquid.build(
        5, AutoNCP(10, 2, seed=8), [1.0, 1.7], stride_unit="seconds", seed=8)),
    "multi_stride_steps": lambda: LiquidSequence(MultiStrideLiquid.build(
        5, AutoNCP(10, 2, seed=9), [1, 3], kind="ltc", seed=9)),
}


def _data(batch=3, steps=9, feats=5, seed=0):
    g = np.random.default_rng(seed)
    return (g.normal(size=(batch, steps, feats)).astype(np.float32),
            g.uniform(0.1, 1.5, size=(batch, steps)).astype(np.float32))


def _run_on(name, make, state_dict, x, dt):
    set_backend(name)
    model = make().eval()
    model.load_state_dict(state_dict)
    h0 = ops.from_numpy(np.full((x.shape[0], model.state_size), 0.1, np.float32))
    y, h = model(ops.from_numpy(x), ops.from_numpy(dt), h0)
    return ops.to_numpy(y), ops.to_numpy(h)


@pytest.mark.parametrize("model_name", sorted(MODELS))
def test_same_outputs_on_every_backend(model_name):
    set_backend("numpy")
    make = MODELS[model_name]
    weights = {k: (None if v is None else ops.to_numpy(v)) for k, v in make().state_dict().items()}
    x, dt = _data(batch=3 if "ltc" in model_name else 50)    # 50: large-batch CfC path too
    ref_y, ref_h = _run_on("numpy", make, weights, x, dt)
    assert np.abs(ref_y).max() > 1e-3
    for name in BACKENDS[1:]:
        y, h = _run_on(name, make, weights, x, dt)
        np.testing.assert_allclose(y, ref_y, atol=TOL, err_msg=name)
        np.testing.assert_allclose(h, ref_h, atol=TOL, err_msg=name)


@pytest.mark.parametrize("batch", [1, 5])   # one row (1-D vectors inside), a small batch
@pytest.mark.parametrize("model_name", ["cfc_wired", "cfc_no_gate_wired", "cfc_mixed"])
def test_cfc_small_batch_steps_same_on_every_backend(model_name, batch):
    set_backend("numpy")
    make = MODELS[model_name]
    weights = {k: (None if v is None else ops.to_numpy(v)) for k, v in make().state_dict().items()}
    x, dt = _data(batch=batch, steps=6)
    ref_y, ref_h = _run_on("numpy", make, weights, x, dt)
    for name in BACKENDS[1:]:
        y, h = _run_on(name, make, weights, x, dt)
        np.testing.assert_allclose(y, ref_y, atol=TOL, err_msg=name)
        np.testing.assert_allclose(h, ref_h, atol=TOL, err_msg=name)


def test_seeded_init_is_identical_across_backends():
    sds = {}
    for name in BACKENDS:
        set_backend(name)
        sds[name] = {k: ops.to_numpy(v) for k, v in CfC(5, AutoNCP(14, 3, seed=1), seed=9)
                     .state_dict().items() if v is not None}
    for name in BACKENDS[1:]:
        for k, v in sds["numpy"].items():
            np.testing.assert_array_equal(sds[name][k], v, err_msg=f"{name} {k}")


def test_trigger_same_on_every_backend():
    y = np.random.default_rng(1).normal(0, 0.1, size=(2, 60, 3)).astype(np.float32)
    y[1, 40, 2] += 2.0
    dt = np.full((2, 60), 0.5, np.float32)
    results = {}
    for name in BACKENDS:
        set_backend(name)
        trig = AdaptiveTrigger(3, k=4.0, time_constant=20.0)
        f, u, s = trig(ops.from_numpy(y), dt=ops.from_numpy(dt))
        results[name] = tuple(ops.to_numpy(a) for a in (f, u, s))
    assert results["numpy"][0].sum() == 1
    for name in BACKENDS[1:]:
        np.testing.assert_array_equal(results[name][0], results["numpy"][0])
        np.testing.assert_allclose(results[name][1], results["numpy"][1], atol=TOL)
        np.testing.assert_allclose(results[name][2], results["numpy"][2], atol=TOL)


@pytest.mark.parametrize("src,dst", [("numpy", "torch"), ("torch", "mlx"), ("mlx", "numpy")])
@pytest.mark.parametrize("model_name", ["cfc_mixed", "ltc_wired", "multi_stride"])
def test_model_files_load_on_another_backend(tmp_path, src, dst, model_name):
    x, dt = _data()
    set_backend(src)
    model = MODELS[model_name]().eval()
    y_src = ops.to_numpy(model(ops.from_numpy(x), ops.from_numpy(dt))[0])
    save_module(model, tmp_path / "m")
    set_backend(dst)
    loaded = load_module(tmp_path / "m").eval()
    assert type(loaded) is type(model)
    y_dst = ops.to_numpy(loaded(ops.from_numpy(x), ops.from_numpy(dt))[0])
    np.testing.assert_allclose(y_dst, y_src, atol=TOL)


def test_trigger_saves_and_loads(tmp_path):
    set_backend("numpy")
    trig = AdaptiveTrigger(2, k=2.5, halflife=30, direction="both", edge=False)
    save_module(trig, tmp_path / "t")
    assert load_module(tmp_path / "t").get_config() == trig.get_config()


def _grads(name, model_name, weights, x, dt):
    set_backend(name)
    model = MODELS[model_name]().train()
    model.load_state_dict(weights)
    xs, dts = ops.from_numpy(x), ops.from_numpy(dt)

    def loss(params):
        with model.substituted(params):
            y, _ = model(xs, dts)
        return ops.mean(ops.square(y - 0.3))

    value, grads = ops.value_and_grad(loss)(dict(model.named_parameters()))
    return float(ops.item(value)), {k: ops.to_numpy(g) for k, g in grads.items()}


@pytest.mark.parametrize("model_name", ["cfc_wired", "ltc_wired", "cfc_mixed"])
def test_gradients_agree_between_torch_and_mlx(model_name):
    set_backend("numpy")
    weights = {k: (None if v is None else ops.to_numpy(v))
               for k, v in MODELS[model_name]().state_dict().items()}
    x, dt = _data(batch=2, steps=5)
    v_t, g_t = _grads("torch", model_name, weights, x, dt)
    v_m, g_m = _grads("mlx", model_name, weights, x, dt)
    assert abs(v_t - v_m) < 1e-5
    moving = [k for k, g in g_t.items() if np.abs(g).max() > 1e-6]
    assert len(moving) >= len(g_t) // 2, f"too few parameters get a gradient: {moving}"
    for k in g_t:
        np.testing.assert_allclose(g_m[k], g_t[k], atol=1e-4, rtol=1e-3, err_msg=k)
