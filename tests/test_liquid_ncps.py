"""Liquid cells against the reference library ncps: given the same weights (copied with
from_ncps), the same inputs and elapsed times, outputs and states agree within 1e-5."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from ncps import torch as nt
from ncps import wirings as nw

from ember_models.backend import get_backend, set_backend
from ember_models.liquid import CfCCell, LTCCell, LiquidSequence, WiredCfCCell, from_ncps

TOL = 1e-5


@pytest.fixture(autouse=True)
def numpy_backend():
    previous = get_backend().name
    set_backend("numpy")
    torch.manual_seed(0)
    yield
    set_backend(previous)


def _inputs(batch=1, steps=12, feats=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, steps, feats, generator=g)
    ts = torch.rand(batch, steps, 1, generator=g) * 2.0 + 0.05   # irregular elapsed times
    return x, ts


def _compare_sequence(ncps_model, batch=1):
    ncps_model.eval()
    x, ts = _inputs(batch)
    h0 = None
    with torch.no_grad():
        y_ref, h_ref = ncps_model(x, h0, timespans=ts)
    ours = from_ncps(ncps_model).eval()
    assert isinstance(ours, LiquidSequence)
    y, h = ours(x.numpy(), ts.numpy()[..., 0])
    h_ref = torch.cat(h_ref, 1) if isinstance(h_ref, tuple) else h_ref
    y_ref = y_ref.numpy()[..., :y.shape[-1]]
    np.testing.assert_allclose(y, y_ref, atol=TOL, rtol=0)
    np.testing.assert_allclose(h, h_ref.numpy(), atol=TOL, rtol=0)
    return y


@pytest.mark.parametrize("mode", ["default", "no_gate", "pure"])
def test_wired_cfc_matches_ncps(mode):
    y = _compare_sequence(nt.CfC(16, nw.AutoNCP(32, 4, seed=5), mode=mode))
    assert y.shape == (1, 12, 4) and np.abs(y).max() > 1e-3   # a real signal, not zeros


@pytest.mark.parametrize("mode", ["default", "no_gate", "pure"])
@pytest.mark.parametrize("backbone", [dict(), dict(backbone_layers=0),
                                      dict(backbone_layers=2, backbone_units=24, activation="gelu"),
                                      dict(activation="silu"), dict(activation="relu")])
def test_fully_connected_cfc_matches_ncps(mode, backbone):
    _compare_sequence(nt.CfC(16, 20, mode=mode, **backbone))


def test_cfc_variants_match_ncps_mixed_memory_projection_return_last():
    _compare_sequence(nt.CfC(16, nw.AutoNCP(24, 3, seed=2), mixed_memory=True))
    _compare_sequence(nt.CfC(16, 12, proj_size=3, mixed_memory=True, activation="tanh"))
    _compare_sequence(nt.CfC(16, nw.NCP(6, 5, 3, 4, 3, 4, 2), return_sequences=False))


@pytest.mark.parametrize("wiring", [lambda: nw.AutoNCP(32, 4, seed=5), lambda: 10,
                                    lambda: nw.Random(8, 3, 0.5, 4)])
@pytest.mark.parametrize("implicit", [True, False])
def test_ltc_matches_ncps(wiring, implicit):
    _compare_sequence(nt.LTC(16, wiring(), implicit_param_constraints=implicit, ode_unfolds=4))


def test_ltc_mixed_memory_and_mappings_match_ncps():
    _compare_sequence(nt.LTC(16, nw.AutoNCP(20, 2, seed=1), mixed_memory=True))
    _compare_sequence(nt.LTC(16, 8, input_mapping="linear", output_mapping=None))


@pytest.mark.parametrize("batch", [5, 64])   # 64: the large-batch (layered) CfC runner
def test_cells_match_ncps_with_a_batch_and_per_sample_elapsed_times(batch):
    # ncps' sequence wrappers squeeze timespans to (batch,), which only broadcasts for batch 1;
    # its cells take (batch, 1) elapsed times, so compare cells for batch > 1
    x, ts = _inputs(batch=batch, steps=6)
    cases = [nt.CfCCell(16, 9, mode="default"),
             nt.WiredCfCCell(16, nw.AutoNCP(24, 3, seed=8), mode="no_gate"),
             nt.LTCCell(nw.AutoNCP(24, 3, seed=8), 16, implicit_param_constraints=True)]
    expected_types = (CfCCell, WiredCfCCell, LTCCell)
    for ncell, kind in zip(cases, expected_types):
        ours = from_ncps(ncell).eval()
        assert isinstance(ours, kind)
        h_ref = torch.zeros(batch, ours.state_size)
        h = np.zeros((batch, ours.state_size), np.float32)
        for t in range(6):
            with torch.no_grad():
                y_ref, h_ref = ncell(x[:, t], h_ref, ts[:, t])
            y, h = ours.step(x[:, t].numpy(), h, ts[:, t].numpy())
            np.testing.assert_allclose(h, h_ref.numpy(), atol=TOL, rtol=0)
            np.testing.assert_allclose(y, y_ref.numpy()[:, :y.shape[1]], atol=TOL, rtol=0)


def test_from_ncps_rejects_what_it_cannot_convert():
    with pytest.raises(TypeError, match="unsupported module Linear"):
        from_ncps(torch.nn.Linear(2, 2))
