"""ember_models.training: truncated BPTT teaches a CfC an irregularly-sampled task (torch and
mlx, same history), numpy refuses clearly, early stopping restores the best weights, and
train_rbm keeps a loss history and stops early."""
from __future__ import annotations

import numpy as np
import pytest

from ember_models.backend import installed_backends, using_backend
from ember_models.batches import BatchSourceError
from ember_models.liquid import CfC
from ember_models.rbm import RBM
from ember_models.training import (EarlyStopping, TrainResult, rbm_loss, sequence_loss,
                                   train_bptt, train_rbm)

AUTODIFF = [b for b in ("torch", "mlx") if b in installed_backends()]


@pytest.fixture(autouse=True)
def _one_torch_thread():
    # torch's OpenMP pool on a loaded 2-core machine makes these tiny per-step ops 20-50x
    # slower (measured: 34 s instead of 0.7 s for 4 epochs); one thread is what they need
    if "torch" not in installed_backends():
        yield
        return
    import torch
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def sine_task(n, steps, seed):
    """A sine observed at random times (gaps 0.05-0.5 s, random phase); the target is its
    cosine at the same instants, which needs the elapsed time: from the last two values
    alone, the slope (sin(t) - sin(t-dt)) / dt depends on dt."""
    g = np.random.default_rng(seed)
    dt = g.uniform(0.05, 0.5, (n, steps)).astype(np.float32)
    t = np.cumsum(dt, 1) + g.uniform(0, 2 * np.pi, (n, 1))
    return (np.sin(t)[..., None].astype(np.float32), dt, np.cos(t)[..., None].astype(np.float32))


def _cfc(seed=0):
    return CfC(1, 16, proj_size=1, backbone_units=32, seed=seed)


@pytest.mark.parametrize("backend", AUTODIFF)
def test_cfc_learns_an_irregularly_sampled_sine_by_truncated_bptt(backend):
    train, val = sine_task(256, 40, 0), sine_task(64, 40, 1)
    with using_backend(backend):
        model = _cfc()
        before = sequence_loss(model, *val)
        result = train_bptt(model, *train, val=val, epochs=8, batch_size=32, bptt=20, lr=0.02,
                            seed=0, progress=False)
        after = sequence_loss(model.eval(), *val)
    assert before > 0.3                                  # measured 0.69; predicting 0: 0.5
    assert after < 0.04, result.val_loss                 # measured 0.0229 (torch and mlx)
    assert after == pytest.approx(min(result.val_loss), rel=1e-5)   # best weights restored
    assert len(result.train_loss) == len(result.val_loss) == result.epochs_run == 8
    assert result.best_epoch == int(np.argmin(result.val_loss))


def test_torch_and_mlx_train_to_the_same_history():
    if len(AUTODIFF) < 2:
        pytest.fail(f"needs torch and mlx installed, have {AUTODIFF}")
    histories = {}
    for backend in AUTODIFF:
        with using_backend(backend):
            result = train_bptt(_cfc(), *sine_task(64, 24, 2), val=sine_task(16, 24, 3),
                                epochs=2, batch_size=16, bptt=8, lr=0.02, progress=False)
            histories[backend] = result.train_loss + result.val_loss
    np.testing.assert_allclose(histories["torch"], histories["mlx"], rtol=1e-4)


def test_last_step_targets_and_whole_sequence_bptt():
    x, dt, y = sine_task(64, 16, 4)
    backend = AUTODIFF[0]
    with using_backend(backend):
        model = CfC(1, 8, proj_size=1, backbone_units=16, return_sequences=True, seed=1)
        before = sequence_loss(model, x, dt, y[:, -1])
        result = train_bptt(model, x, dt, y[:, -1], epochs=15, batch_size=16, bptt=None,
                            lr=0.03, patience=None, progress=False)
        after = sequence_loss(model.eval(), x, dt, y[:, -1])
    assert result.val_loss == [] and result.epochs_run == 15 and not result.stopped_early
    assert after < 0.5 * before, (before, after)


def test_early_stopping_restores_the_best_epoch():
    train, val = sine_task(64, 20, 5), sine_task(32, 20, 6)
    with using_backend(AUTODIFF[0]):
        model = _cfc()
        # an improvement of 10 is impossible: epoch 0 stays best, patience 2 stops after 3
        result = train_bptt(model, *train, val=val, epochs=20, batch_size=16, bptt=10,
                            lr=0.02, patience=2, min_delta=10.0, progress=True)
        restored = sequence_loss(model.eval(), *val)
    assert result.stopped_early and result.epochs_run == 3 and result.best_epoch == 0
    assert restored == pytest.approx(result.val_loss[0], rel=1e-5)
    assert isinstance(result, TrainResult) and result.as_dict()["best_epoch"] == 0


def test_bptt_on_numpy_says_it_needs_torch_or_mlx():
    with using_backend("numpy"):
        with pytest.raises(RuntimeError, match="needs automatic differentiation.*torch or mlx"):
            train_bptt(_cfc(), *sine_task(4, 5, 0))


def test_bptt_rejects_mismatched_shapes():
    x, dt, y = sine_task(8, 5, 0)
    with using_backend(AUTODIFF[0]):
        with pytest.raises(ValueError, match=r"dt must be \(batch, time\) = \(8, 5\)"):
            train_bptt(_cfc(), x, dt[:, :4], y)
        with pytest.raises(ValueError, match="y must be"):
            train_bptt(_cfc(), x, dt, y[:4])


def test_early_stopping_counts_epochs_without_improvement():
    stop = EarlyStopping(patience=2, min_delta=0.1)
    assert stop.update(0, 1.0) and not stop.should_stop
    assert not stop.update(1, 0.95)                      # within min_delta: no improvement
    assert stop.update(2, 0.5)
    assert not stop.update(3, 0.6) and not stop.should_stop
    assert not stop.update(4, 0.55) and stop.should_stop
    assert stop.best_epoch == 2 and stop.best_loss == 0.5
    with pytest.raises(FloatingPointError, match="diverged"):
        stop.update(5, float("nan"))


# ---- RBM ----------------------------------------------------------------------------------

def _prototypes(n, seed):
    """Rows near one of 4 fixed random 16-bit prototypes (5% of bits flipped)."""
    protos = (np.random.default_rng(99).random((4, 16)) < 0.5).astype(np.float32)
    rng = np.random.default_rng(seed)
    x = protos[rng.integers(0, 4, n)]
    return np.where(rng.random(x.shape) < 0.05, 1 - x, x).astype(np.float32)


def test_train_rbm_keeps_history_and_lowers_validation_loss():
    with using_backend("numpy"):
        rbm = RBM(16, 8, lr=0.1, batch_size=32, seed=0)
        val = _prototypes(200, 2)
        start = rbm_loss(rbm, val)
        result = train_rbm(rbm, _prototypes(2000, 1), epochs=10, val=val, patience=None,
                           progress=False)
        assert len(result.train_loss) == len(result.val_loss) == 10
        assert result.loss_name == "reconstruction_error" and not result.stopped_early
        assert result.val_loss[-1] < 0.5 * start, (start, result.val_loss)
        assert rbm_loss(rbm, val) == pytest.approx(min(result.val_loss), rel=1e-6)
        assert result.train_loss[-1] < result.train_loss[0]


def test_train_rbm_stops_early_and_restores_best_weights():
    with using_backend("numpy"):
        rbm = RBM(16, 8, lr=0.1, batch_size=32, seed=0)
        val = _prototypes(100, 3)
        result = train_rbm(rbm, _prototypes(500, 1), epochs=30, val=val, patience=1,
                           min_delta=1.0, progress=False)
        assert result.stopped_early and result.epochs_run == 2 and result.best_epoch == 0
        assert rbm_loss(rbm, val) == pytest.approx(result.val_loss[0], rel=1e-6)


def test_train_rbm_with_a_generator_fails_on_its_second_epoch():
    data = _prototypes(64, 1)
    with using_backend("numpy"):
        with pytest.raises(BatchSourceError, match="one-shot"):
            train_rbm(RBM(16, 4), (data[i:i + 16] for i in range(0, 64, 16)), epochs=3,
                      progress=False)
