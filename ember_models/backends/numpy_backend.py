"""NumPy backend: the reference every other backend is checked against, and the fastest
choice for small-batch CPU inference (no dispatch overhead). No autodiff."""
from __future__ import annotations

import numpy as np

from ._common import Generator, dtype_name as _np_dtype_name


def _matmul(a, b):
    # np.dot is ~0.6 µs cheaper per call than np.matmul for small operands (a batch-1 liquid
    # step is a handful of these) and means the same whenever b is 1-D or 2-D.
    return _dot(a, b) if b.ndim <= 2 else _np_matmul(a, b)


_dot, _np_matmul = np.dot, np.matmul
_max_reduce, _min_reduce = np.maximum.reduce, np.minimum.reduce
try:  # the ufunc np.clip ends in
    from numpy._core.umath import clip as _clip
except ImportError:  # NumPy 1.x (pyproject allows >= 1.26)
    from numpy.core.umath import clip as _clip


class NumpyBackend:
    name = "numpy"
    has_autodiff = False
    slices_are_views = True      # a basic slice shares memory: writes through it land
    arrays_are_numpy = True      # the compiled (numba) loops take its arrays as they are
    float32, float64, float16 = np.float32, np.float64, np.float16
    int32, int64, bool_ = np.int32, np.int64, np.bool_

    # ---- dtype / device -------------------------------------------------------------
    def dtype(self, name):
        # validated like torch/mlx: only ember's dtypes (np.dtype alone accepts complex, ...)
        return np.dtype(_np_dtype_name("bool" if name in ("bool", "bool_") else name)).type

    def dtype_name(self, x):
        return _np_dtype_name(np.asarray(x).dtype)

    def device(self, x=None):
        return "cpu"

    def is_array(self, x):
        # full reductions (ops.sum(x)) return NumPy scalars, which are arrays of shape ()
        return isinstance(x, (np.ndarray, np.generic))

    # ---- creation / conversion --------------------------------------------------------
    def asarray(self, x, dtype=None):
        if dtype is None and not isinstance(x, np.ndarray):
            a = np.asarray(x)
            return a.astype(np.float32) if a.dtype == np.float64 else a
        return np.asarray(x, dtype=None if dtype is None else self.dtype(dtype) if isinstance(dtype, str) else dtype)

    def from_numpy(self, a):
        return np.asarray(a)

    def to_numpy(self, x):
        return np.asarray(x)

    def zeros(self, shape, dtype="float32"):
        return np.zeros(shape, dtype=self._dt(dtype))

    def ones(self, shape, dtype="float32"):
        return np.ones(shape, dtype=self._dt(dtype))

    def full(self, shape, value, dtype="float32"):
        return np.full(shape, value, dtype=self._dt(dtype))

    def zeros_like(self, x):
        return np.zeros_like(x)

    def ones_like(self, x):
        return np.ones_like(x)

    def arange(self, start, stop=None, step=1, dtype="int64"):
        return np.arange(start, stop, step, dtype=self._dt(dtype)) if stop is not None \
            else np.arange(start, dtype=self._dt(dtype))

    def eye(self, n, dtype="float32"):
        return np.eye(n, dtype=self._dt(dtype))

    def astype(self, x, dtype):
        if type(x) is np.ndarray and not isinstance(dtype, str):   # the per-step case
            return x.astype(dtype, copy=False)
        return np.asarray(x).astype(self._dt(dtype), copy=False)

    def copy(self, x):
        return np.array(x, copy=True)

    def item(self, x):
        return x.item() if isinstance(x, (np.ndarray, np.generic)) else np.asarray(x).item()

    def shape(self, x):
        # (an ndarray's own tuple: np.shape's Python wrapper costs ~0.5 us a call, and a
        # detector step asks ~20 times)
        return x.shape if type(x) is np.ndarray else tuple(np.shape(x))

    # ---- shape ops ----------------------------------------------------------------------
    def reshape(self, x, shape):
        return x.reshape(shape) if type(x) is np.ndarray else np.reshape(x, shape)

    def transpose(self, x, axes=None):
        return x.transpose(axes) if type(x) is np.ndarray else np.transpose(x, axes)

    def concatenate(self, xs, axis=0):
        return np.concatenate(xs, axis=axis)

    def stack(self, xs, axis=0):
        return np.stack(xs, axis=axis)

    def split(self, x, indices_or_sections, axis=0):
        return np.split(x, indices_or_sections, axis=axis)

    def expand_dims(self, x, axis):
        return np.expand_dims(x, axis)

    def squeeze(self, x, axis=None):
        return np.squeeze(x, axis=axis)

    def broadcast_to(self, x, shape):
        return np.broadcast_to(x, shape)

    def take(self, x, indices, axis=0):
        if type(x) is np.ndarray:
            return x.take(np.asarray(indices), axis=axis)
        return np.take(x, np.asarray(indices), axis=axis)

    def flip(self, x, axis):
        return np.flip(x, axis=axis)

    def tile(self, x, reps):
        return np.tile(x, reps)

    def index_update(self, x, index, values):
        """Functional ``x[index] = values``: returns a new array (the input is left unchanged)."""
        out = np.array(x, copy=True)
        out[index] = values
        return out

    # ---- elementwise ----------------------------------------------------------------------
    exp = staticmethod(np.exp)
    log = staticmethod(np.log)
    log1p = staticmethod(np.log1p)
    sqrt = staticmethod(np.sqrt)
    tanh = staticmethod(np.tanh)
    abs = staticmethod(np.abs)
    sign = staticmethod(np.sign)
    square = staticmethod(np.square)
    sin = staticmethod(np.sin)
    cos = staticmethod(np.cos)
    floor = staticmethod(np.floor)
    maximum = staticmethod(np.maximum)
    minimum = staticmethod(np.minimum)
    power = staticmethod(np.power)

    def clip(self, x, lo=None, hi=None):
        # both bounds: the ufunc np.clip calls after its Python-level checks (~1 us less)
        return _clip(x, lo, hi) if lo is not None and hi is not None else np.clip(x, lo, hi)

    def sigmoid(self, x):
        # e/(1+e) with e = exp(-|x|) <= 1 never overflows and keeps full relative precision in
        # the lower tail; 0.5*(1+tanh(x/2)) rounds to 0 in float32 below x ~ -17 (and is 2e-4
        # off at -10), which torch and mlx are not
        e = np.exp(-np.abs(x))
        return np.maximum(e, np.greater_equal(x, 0)) / (1.0 + e)

    def softplus(self, x):
        # max(x, 0) + log1p(e^-|x|): no overflow, same precision as np.logaddexp, which is not
        # vectorised for float32 (measured 1.8 ms vs 0.12 ms for 1e5 values; 0.9 vs 1.8 us for 32)
        return np.maximum(x, 0) + np.log1p(np.exp(-np.abs(x)))

    def relu(self, x):
        return np.maximum(x, 0)

    def logsumexp(self, x, axis=None, keepdims=False):
        x = np.asarray(x)
        m = np.max(x, axis=axis, keepdims=True)
        m = np.where(np.isfinite(m), m, 0)
        out = np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True)) + m
        return out if keepdims else np.squeeze(out, axis=axis) if axis is not None else out.reshape(())

    def softmax(self, x, axis=-1):
        e = np.exp(x - np.max(x, axis=axis, keepdims=True))
        return e / np.sum(e, axis=axis, keepdims=True)

    # ---- linear algebra / reductions ------------------------------------------------------
    matmul = staticmethod(_matmul)
    dot = staticmethod(np.dot)        # b 2-D: the same as matmul, one Python frame fewer

    def sum(self, x, axis=None, keepdims=False):
        return np.sum(x, axis=axis, keepdims=keepdims)

    def mean(self, x, axis=None, keepdims=False):
        return np.mean(x, axis=axis, keepdims=keepdims)

    def var(self, x, axis=None, keepdims=False):
        return np.var(x, axis=axis, keepdims=keepdims)

    def std(self, x, axis=None, keepdims=False):
        return np.std(x, axis=axis, keepdims=keepdims)

    # (the reductions np.max / np.min / np.sum end in, without their Python wrappers: ~1 us
    # a call; 0-d and non-array inputs keep the wrappers' handling)
    def max(self, x, axis=None, keepdims=False):
        if type(x) is np.ndarray and x.ndim:
            return _max_reduce(x, axis=axis, keepdims=keepdims)
        return np.max(x, axis=axis, keepdims=keepdims)

    def min(self, x, axis=None, keepdims=False):
        if type(x) is np.ndarray and x.ndim:
            return _min_reduce(x, axis=axis, keepdims=keepdims)
        return np.min(x, axis=axis, keepdims=keepdims)

    def argmax(self, x, axis=None):
        return np.argmax(x, axis=axis)

    def argmin(self, x, axis=None):
        return np.argmin(x, axis=axis)

    def cumsum(self, x, axis=0):
        return np.cumsum(x, axis=axis)

    # ---- comparisons / selection ---------------------------------------------------------
    def where(self, cond, a, b):
        out = np.where(cond, a, b)
        # two Python floats make float64 here; asarray's policy (and torch, mlx) is float32
        if out.dtype == np.float64 and not (getattr(a, "dtype", None) == np.float64
                                            or getattr(b, "dtype", None) == np.float64):
            return out.astype(np.float32)
        return out

    greater = staticmethod(np.greater)
    greater_equal = staticmethod(np.greater_equal)
    less = staticmethod(np.less)
    less_equal = staticmethod(np.less_equal)
    equal = staticmethod(np.equal)
    logical_and = staticmethod(np.logical_and)
    logical_or = staticmethod(np.logical_or)
    logical_not = staticmethod(np.logical_not)
    isfinite = staticmethod(np.isfinite)
    isnan = staticmethod(np.isnan)

    def allclose(self, a, b, rtol=1e-5, atol=1e-6):
        return bool(np.allclose(a, b, rtol=rtol, atol=atol))

    # ---- random / autodiff ------------------------------------------------------------------
    def generator(self, seed=None):
        return Generator(self, seed)

    def stop_gradient(self, x):
        return x

    def value_and_grad(self, fn):
        raise NotImplementedError(
            "the numpy backend has no autodiff: gradient training needs torch or mlx "
            "(pip install 'ember[torch]' or 'ember[mlx]', then set_backend('torch') or "
            "EMBER_BACKEND=torch). Inference and RBM contrastive-divergence training run on numpy.")

    def _dt(self, dtype):
        return self.dtype(dtype) if isinstance(dtype, str) else dtype


BACKEND = NumpyBackend()
