"""RBM: exact checks by enumeration / integration, training raises the exact likelihood,
backend parity, model files, score sign, online training and training-data sources."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

from ember_models import ops
from ember_models.backend import installed_backends, using_backend
from ember_models.batches import BatchSourceError
from ember_models.model_file import load_module, save_module
from ember_models.rbm import RBM

BACKENDS = installed_backends()


@pytest.fixture(autouse=True)
def _numpy_backend():
    with using_backend("numpy"):
        yield


def _np(x):
    return np.asarray(ops.to_numpy(x), dtype=np.float64)


def _set(rbm, w, b, c):
    rbm.load_state_dict({**rbm.state_dict(), "weight": w, "visible_bias": b, "hidden_bias": c})


def _tiny_rbm(n_visible, n_hidden, visible="bernoulli", seed=3, scale=1.0):
    rng = np.random.default_rng(seed)
    rbm = RBM(n_visible, n_hidden, visible=visible, dtype="float64")
    _set(rbm, rng.normal(0, scale, (n_visible, n_hidden)), rng.normal(0, 0.5, n_visible),
         rng.normal(0, 0.5, n_hidden))
    return rbm


def _binary_configs(n):
    return np.array(list(itertools.product([0.0, 1.0], repeat=n)))


def _exact_log_likelihood(rbm, data):
    """Mean log p(v) over ``data`` with log Z by enumerating every visible configuration."""
    f_all = _np(rbm.free_energy(_binary_configs(rbm.n_visible)))
    log_z = np.logaddexp.reduce(-f_all)
    return float(np.mean(-_np(rbm.free_energy(data)) - log_z))


def _structured_data(n=600, seed=0):
    """Two prototypes with bit-flip noise: a distribution an RBM can learn."""
    rng = np.random.default_rng(seed)
    protos = np.array([[1, 1, 1, 0, 0, 0], [0, 0, 0, 1, 1, 1]], float)
    x = protos[rng.integers(0, 2, n)]
    flip = rng.random(x.shape) < 0.05
    return np.where(flip, 1 - x, x)


# ---- exact free energy ----------------------------------------------------------------------

def test_bernoulli_free_energy_equals_marginalising_hidden_units_by_enumeration():
    rbm = _tiny_rbm(5, 4)
    w, b, c = _np(rbm.weight), _np(rbm.visible_bias), _np(rbm.hidden_bias)
    v, h = _binary_configs(5), _binary_configs(4)
    energy = -(v @ b)[:, None] - (h @ c)[None, :] - v @ w @ h.T          # E(v, h) for all pairs
    f_direct = -np.logaddexp.reduce(-energy, axis=1)
    np.testing.assert_allclose(_np(rbm.free_energy(v)), f_direct, rtol=0, atol=1e-12)
    # log p(v) = -F(v) - log Z with Z = Σ_v Σ_h exp(-E): a distribution summing to 1
    log_z = np.logaddexp.reduce(-energy, axis=None)
    log_p = -_np(rbm.free_energy(v)) - log_z
    assert np.exp(log_p).sum() == pytest.approx(1.0, abs=1e-12)
    np.testing.assert_allclose(np.logaddexp.reduce(-_np(rbm.free_energy(v))), log_z, atol=1e-12)


def test_free_energy_is_stable_for_huge_preactivations():
    for dtype in ("float32", "float64"):
        rbm = RBM(2, 2, dtype=dtype)
        _set(rbm, np.array([[1e4, -1e4], [1e4, -1e4]]), np.zeros(2), np.zeros(2))
        # v = (1, 1): pre-activations (2e4, -2e4): softplus = 2e4 and ~0, so F = -2e4
        f = _np(rbm.free_energy(np.array([[1.0, 1.0]])))
        assert np.isfinite(f).all()
        np.testing.assert_allclose(f, [-2e4], rtol=1e-6)


def test_gaussian_free_energy_marginalises_hidden_units_and_integrates_to_analytic_z():
    rbm = _tiny_rbm(2, 3, visible="gaussian", scale=0.4)
    w, b, c = _np(rbm.weight), _np(rbm.visible_bias), _np(rbm.hidden_bias)
    h = _binary_configs(3)
    grid = np.linspace(-10, 10, 801)
    step = grid[1] - grid[0]
    v = np.stack(np.meshgrid(grid, grid, indexing="ij"), -1).reshape(-1, 2)
    f = _np(rbm.free_energy(v))
    # F marginalises h exactly: E(v,h) = ½‖v-b‖² - c·h - vᵀWh
    energy = 0.5 * ((v - b) ** 2).sum(1)[:, None] - (h @ c)[None, :] - v @ w @ h.T
    np.testing.assert_allclose(f, -np.logaddexp.reduce(-energy, axis=1), atol=1e-10)
    # ∫ exp(-F(v)) dv by quadrature equals Z = (2π)^{n/2} Σ_h exp(c·h + bᵀWh + ½‖Wh‖²)
    z_numeric = np.exp(-f).sum() * step * step
    wh = h @ w.T
    z_exact = (2 * np.pi) * np.exp(h @ c + wh @ b + 0.5 * (wh ** 2).sum(1)).sum()
    assert z_numeric == pytest.approx(z_exact, rel=1e-6)


def test_gaussian_visible_samples_have_mean_b_plus_wh_and_unit_variance():
    rbm = _tiny_rbm(3, 2, visible="gaussian")
    h = np.tile([[1.0, 0.0]], (40_000, 1))
    samples = _np(rbm.sample_visible(h))
    np.testing.assert_allclose(samples.mean(0), _np(rbm.visible_bias) + _np(rbm.weight)[:, 0], atol=0.03)
    np.testing.assert_allclose(samples.var(0), 1.0, atol=0.03)


# ---- training raises the exact likelihood ------------------------------------------------

@pytest.mark.parametrize("k,persistent", [(1, False), (3, False), (1, True)])
def test_cd_training_raises_exact_log_likelihood(k, persistent):
    data = _structured_data()
    rbm = RBM(6, 4, k=k, persistent=persistent, lr=0.1, momentum=0.5, batch_size=20,
              dtype="float64", seed=1)
    before = _exact_log_likelihood(rbm, data)
    assert before == pytest.approx(6 * np.log(0.5), abs=0.05)   # tiny weights: near uniform
    rbm.fit(data, epochs=30)
    after = _exact_log_likelihood(rbm, data)
    # the data's own entropy bound: 1 bit for the prototype + 6 × H(0.05) ≈ 2.0 nats
    assert after > before + 1.0, (before, after)
    assert after > -3.2


def test_gaussian_rbm_learns_correlated_data():
    rng = np.random.default_rng(0)
    z = rng.normal(size=(2000, 1))
    data = np.hstack([z, z, -z, rng.normal(size=(2000, 1))]) + 0.1 * rng.normal(size=(2000, 4))
    data = (data - data.mean(0)) / data.std(0)
    rbm = RBM(4, 8, visible="gaussian", lr=0.01, batch_size=50, seed=0)
    err0 = float(np.mean(_np(rbm.reconstruction_error(data))))
    rbm.fit(data, epochs=20)
    err1 = float(np.mean(_np(rbm.reconstruction_error(data))))
    assert err1 < 0.6 * err0, (err0, err1)
    # a point that breaks the correlation (z, z, -z) is unusual; the same size along it is not.
    # (Unit-variance components cannot squeeze the noise directions, so the gap in free energy
    # is about half the squared distance off the data's line: ~5 here.)
    inlier, outlier = np.array([[2.0, 2.0, -2.0, 0.0]]), np.array([[2.0, -2.0, 2.0, 0.0]])
    gap = float(_np(rbm.free_energy(outlier))[0] - _np(rbm.free_energy(inlier))[0])
    assert gap > 3.0, gap
    assert float(_np(rbm.score(outlier))[0]) > np.quantile(_np(rbm.score(data)), 0.99)


# ---- score sign ---------------------------------------------------------------------------

def test_outlier_scores_higher_than_training_data():
    data = _structured_data(2000)
    rbm = RBM(6, 8, lr=0.1, batch_size=32, seed=2).fit(data, epochs=10)
    train_scores = _np(rbm.score(data))
    outlier = np.array([[1, 0, 1, 0, 1, 0]], float)     # neither prototype
    assert float(_np(rbm.score(outlier))[0]) > np.quantile(train_scores, 0.99)
    assert float(_np(rbm.free_energy(outlier))[0]) > np.quantile(_np(rbm.free_energy(data)), 0.99)
    assert float(_np(rbm.reconstruction_error(outlier))[0]) > np.median(_np(rbm.reconstruction_error(data)))
    # the normalised score is a z-score of the training free energies
    count, mean, var = _np(rbm.score_stats)
    assert count == 2000 * 10
    assert abs(train_scores.mean()) < 0.5 and 0.5 < train_scores.std() < 2.0
    np.testing.assert_allclose(_np(rbm.score(data, normalized=False)), _np(rbm.free_energy(data)))


def test_score_before_training_is_raw_free_energy_and_transform_is_probabilities():
    rbm = RBM(6, 3, seed=0)
    x = _structured_data(10)
    np.testing.assert_allclose(_np(rbm.score(x)), _np(rbm.free_energy(x)))
    t = _np(rbm.transform(x))
    assert t.shape == (10, 3) and (t > 0).all() and (t < 1).all()
    assert _np(rbm.score(x[0])).shape == (1,)            # one 1-D row is a batch of one


# ---- online training ----------------------------------------------------------------------

def test_partial_fit_trains_online_one_event_at_a_time():
    data = _structured_data(1500, seed=4)
    rbm = RBM(6, 4, lr=0.05, momentum=0.0, dtype="float64", seed=0)
    before = _exact_log_likelihood(rbm, data)
    for row in data:
        rbm.partial_fit(row)                             # batches of one, 1-D rows
    after = _exact_log_likelihood(rbm, data)
    assert after > before + 1.0, (before, after)
    assert _np(rbm.score_stats)[0] == 1500


def test_partial_fit_batches_equal_fit_on_the_same_batches():
    data = _structured_data(256)
    a = RBM(6, 4, batch_size=32, seed=5)
    b = RBM(6, 4, batch_size=32, seed=5)
    a.fit(data, epochs=1, shuffle=False)
    for i in range(0, 256, 32):
        b.partial_fit(data[i:i + 32])
    for name, value in a.state_dict().items():
        if name != "score_stats":
            np.testing.assert_array_equal(_np(value), _np(b.state_dict()[name]), err_msg=name)
    # score statistics: fit's are those of the final weights, partial_fit's a running merge
    # of each batch before its update; both count every row
    energy = _np(a.free_energy(data))
    np.testing.assert_allclose(_np(a.score_stats), [256, energy.mean(), energy.var()], rtol=1e-5)
    assert _np(b.score_stats)[0] == 256


@pytest.mark.parametrize("persistent", [False, True])
def test_updates_follow_settings_changed_between_batches(persistent):
    # the CD step caches its per-batch-shape constants (lr scales): changing lr must reach it
    data = _structured_data(64)
    rbm = RBM(6, 4, persistent=persistent, lr=0.05, momentum=0.0, weight_decay=0.0,
              batch_size=32, seed=0)
    rbm.partial_fit(data[:32])
    names = ("weight", "visible_bias", "hidden_bias")
    after_first = {n: _np(getattr(rbm, n)).copy() for n in names}
    assert np.abs(after_first["weight"] - _np(RBM(6, 4, seed=0).weight)).max() > 1e-4
    rbm.lr = 1e-12
    rbm.partial_fit(data[32:])
    for n in names:
        assert np.abs(_np(getattr(rbm, n)) - after_first[n]).max() < 1e-9, n


def test_score_stats_follow_the_last_window_of_training_rows():
    data = _structured_data(1000)
    rbm = RBM(6, 4, batch_size=50, stats_window=300, seed=0).fit(data, epochs=2, shuffle=False)
    energy = _np(rbm.free_energy(data[-300:]))
    np.testing.assert_allclose(_np(rbm.score_stats), [2000, energy.mean(), energy.var()], rtol=1e-5)


# ---- training data sources ------------------------------------------------------------------

def test_callable_and_reiterable_sources_are_read_again_every_epoch():
    data = _structured_data(128)
    batches = [data[i:i + 32] for i in range(0, 128, 32)]
    calls = []

    def reader():
        calls.append(1)
        return iter(batches)

    a = RBM(6, 4, batch_size=32, seed=1).fit(reader, epochs=3)
    b = RBM(6, 4, batch_size=32, seed=1).fit(batches, epochs=3)
    c = RBM(6, 4, batch_size=32, seed=1).fit(data, epochs=3, shuffle=False)
    assert len(calls) == 3
    assert _np(a.score_stats)[0] == 3 * 128
    for other in (b, c):
        np.testing.assert_array_equal(_np(a.weight), _np(other.weight))


def test_one_shot_generator_fails_clearly_on_second_epoch():
    data = _structured_data(64)
    gen = (data[i:i + 16] for i in range(0, 64, 16))
    rbm = RBM(6, 4, seed=0)
    with pytest.raises(BatchSourceError, match="one-shot iterator.*epoch 2 would train on nothing"):
        rbm.fit(gen, epochs=2)
    assert _np(rbm.score_stats)[0] == 64                 # epoch 1 did train
    # a single epoch from a generator is fine
    RBM(6, 4).fit((data[i:i + 16] for i in range(0, 64, 16)), epochs=1)


def test_bad_training_data_gives_clear_errors():
    rbm = RBM(6, 4)
    with pytest.raises(BatchSourceError, match="yielded no batches in epoch 1"):
        rbm.fit([], epochs=1)
    with pytest.raises(ValueError, match=r"RBM.fit: expected an array of shape \(n, 6\).*\(5, 3\)"):
        rbm.fit(np.zeros((5, 3)))
    with pytest.raises(ValueError, match="non-finite"):
        rbm.partial_fit(np.full((2, 6), np.nan))
    weight = _np(rbm.weight)
    poisoned = _structured_data(200)
    poisoned[150, 2] = np.nan
    with pytest.raises(ValueError, match="epoch 1 made the weights non-finite.*back to where"):
        rbm.fit(poisoned)
    np.testing.assert_array_equal(_np(rbm.weight), weight)
    with pytest.raises(BatchSourceError, match="expected a 2-D array, a callable"):
        rbm.fit(42)
    with pytest.raises(ValueError, match="visible='poisson'"):
        RBM(6, 4, visible="poisson")


# ---- backends and model files -----------------------------------------------------------------

def _train_on(backend, visible, persistent, data):
    with using_backend(backend):
        rbm = RBM(8, 5, visible=visible, persistent=persistent, k=2, lr=0.05, batch_size=16,
                  seed=11)
        rbm.fit(data, epochs=2)
        rbm.partial_fit(data[:7])
        out = {k: _np(v) for k, v in rbm.state_dict().items() if v is not None}
        out["score"] = _np(rbm.score(data))
        return out


@pytest.mark.parametrize("visible,persistent", [("bernoulli", False), ("bernoulli", True),
                                                ("gaussian", True), ("gaussian", False)])
def test_backends_train_to_the_same_weights(visible, persistent):
    rng = np.random.default_rng(7)
    data = (rng.random((96, 8)) < 0.4).astype(np.float32) if visible == "bernoulli" \
        else rng.normal(size=(96, 8)).astype(np.float32)
    reference = _train_on("numpy", visible, persistent, data)
    assert len(BACKENDS) >= 2, "backend parity needs torch or mlx installed"
    for backend in BACKENDS:
        if backend == "numpy":
            continue
        got = _train_on(backend, visible, persistent, data)
        for name, value in reference.items():
            np.testing.assert_allclose(got[name], value, rtol=1e-4, atol=2e-5,
                                       err_msg=f"{backend}: {name}")


def test_model_file_round_trip_across_backends(tmp_path):
    data = _structured_data(300)
    rbm = RBM(6, 4, persistent=True, seed=3).fit(data, epochs=3)
    save_module(rbm, tmp_path / "rbm")
    expected = _np(rbm.score(data))
    for backend in BACKENDS:
        with using_backend(backend):
            loaded = load_module(tmp_path / "rbm", expected=RBM)
            assert loaded.get_config() == rbm.get_config()
            np.testing.assert_allclose(_np(loaded.score(data)), expected, rtol=1e-5, atol=1e-5)
            for name, value in rbm.state_dict().items():
                np.testing.assert_array_equal(_np(loaded.state_dict()[name]), _np(value))
            loaded.partial_fit(data[:10])                 # keeps training after loading


# ---- the block CD step's random draws ---------------------------------------------------------

@pytest.mark.parametrize("n_visible,n_hidden,n,persistent,k",
                         [(64, 64, 10, True, 2), (5, 4, 7, False, 2), (5, 4, 7, True, 1)])
def test_chunked_uniforms_are_the_per_batch_draws_in_order(n_visible, n_hidden, n, persistent, k):
    # many batches' uniforms in one draw (raw PCG64 words for even counts, the float draw for
    # odd ones) must be exactly what per-batch float32 draws give, in the per-batch order
    from ember_models.rbm_step import BlockCD
    rbm = RBM(n_visible, n_hidden, persistent=persistent, batch_size=n, k=k, seed=4)
    reference = np.random.default_rng(0)
    reference.bit_generator.state = rbm.rng.numpy.bit_generator.state
    uv, uh = BlockCD(rbm)._uniforms(3, n)
    uv, uh = _np(uv), _np(uh)
    assert np.isneginf(uv[..., -1]).all() and np.isneginf(uh[..., -1]).all()
    for b in range(3):
        for step in range(k):
            order = [("v", n_visible), ("h", n_hidden)] if persistent else [("h", n_hidden), ("v", n_visible)]
            for kind, width in order:
                want = 2 * reference.random((n, width), dtype=np.float32) - 1
                got = (uv if kind == "v" else uh)[b, step, :, :-1]
                np.testing.assert_array_equal(got, want, err_msg=f"batch {b} step {step} {kind}")
    # the model's generator continues where the reference does
    assert rbm.rng.numpy.random(dtype=np.float32) == reference.random(dtype=np.float32)


@pytest.mark.parametrize("visible", ["bernoulli", "gaussian"])
def test_float32_free_energy_matches_float64_formula_and_follows_training(visible):
    # the fast path (row sums as products, cached bias rows, log1p(exp(x)) below 30) against
    # the formula in float64; then the cached bias rows must follow a training update and
    # a different number of rows
    rng = np.random.default_rng(3)
    rbm = RBM(48, 16, visible=visible, seed=2, init_std=0.3)
    _set(rbm, _np(rbm.weight), rng.normal(size=48), rng.normal(size=16))

    def reference(x):
        w, b, c = (_np(p).astype(np.float64) for p in (rbm.weight, rbm.visible_bias, rbm.hidden_bias))
        x = x.astype(np.float64)
        vis = -x @ b if visible == "bernoulli" else 0.5 * ((x - b) ** 2).sum(1)
        return vis - np.logaddexp(0, x @ w + c).sum(1)

    x = (rng.random((1250, 48)) < 0.5).astype(np.float32) if visible == "bernoulli" \
        else rng.normal(size=(1250, 48)).astype(np.float32)
    for rows in (x, x[:300], 40 * x[:5]):            # 40x: preactivations above 30 (stable path)
        np.testing.assert_allclose(_np(rbm.free_energy(rows)), reference(rows), rtol=2e-5, atol=2e-4)
    rbm.partial_fit(x[:64])
    np.testing.assert_allclose(_np(rbm.free_energy(x[:700])), reference(x[:700]), rtol=2e-5, atol=2e-4)


def test_kept_trainer_repacks_after_replaced_weights_and_failed_epochs():
    # the block-CD trainer is kept between calls; it must notice weights set from outside and
    # must not keep a block that a failed (NaN) epoch left half-trained
    data = _structured_data(96)
    bad = data.copy()
    bad[40, 2] = np.nan
    rng = np.random.default_rng(1)
    new_w, new_b, new_c = rng.normal(size=(6, 4)), rng.normal(size=6), rng.normal(size=4)

    def run(fresh_trainer: bool):
        rbm = RBM(6, 4, batch_size=32, seed=0)
        rbm.partial_fit(data[:32])
        _set(rbm, new_w, new_b, new_c)
        if fresh_trainer:
            rbm.__dict__.pop("_block_cd")
        rbm.partial_fit(data[32:64])
        with pytest.raises(ValueError, match="non-finite"):
            rbm.fit(bad, epochs=1)
        if fresh_trainer:
            rbm.__dict__.pop("_block_cd")
        rbm.partial_fit(data[64:])
        return {k: _np(v) for k, v in rbm.state_dict().items() if v is not None}

    kept, fresh = run(False), run(True)
    assert np.isfinite(kept["weight"]).all()
    for name, value in fresh.items():
        np.testing.assert_array_equal(kept[name], value, err_msg=name)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("visible", ["bernoulli", "gaussian"])
def test_free_energy_columns_equals_free_energy_of_the_rows(backend, visible):
    # the pipeline's detector holds its samples keys-last (one per column); large
    # pre-activations take softplus's stable branch
    rng = np.random.default_rng(5)
    with using_backend(backend):
        rbm = RBM(7, 4, visible=visible, dtype="float32")
        _set(rbm, rng.normal(0, 1.0, (7, 4)).astype(np.float32),
             rng.normal(0, 0.5, 7).astype(np.float32), rng.normal(0, 0.5, 4).astype(np.float32))
        for scale in (1.0, 40.0):
            v = (rng.normal(0, scale, (50, 7))).astype(np.float32)
            rows = _np(rbm.free_energy(ops.from_numpy(v)))
            cols = _np(rbm.free_energy_columns(ops.from_numpy(np.ascontiguousarray(v.T))))
            np.testing.assert_allclose(cols, rows, rtol=1e-5, atol=1e-4 * scale)
        with pytest.raises(ValueError, match=r"free_energy_columns.*\(7, n\)"):
            rbm.free_energy_columns(ops.from_numpy(v))
