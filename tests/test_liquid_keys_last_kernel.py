"""The reservoir's compiled round loop (liquid/keys_last_kernel.py) against the NumPy rounds it
replaces on the NumPy backend (``KeysLastReservoir.step`` per round, which equals
``MultiStrideLiquid.next_state`` bit for bit: tests/test_liquid_multi_stride.py)."""
from __future__ import annotations

import numpy as np
import pytest

from ember_models import ops
from ember_models.liquid import MultiStrideLiquid
from ember_models.liquid.cfc import WiredCfCCell
from ember_models.liquid.keys_last import KeysLastReservoir
from ember_models.wiring import AutoNCP
from liquid_nets import KEYS_LAST_CASES, mixed_reservoir


@pytest.fixture(autouse=True)
def _numpy_backend():
    # the flag (and so the compiled loop) is the NumPy backend's
    from ember_models.backend import get_backend, set_backend
    before = get_backend().name
    set_backend("numpy")
    yield
    set_backend(before)


def test_tanh32_is_within_a_few_ulp_of_tanh():
    from ember_models.liquid.keys_last_kernel import tanh_array
    x = np.concatenate([np.linspace(-12, 12, 400_001),
                        np.sign(np.linspace(-1, 1, 20_001)) * 10.0 ** np.linspace(-9, 1, 20_001),
                        [0.0, -0.0, 7.9, 8.0, 50.0, -50.0]]).astype(np.float32)
    got = np.empty_like(x)
    tanh_array(x, got)
    ref = np.tanh(x.astype(np.float64))
    err = np.abs(got - ref)
    assert err.max() <= 2.5e-7
    assert (err / np.spacing(np.abs(ref).astype(np.float32))).max() <= 3.6
    assert np.all(np.abs(got) <= 1.0) and np.all(np.sign(got) == np.sign(x))
    special = np.array([np.nan, np.inf, -np.inf], np.float32)
    out = np.empty_like(special)
    tanh_array(special, out)
    np.testing.assert_array_equal(out, np.tanh(special))        # NaN, 1, -1 as NumPy's
    assert tanh_array.__module__ == "ember_models.liquid.keys_last_kernel"


def _rounds(batch: int, steps: int, drop: int):
    """Round sizes: every key for the first half, then a prefix (the keys still running)."""
    sizes = [batch if t < steps // 2 else batch - drop - (t % 3) for t in range(steps)]
    return np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)


@pytest.mark.parametrize("unit,pool,mode", KEYS_LAST_CASES)
def test_compiled_rounds_step_like_the_numpy_rounds(unit, pool, mode):
    ms = mixed_reservoir(unit, pool, mode, every_step_branch=True)
    res = KeysLastReservoir.for_network(ms)
    rng = np.random.default_rng(3)
    batch, steps = 37, 14
    starts = _rounds(batch, steps, drop=6)
    c = int(starts[-1])
    u = rng.normal(size=(5, c)).astype(np.float32)
    ts = rng.uniform(0.2, 2.5, size=(1, c)).astype(np.float32)
    h = rng.normal(scale=0.3, size=(batch, ms.state_size)).astype(np.float32)
    book = ms._book
    h[:, book:book + 8] = 0.0
    h[:, book:book + 4] = np.arange(batch)[:, None] % 4         # per-key phases: some due
    h[:, book + 4:book + 8] = rng.uniform(0, 2, size=(batch, 4))
    n_out = sum(cl.output_size for cl in ms.branches)

    def run(compiled: bool):
        X = res.load(h)
        outs, after = np.zeros((n_out, c), np.float32), np.zeros((n_out, c), np.float32)
        ops.arrays_are_numpy = compiled
        try:
            res.run_rounds(X, starts, u, ts, outs, after)
        finally:
            ops.arrays_are_numpy = True
        return res.store(X), outs, after

    h_ref, outs_ref, after_ref = run(False)
    h_got, outs_got, after_got = run(True)
    assert not np.array_equal(h_ref, h)                        # it did step
    np.testing.assert_allclose(h_got, h_ref, rtol=0, atol=2e-6)
    np.testing.assert_allclose(outs_got, outs_ref, rtol=0, atol=2e-6)
    np.testing.assert_allclose(after_got, after_ref, rtol=0, atol=2e-6)
    # the bookkeeping (counts, elapsed time, pooled sums) is exact: same float32 sums
    np.testing.assert_array_equal(h_got[:, book:], h_ref[:, book:])


def test_compiled_rounds_without_after_and_with_no_rounds():
    ms = MultiStrideLiquid([WiredCfCCell(4, AutoNCP(8, 2, seed=1), seed=1)], [1]).eval()
    res = KeysLastReservoir.for_network(ms)
    h = np.zeros((3, ms.state_size), np.float32)
    X = res.load(h)
    outs = np.zeros((2, 0), np.float32)
    res.run_rounds(X, np.zeros(1, np.int64), np.zeros((4, 0), np.float32),
                   np.zeros((1, 0), np.float32), outs)
    np.testing.assert_array_equal(res.store(X), h)
    u = np.ones((4, 3), np.float32)
    outs = np.zeros((2, 3), np.float32)
    res.run_rounds(X, np.array([0, 3], np.int64), u, np.ones((1, 3), np.float32), outs)
    assert np.all(outs == 0.0)                  # the outputs before the event: the zero state
    assert np.all(res.outputs(X) != 0.0)
