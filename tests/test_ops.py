"""Every op of ``ember_models.ops`` checked against NumPy (float64 reference) on every installed
backend, plus the seeded generator and autodiff.

``test_every_op_has_a_test`` fails when an op in ``ops.OP_NAMES`` is not called in this file,
so a new op cannot slip in untested.
"""
from __future__ import annotations

import math
import re

import numpy as np
import pytest

from ember_models import ops
from ember_models.backend import installed_backends, using_backend

BACKENDS = installed_backends()
AUTODIFF = [b for b in BACKENDS if b in ("torch", "mlx")]
RTOL, ATOL = 1e-5, 1e-6          # float32 tolerance


@pytest.fixture(params=BACKENDS)
def backend(request):
    with using_backend(request.param):
        yield request.param


def rng_array(shape, seed=0, low=-3.0, high=3.0):
    return np.random.default_rng(seed).uniform(low, high, size=shape).astype(np.float32)


def check(actual, expected, dtype="float32", rtol=RTOL, atol=ATOL):
    """``actual`` (a backend array) equals the NumPy ``expected`` in shape, dtype and value."""
    assert ops.is_array(actual), f"expected a {ops.backend_name} array, got {type(actual)}"
    got = ops.to_numpy(actual)
    expected = np.asarray(expected)
    assert got.shape == expected.shape, f"shape {got.shape} != {expected.shape}"
    assert ops.dtype_name(actual) == dtype, f"dtype {ops.dtype_name(actual)} != {dtype}"
    if expected.dtype.kind in "fc":
        np.testing.assert_allclose(got, expected, rtol=rtol, atol=atol)
    else:
        np.testing.assert_array_equal(got, expected)


# ---- dtype / device / creation / conversion ------------------------------------------------

DTYPE_NAMES = ["float32", "float64", "float16", "int32", "int64", "bool"]


@pytest.mark.parametrize("name", DTYPE_NAMES)
def test_dtype_names_round_trip(backend, name):
    dt = ops.dtype(name)
    attr = "bool_" if name == "bool" else name
    assert dt == getattr(ops, attr)
    z = ops.zeros((2, 3), dtype=name)
    assert ops.dtype_name(z) == name
    check(z, np.zeros((2, 3), dtype=name), dtype=name)
    check(ops.ones((2, 3), dtype=dt), np.ones((2, 3), dtype=name), dtype=name)
    check(ops.zeros_like(ops.ones(4, dtype=name)), np.zeros(4, dtype=name), dtype=name)
    check(ops.ones_like(ops.zeros(4, dtype=name)), np.ones(4, dtype=name), dtype=name)


def test_unsupported_dtype_is_an_error(backend):
    with pytest.raises(TypeError, match="complex64"):
        ops.dtype("complex64")


def test_device_and_is_array(backend):
    x = ops.zeros(3)
    assert isinstance(ops.device(x), str) and isinstance(ops.device(), str)
    if backend != "torch" or not __import__("torch").cuda.is_available():
        assert "cpu" in ops.device(x).lower()
    assert ops.is_array(x)
    assert ops.is_array(ops.sum(x))              # a full reduction is still an array
    assert not ops.is_array([1.0, 2.0]) and not ops.is_array(1.0)


@pytest.mark.parametrize("dtype", DTYPE_NAMES)
@pytest.mark.parametrize("shape", [(), (5,), (2, 3)])
def test_from_numpy_to_numpy_keeps_shape_and_dtype(backend, dtype, shape):
    a = (np.arange(int(np.prod(shape))) % 3).reshape(shape).astype(dtype)
    x = ops.from_numpy(a)
    assert ops.is_array(x)
    assert ops.shape(x) == shape and ops.dtype_name(x) == dtype
    back = ops.to_numpy(x)
    assert isinstance(back, np.ndarray) and back.dtype == a.dtype and back.shape == shape
    np.testing.assert_array_equal(back, a)


def test_from_numpy_of_non_contiguous_and_scalar(backend):
    a = np.arange(12, dtype=np.float32).reshape(3, 4)
    check(ops.from_numpy(a.T), a.T)
    check(ops.from_numpy(a[:, ::-1]), a[:, ::-1])
    check(ops.from_numpy(np.float32(2.5)), np.array(2.5, np.float32))


def test_asarray_dtype_policy(backend):
    check(ops.asarray(1.5), np.array(1.5, np.float32))                      # Python float -> f32
    check(ops.asarray([1.0, 2.0]), np.array([1, 2], np.float32))
    check(ops.asarray([1, 2]), np.array([1, 2], np.int64), dtype="int64")   # Python int -> i64
    check(ops.asarray(np.array([1.0, 2.0])), np.array([1.0, 2.0]), dtype="float64")  # kept
    check(ops.asarray([1, 0], dtype="bool"), np.array([True, False]), dtype="bool")
    check(ops.asarray([1, 2], dtype="float32"), np.array([1, 2], np.float32))
    x = ops.asarray([3.0])
    assert ops.to_numpy(ops.asarray(x)).tolist() == [3.0]                  # arrays pass through


def test_full_eye_arange(backend):
    check(ops.full((2, 3), 2.5), np.full((2, 3), 2.5, np.float32))
    check(ops.full(4, 7.0), np.full(4, 7.0, np.float32))
    check(ops.full((2, 2), 3.0, dtype="int32"), np.full((2, 2), 3, np.int32), dtype="int32")
    check(ops.full((2,), 1, dtype="float64"), np.ones(2), dtype="float64")
    check(ops.eye(3), np.eye(3, dtype=np.float32))
    check(ops.arange(5), np.arange(5), dtype="int64")
    check(ops.arange(2, 9, 3), np.arange(2, 9, 3), dtype="int64")
    check(ops.arange(0, 1, 0.25, dtype="float32"), np.arange(0, 1, 0.25, dtype=np.float32))


@pytest.mark.parametrize("target", DTYPE_NAMES)
def test_astype(backend, target):
    a = np.array([[-1.5, 0.0, 2.25]], np.float32)
    check(ops.astype(ops.from_numpy(a), target), a.astype(target), dtype=target, rtol=1e-3)


def test_copy_item_shape(backend):
    x = ops.from_numpy(np.arange(4, dtype=np.float32))
    c = ops.copy(x)
    c[0] = 10.0                                 # in-place write to the copy only
    assert ops.to_numpy(x).tolist() == [0, 1, 2, 3]
    assert ops.to_numpy(c).tolist() == [10, 1, 2, 3]
    v = ops.item(ops.sum(x))
    assert isinstance(v, float) and v == 6.0
    assert isinstance(ops.item(ops.arange(3)[1]), int)
    s = ops.shape(ops.zeros((2, 3)))
    assert s == (2, 3) and isinstance(s, tuple) and all(type(d) is int for d in s)


# ---- shape ops --------------------------------------------------------------------------------

A3 = rng_array((2, 3, 4))


def test_reshape_transpose_expand_squeeze(backend):
    x = ops.from_numpy(A3)
    check(ops.reshape(x, (6, 4)), A3.reshape(6, 4))
    check(ops.reshape(x, (-1,)), A3.reshape(-1))
    check(ops.reshape(x, 24), A3.reshape(24))
    check(ops.transpose(x), A3.T)
    check(ops.transpose(x, (1, 2, 0)), A3.transpose(1, 2, 0))
    check(ops.expand_dims(x, 0), A3[None])
    check(ops.expand_dims(x, -1), A3[..., None])
    y = ops.from_numpy(A3[None, :, None])
    check(ops.squeeze(y), A3)
    check(ops.squeeze(y, 0), A3[:, None])
    check(ops.squeeze(y, (0, 2)), A3)
    check(ops.broadcast_to(ops.from_numpy(A3[0, 0]), (5, 4)), np.broadcast_to(A3[0, 0], (5, 4)))


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_concatenate_stack(backend, axis):
    x, y = ops.from_numpy(A3), ops.from_numpy(A3 * 2)
    check(ops.concatenate([x, y], axis=axis), np.concatenate([A3, A3 * 2], axis=axis))
    check(ops.concatenate((x, y, x), axis=axis), np.concatenate([A3, A3 * 2, A3], axis=axis))
    check(ops.stack([x, y], axis=axis), np.stack([A3, A3 * 2], axis=axis))
    check(ops.stack((x, y)), np.stack([A3, A3 * 2]))


@pytest.mark.parametrize("how", [2, np.int64(2), [1, 3], (1,), [0, 4], []])
@pytest.mark.parametrize("axis", [2, -1])
def test_split(backend, how, axis):
    parts = ops.split(ops.from_numpy(A3), how, axis=axis)
    expected = np.split(A3, how, axis=axis)
    assert len(parts) == len(expected)
    for p, e in zip(parts, expected):
        check(p, e)


def test_split_sections_must_divide(backend):
    with pytest.raises(ValueError, match="equal division"):
        ops.split(ops.from_numpy(A3), 3, axis=2)


@pytest.mark.parametrize("indices, axis", [([1, 0, 1], 0), ([3, 0], -1), ([[0, 1], [2, 0]], 1),
                                           (1, 0), (np.array([1, 0]), 1), ([5, 0, 23], None)])
def test_take(backend, indices, axis):
    check(ops.take(ops.from_numpy(A3), indices, axis=axis), np.take(A3, indices, axis=axis))


def test_take_with_index_array_of_the_backend(backend):
    idx = ops.argmax(ops.from_numpy(A3[0]), axis=1)          # an int array the backend made
    check(ops.take(ops.from_numpy(A3[0, 0]), idx), np.take(A3[0, 0], np.argmax(A3[0], axis=1)))


def test_flip_tile(backend):
    x = ops.from_numpy(A3)
    check(ops.flip(x, 1), np.flip(A3, 1))
    check(ops.flip(x, -1), np.flip(A3, -1))
    check(ops.flip(x, (0, 2)), np.flip(A3, (0, 2)))
    check(ops.tile(x, (2, 1, 1)), np.tile(A3, (2, 1, 1)))
    check(ops.tile(ops.from_numpy(A3[0, 0]), 3), np.tile(A3[0, 0], 3))


@pytest.mark.parametrize("index", [2, (slice(None), 1), slice(1, 3), "int_array", "bool_mask"])
def test_index_update_is_functional(backend, index):
    a = rng_array((4, 3))
    if index == "int_array":
        np_index, index = np.array([0, 3]), ops.asarray([0, 3])
    elif index == "bool_mask":
        np_index = np.array([True, False, True, False])
        index = ops.from_numpy(np_index)
    else:
        np_index = index
    x = ops.from_numpy(a.copy())
    out = ops.index_update(x, index, 7.0)
    expected = a.copy()
    expected[np_index] = 7.0
    check(out, expected)
    check(x, a)                                       # the input is unchanged
    values = rng_array(expected[np_index].shape, seed=5)
    expected[np_index] = values
    check(ops.index_update(x, index, ops.from_numpy(values)), expected)


# ---- elementwise ---------------------------------------------------------------------------

POS = rng_array((3, 4), seed=1, low=0.05, high=4.0)
ANY = rng_array((3, 4), seed=2, low=-4.0, high=4.0)
UNARY = {
    "exp": (np.exp, ANY), "log": (np.log, POS), "log1p": (np.log1p, POS), "sqrt": (np.sqrt, POS),
    "tanh": (np.tanh, ANY), "abs": (np.abs, ANY), "sign": (np.sign, ANY),
    "square": (np.square, ANY), "sin": (np.sin, ANY), "cos": (np.cos, ANY),
    "floor": (np.floor, ANY), "relu": (lambda a: np.maximum(a, 0), ANY),
    "sigmoid": (lambda a: 1 / (1 + np.exp(-a)), ANY), "softplus": (lambda a: np.logaddexp(0, a), ANY),
}


@pytest.mark.parametrize("name", sorted(UNARY))
def test_unary(backend, name):
    ref, a = UNARY[name]
    check(getattr(ops, name)(ops.from_numpy(a)), ref(a.astype(np.float64)))
    a = a.copy()
    a[0, 0] = 0.5 if name in ("log", "log1p", "sqrt") else 0.0        # exact values too
    check(getattr(ops, name)(ops.from_numpy(a)), ref(a.astype(np.float64)))


@pytest.mark.parametrize("name, ref", [("maximum", np.maximum), ("minimum", np.minimum),
                                       ("power", np.power)])
def test_binary_with_arrays_and_scalars(backend, name, ref):
    fn = getattr(ops, name)
    a, b = (POS, POS[::-1]) if name == "power" else (ANY, ANY[::-1])
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    check(fn(ops.from_numpy(a), ops.from_numpy(b)), ref(a64, b64), rtol=1e-4 if name == "power" else RTOL)
    check(fn(ops.from_numpy(a), 0.5), ref(a64, 0.5))
    check(fn(2.0, ops.from_numpy(b)), ref(2.0, b64))
    check(fn(ops.from_numpy(a), ops.from_numpy(b[0])), ref(a64, b64[0]), rtol=1e-4)   # broadcast


def test_int_arrays_beside_float_scalars_are_not_truncated(backend):
    i, c = ops.asarray([1, 2, 3]), ops.from_numpy(np.array([True, False, True]))
    assert ops.to_numpy(ops.where(c, i, 0.5)).tolist() == [1.0, 0.5, 3.0]
    assert ops.to_numpy(ops.maximum(i, 1.5)).tolist() == [1.5, 2.0, 3.0]
    assert ops.to_numpy(ops.minimum(2.5, i)).tolist() == [1.0, 2.0, 2.5]
    assert ops.dtype_name(ops.where(c, i, 7)) == "int64"


def test_clip(backend):
    x = ops.from_numpy(ANY)
    check(ops.clip(x, -1.0, 2.0), np.clip(ANY, -1, 2))
    check(ops.clip(x, 0.0), np.clip(ANY, 0, None))
    check(ops.clip(x, None, 0.0), np.clip(ANY, None, 0))


EXTREME = np.array([-1e4, -100.0, -30.0, -1.0, 0.0, 1.0, 30.0, 100.0, 1e4], np.float32)


def test_sigmoid_softplus_stable_at_extremes(backend):
    x = ops.from_numpy(EXTREME)
    s, sp = ops.to_numpy(ops.sigmoid(x)), ops.to_numpy(ops.softplus(x))
    assert np.all(np.isfinite(s)) and np.all(np.isfinite(sp))
    assert s[0] == 0.0 and s[-1] == 1.0 and s[4] == 0.5
    assert sp[0] == 0.0 and sp[-1] == 1e4 and sp[-2] == pytest.approx(100.0)
    assert np.all((s >= 0) & (s <= 1)) and np.all(sp >= 0)


def test_sigmoid_softplus_relative_accuracy_in_the_tails(backend):
    # sigmoid(-30) ~ 9e-14 must not round to 0: log(sigmoid(x)) and RBM free energies use it
    a = np.linspace(-80, 80, 321).astype(np.float32)
    a64 = a.astype(np.float64)
    check(ops.sigmoid(ops.from_numpy(a)), 1 / (1 + np.exp(-a64)), atol=0)
    check(ops.softplus(ops.from_numpy(a)), np.logaddexp(0, a64), atol=0)


@pytest.mark.parametrize("axis", [None, 0, 1, -1, (0, 2)])
@pytest.mark.parametrize("keepdims", [False, True])
def test_logsumexp(backend, axis, keepdims):
    a64 = A3.astype(np.float64)
    m = a64.max(axis=axis, keepdims=True)
    ref = np.log(np.exp(a64 - m).sum(axis=axis, keepdims=True)) + m
    if not keepdims:
        ref = ref.reshape(np.sum(a64, axis=axis).shape)
    check(ops.logsumexp(ops.from_numpy(A3), axis=axis, keepdims=keepdims), ref)


def test_logsumexp_softmax_stable_at_extremes(backend):
    a = np.array([[1e4, 1e4], [-1e4, -1e4], [1e4, -1e4], [0.0, -math.inf]], np.float32)
    x = ops.from_numpy(a)
    check(ops.logsumexp(x, axis=1), np.array([1e4 + math.log(2), -1e4 + math.log(2), 1e4, 0.0]))
    check(ops.softmax(x, axis=1), np.array([[0.5, 0.5], [0.5, 0.5], [1, 0], [1, 0]]))
    with np.errstate(divide="ignore"):
        all_neg_inf = ops.to_numpy(ops.logsumexp(ops.full((2, 3), -math.inf), axis=1))
    assert all_neg_inf.tolist() == [-math.inf, -math.inf]
    full = ops.to_numpy(ops.logsumexp(ops.from_numpy(EXTREME)))
    assert np.isfinite(full) and full == pytest.approx(1e4)


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_softmax(backend, axis):
    e = np.exp(A3.astype(np.float64) - A3.max(axis=axis, keepdims=True))
    check(ops.softmax(ops.from_numpy(A3), axis=axis), e / e.sum(axis=axis, keepdims=True))


# ---- matmul and reductions --------------------------------------------------------------------

@pytest.mark.parametrize("sa, sb", [((3, 4), (4, 5)), ((3, 4), (4,)), ((4,), (4, 2)),
                                    ((2, 3, 4), (2, 4, 5)), ((2, 3, 4), (4, 2))])
def test_matmul(backend, sa, sb):
    a, b = rng_array(sa, seed=3), rng_array(sb, seed=4)
    check(ops.matmul(ops.from_numpy(a), ops.from_numpy(b)), a.astype(np.float64) @ b, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("sa", [(3, 4), (4,), (2, 3, 4), (1, 4)])
def test_dot(backend, sa):
    # ops.dot: matmul with a 2-D right operand, any rank on the left
    a, b = rng_array(sa, seed=5), rng_array((4, 6), seed=6)
    check(ops.dot(ops.from_numpy(a), ops.from_numpy(b)), a.astype(np.float64) @ b, rtol=1e-5, atol=1e-5)


REDUCTIONS = {"sum": np.sum, "mean": np.mean, "var": np.var, "std": np.std, "max": np.max, "min": np.min}


@pytest.mark.parametrize("name", sorted(REDUCTIONS))
@pytest.mark.parametrize("axis", [None, 0, 1, -1, (0, 2)])
@pytest.mark.parametrize("keepdims", [False, True])
def test_reductions(backend, name, axis, keepdims):
    ref = REDUCTIONS[name](A3.astype(np.float64), axis=axis, keepdims=keepdims)
    check(getattr(ops, name)(ops.from_numpy(A3), axis=axis, keepdims=keepdims), ref)


@pytest.mark.parametrize("name", ["argmax", "argmin"])
@pytest.mark.parametrize("axis", [None, 0, 1, -1])
def test_argmax_argmin(backend, name, axis):
    check(getattr(ops, name)(ops.from_numpy(A3), axis=axis), getattr(np, name)(A3, axis=axis),
          dtype="int64")


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_cumsum(backend, axis):
    check(ops.cumsum(ops.from_numpy(A3), axis=axis), np.cumsum(A3.astype(np.float64), axis=axis))


# ---- comparisons and selection ----------------------------------------------------------------

@pytest.mark.parametrize("name", ["greater", "greater_equal", "less", "less_equal", "equal"])
def test_comparisons(backend, name):
    a = np.array([[1.0, 2.0, 3.0], [3.0, 2.0, 1.0]], np.float32)
    b = np.array([2.0, 2.0, 2.0], np.float32)
    fn, ref = getattr(ops, name), getattr(np, name)
    check(fn(ops.from_numpy(a), ops.from_numpy(b)), ref(a, b), dtype="bool")
    check(fn(ops.from_numpy(a), 2.0), ref(a, 2.0), dtype="bool")


def test_logical_and_nan_checks(backend):
    p, q = np.array([True, True, False, False]), np.array([True, False, True, False])
    P, Q = ops.from_numpy(p), ops.from_numpy(q)
    check(ops.logical_and(P, Q), p & q, dtype="bool")
    check(ops.logical_or(P, Q), p | q, dtype="bool")
    check(ops.logical_not(P), ~p, dtype="bool")
    a = np.array([1.0, np.inf, -np.inf, np.nan, 0.0], np.float32)
    check(ops.isfinite(ops.from_numpy(a)), np.isfinite(a), dtype="bool")
    check(ops.isnan(ops.from_numpy(a)), np.isnan(a), dtype="bool")


def test_where(backend):
    cond = ANY > 0
    c, x = ops.from_numpy(cond), ops.from_numpy(ANY)
    check(ops.where(c, x, ops.from_numpy(-ANY)), np.where(cond, ANY, -ANY))
    check(ops.where(c, x, 0.0), np.where(cond, ANY, 0))
    check(ops.where(c, 1.0, x), np.where(cond, 1, ANY))
    check(ops.where(c, 1.0, 0.0), cond.astype(np.float32))           # scalars stay float32
    check(ops.where(ops.greater(x, 1.0), x, ops.from_numpy(ANY[0])), np.where(ANY > 1, ANY, ANY[0]))


def test_allclose(backend):
    x = ops.from_numpy(ANY)
    assert ops.allclose(x, ops.from_numpy(ANY + 1e-7)) is True
    assert ops.allclose(x, ops.from_numpy(ANY + 1e-2)) is False
    assert ops.allclose(x, ops.from_numpy(ANY + 1e-2), atol=0.1) is True


# ---- random numbers ---------------------------------------------------------------------------

def _draws(seed):
    g = ops.generator(seed)
    return {
        "normal": ops.to_numpy(g.normal((3, 4))),
        "normal_ms": ops.to_numpy(g.normal((500,), mean=2.0, std=0.5)),
        "uniform": ops.to_numpy(g.uniform((3, 4), low=-2.0, high=5.0)),
        "bernoulli": ops.to_numpy(g.bernoulli(ops.full((2, 50), 0.3))),
        "bernoulli_scalar": ops.to_numpy(g.bernoulli(0.5)),
        "integers": ops.to_numpy(g.integers(0, 10, (20,))),
        "permutation": np.asarray(g.permutation(8)),
        "normal_f64": ops.to_numpy(g.normal((2,), dtype="float64")),
    }


def test_generator_is_identical_across_backends(backend):
    with using_backend("numpy"):
        reference = _draws(1234)
    got = _draws(1234)
    assert got.keys() == reference.keys()
    for k in reference:
        assert got[k].dtype == reference[k].dtype and got[k].shape == reference[k].shape, k
        np.testing.assert_array_equal(got[k], reference[k], err_msg=k)


def test_generator_draws_are_numpy_pcg64(backend):
    g, ref = ops.generator(7), np.random.default_rng(7)
    np.testing.assert_array_equal(ops.to_numpy(g.normal((5,))), ref.normal(0, 1, 5).astype(np.float32))
    np.testing.assert_array_equal(ops.to_numpy(g.uniform((5,))), ref.uniform(0, 1, 5).astype(np.float32))


def test_generator_distributions(backend):
    d = _draws(99)
    assert d["normal"].dtype == np.float32 and d["normal_f64"].dtype == np.float64
    assert abs(d["normal_ms"].mean() - 2.0) < 0.1 and abs(d["normal_ms"].std() - 0.5) < 0.1
    assert d["uniform"].min() >= -2.0 and d["uniform"].max() < 5.0
    assert set(np.unique(d["bernoulli"])) <= {0.0, 1.0} and d["bernoulli"].dtype == np.float32
    assert 0.15 < d["bernoulli"].mean() < 0.45
    assert d["bernoulli_scalar"].shape == ()
    assert d["integers"].dtype == np.int64 and d["integers"].min() >= 0 and d["integers"].max() < 10
    assert sorted(d["permutation"].tolist()) == list(range(8))
    g = ops.generator(0)
    assert ops.to_numpy(g.bernoulli(ops.zeros(100))).sum() == 0
    assert ops.to_numpy(g.bernoulli(ops.ones(100))).sum() == 100
    assert not np.array_equal(_draws(1)["normal"], _draws(2)["normal"])


# ---- autodiff ---------------------------------------------------------------------------------

def _loss(params, x, y):
    # 0.5 * sum((sigmoid(x W + b) - y)^2) + sum(softplus(b)); "unused" gets a zero gradient
    p = ops.sigmoid(ops.matmul(x, params["w"]) + params["b"])
    return 0.5 * ops.sum(ops.square(p - y)) + ops.sum(ops.softplus(params["b"]))


def _analytic(w, b, x, y):
    p = 1 / (1 + np.exp(-(x @ w + b)))
    d = (p - y) * p * (1 - p)
    value = 0.5 * np.sum((p - y) ** 2) + np.sum(np.logaddexp(0, b))
    return value, {"w": x.T @ d, "b": d.sum(0) + 1 / (1 + np.exp(-b)), "unused": np.zeros(2)}


@pytest.mark.parametrize("name", AUTODIFF)
def test_value_and_grad_matches_analytic_gradient(name):
    w, b = rng_array((4, 3), seed=10), rng_array((3,), seed=11)
    x, y = rng_array((5, 4), seed=12), rng_array((5, 3), seed=13, low=0, high=1)
    with using_backend(name):
        assert ops.has_autodiff is True
        params = {"w": ops.from_numpy(w), "b": ops.from_numpy(b), "unused": ops.zeros(2)}
        value, grads = ops.value_and_grad(_loss)(params, ops.from_numpy(x), ops.from_numpy(y))
        ref_value, ref_grads = _analytic(w.astype(np.float64), b.astype(np.float64), x, y)
        assert ops.item(value) == pytest.approx(ref_value, rel=1e-5)
        assert set(grads) == set(params)
        for k in params:
            check(grads[k], ref_grads[k], atol=1e-5)


@pytest.mark.parametrize("name", AUTODIFF)
def test_stop_gradient_blocks_the_gradient(name):
    with using_backend(name):
        def f(p):
            return ops.sum(p["a"] * ops.stop_gradient(p["a"]))      # d/da = stop(a), not 2a
        a = np.array([1.0, -2.0, 3.0], np.float32)
        _, g = ops.value_and_grad(f)({"a": ops.from_numpy(a)})
        check(g["a"], a)
        check(ops.stop_gradient(ops.from_numpy(a)), a)


def test_numpy_has_no_autodiff_and_says_what_to_use():
    with using_backend("numpy"):
        assert ops.has_autodiff is False
        check(ops.stop_gradient(ops.from_numpy(ANY)), ANY)
        with pytest.raises(NotImplementedError) as info:
            ops.value_and_grad(_loss)
        msg = str(info.value)
        assert "torch" in msg and "mlx" in msg and "numpy" in msg


# ---- the op list itself -------------------------------------------------------------------------

def test_every_backend_implements_every_op():
    from ember_models.backend import get_backend_object
    for name in BACKENDS:
        b = get_backend_object(name)
        missing = [op for op in ops.OP_NAMES + ops.DTYPES if not hasattr(b, op)]
        assert not missing, f"backend {name} lacks {missing}"


def test_unknown_op_is_a_clear_error():
    with pytest.raises(AttributeError, match="no op 'fft'"):
        ops.fft


def test_every_op_has_a_test():
    source = open(__file__).read()
    called = set(re.findall(r"\bops\.([a-z_]+)\(", source)) | set(re.findall(r"\bg\.([a-z_]+)\(", source))
    called |= set(UNARY) | set(REDUCTIONS) | {"argmax", "argmin", "greater", "greater_equal",
                                               "less", "less_equal", "equal", "maximum", "minimum",
                                               "power"}       # called through getattr(ops, name)
    untested = sorted(set(ops.OP_NAMES) - called)
    assert not untested, f"ops without a test in tests/test_ops.py: {untested}"


def test_slices_are_views_says_whether_writes_through_a_slice_land(backend):
    # (the detector's round loop steps a column prefix of the reservoir's array in place and
    # writes it back only where a slice is a copy: liquid.keys_last.KeysLastReservoir.run_rounds)
    a = ops.from_numpy(np.zeros((3, 4), np.float32))
    prefix = a[:, :2]
    prefix[0:1] = ops.from_numpy(np.ones((1, 2), np.float32))
    landed = float(ops.to_numpy(a)[0, 0]) == 1.0
    assert landed is ops.slices_are_views
    assert ops.slices_are_views is (backend != "mlx")


def test_arrays_are_numpy_says_whether_compiled_loops_take_the_arrays(backend):
    # (the reservoir's rounds run as one numba call where this holds:
    # liquid.keys_last.KeysLastReservoir.run_rounds)
    a = ops.zeros((2, 3), ops.float32)
    assert ops.arrays_are_numpy is isinstance(a, np.ndarray)
    assert ops.arrays_are_numpy is (backend == "numpy")
