"""MLX backend: autodiff and Apple-silicon GPUs. On Linux the ``mlx[cpu]`` wheel runs on CPU
with a reference BLAS (slow matmuls), so it is never the automatic choice there.
MLX evaluates lazily; ``to_numpy`` and ``item`` force evaluation."""
from __future__ import annotations

import numpy as np
import mlx.core as mx

from ._common import Generator

_DT = {"float32": mx.float32, "float64": mx.float64, "float16": mx.float16,
       "int32": mx.int32, "int64": mx.int64, "bool": mx.bool_, "bool_": mx.bool_}
_NAME = {mx.float32: "float32", mx.float64: "float64", mx.float16: "float16",
         mx.int32: "int32", mx.int64: "int64", mx.bool_: "bool"}


def _ax(axis):
    return list(axis) if isinstance(axis, tuple) else axis


class MlxBackend:
    name = "mlx"
    has_autodiff = True
    slices_are_views = False     # a slice is a new array: write it back
    arrays_are_numpy = False
    float32, float64, float16 = mx.float32, mx.float64, mx.float16
    int32, int64, bool_ = mx.int32, mx.int64, mx.bool_

    def __init__(self, device=None):
        if device is not None:
            mx.set_default_device(mx.gpu if device == "gpu" else mx.cpu)

    # ---- dtype / device -------------------------------------------------------------
    def dtype(self, name):
        if isinstance(name, mx.Dtype):
            return name
        if not isinstance(name, str):
            name = np.dtype(name).name
        try:
            return _DT[name]
        except KeyError:
            raise TypeError(f"unsupported dtype {name!r}") from None

    def dtype_name(self, x):
        return _NAME[x.dtype] if isinstance(x, mx.array) else np.asarray(x).dtype.name

    def device(self, x=None):
        return str(mx.default_device())

    def is_array(self, x):
        return isinstance(x, mx.array)

    # ---- creation / conversion --------------------------------------------------------
    def asarray(self, x, dtype=None):
        # the numpy backend's dtype policy: NumPy arrays keep their dtype, Python floats become
        # float32 and Python ints int64 (mx.array alone would give float32 and int32)
        if isinstance(x, mx.array):
            a = x
        elif isinstance(x, np.ndarray):
            a = self.from_numpy(x)
        else:
            n = np.asarray(x)
            a = self.from_numpy(n.astype(np.float32) if n.dtype == np.float64 else n)
        return a if dtype is None else a.astype(self.dtype(dtype))

    def from_numpy(self, a):
        # not np.ascontiguousarray (it returns at least 1-d: a 0-d array would become (1,)),
        # and float64 stated explicitly (mx.array alone silently makes it float32)
        a = np.asarray(a)
        a = a if a.flags.c_contiguous else np.ascontiguousarray(a)
        return mx.array(a, dtype=mx.float64) if a.dtype == np.float64 else mx.array(a)

    def to_numpy(self, x):
        return np.array(x, copy=True) if isinstance(x, mx.array) else np.asarray(x)

    def zeros(self, shape, dtype="float32"):
        return mx.zeros(shape, dtype=self.dtype(dtype))

    def ones(self, shape, dtype="float32"):
        return mx.ones(shape, dtype=self.dtype(dtype))

    def full(self, shape, value, dtype="float32"):
        dt = self.dtype(dtype)
        return mx.full(shape, value, dtype=dt).astype(dt)   # mx.full ignores dtype for a float value

    def zeros_like(self, x):
        return mx.zeros_like(x)

    def ones_like(self, x):
        return mx.ones_like(x)

    def arange(self, start, stop=None, step=1, dtype="int64"):
        if stop is None:
            start, stop = 0, start
        return mx.arange(start, stop, step, dtype=self.dtype(dtype))

    def eye(self, n, dtype="float32"):
        return mx.eye(n, dtype=self.dtype(dtype))

    def astype(self, x, dtype):
        return self.asarray(x).astype(self.dtype(dtype))

    def copy(self, x):
        return mx.array(x)

    def item(self, x):
        return x.item() if isinstance(x, mx.array) else np.asarray(x).item()

    def shape(self, x):
        return tuple(x.shape)

    # ---- shape ops ----------------------------------------------------------------------
    def reshape(self, x, shape):
        return mx.reshape(x, list(shape) if isinstance(shape, (tuple, list)) else [shape])

    def transpose(self, x, axes=None):
        return mx.transpose(x, list(axes)) if axes is not None else mx.transpose(x)

    def concatenate(self, xs, axis=0):
        return mx.concatenate(list(xs), axis=axis)

    def stack(self, xs, axis=0):
        return mx.stack(list(xs), axis=axis)

    def split(self, x, indices_or_sections, axis=0):
        if isinstance(indices_or_sections, np.integer):
            indices_or_sections = int(indices_or_sections)
        if not isinstance(indices_or_sections, int):
            indices_or_sections = list(indices_or_sections)
        elif x.shape[axis] % indices_or_sections:
            raise ValueError("array split does not result in an equal division")
        return list(mx.split(x, indices_or_sections, axis=axis))

    def expand_dims(self, x, axis):
        return mx.expand_dims(x, axis)

    def squeeze(self, x, axis=None):
        return mx.squeeze(x) if axis is None else mx.squeeze(x, axis)

    def broadcast_to(self, x, shape):
        return mx.broadcast_to(x, list(shape))

    def take(self, x, indices, axis=0):
        return mx.take(x, self.asarray(indices).astype(mx.int64) if not isinstance(indices, mx.array)
                       else indices, axis=axis)

    def flip(self, x, axis):
        idx = [slice(None)] * x.ndim
        for a in ((axis,) if isinstance(axis, int) else axis):
            idx[a] = slice(None, None, -1)
        return x[tuple(idx)]

    def tile(self, x, reps):
        return mx.tile(x, list(reps) if isinstance(reps, (list, tuple)) else [reps])

    def index_update(self, x, index, values):
        out = mx.array(x)
        out[index] = values
        return out

    # ---- elementwise ----------------------------------------------------------------------
    exp = staticmethod(mx.exp)
    log = staticmethod(mx.log)
    log1p = staticmethod(mx.log1p)
    sqrt = staticmethod(mx.sqrt)
    tanh = staticmethod(mx.tanh)
    abs = staticmethod(mx.abs)
    sign = staticmethod(mx.sign)
    square = staticmethod(mx.square)
    sin = staticmethod(mx.sin)
    cos = staticmethod(mx.cos)
    floor = staticmethod(mx.floor)
    sigmoid = staticmethod(mx.sigmoid)
    maximum = staticmethod(mx.maximum)
    minimum = staticmethod(mx.minimum)
    power = staticmethod(mx.power)

    def softplus(self, x):
        return mx.logaddexp(x, mx.zeros_like(x))

    def relu(self, x):
        return mx.maximum(x, 0)

    def clip(self, x, lo=None, hi=None):
        return mx.clip(x, lo, hi)

    def logsumexp(self, x, axis=None, keepdims=False):
        return mx.logsumexp(x, axis=_ax(axis), keepdims=keepdims)

    def softmax(self, x, axis=-1):
        return mx.softmax(x, axis=axis)

    # ---- linear algebra / reductions ------------------------------------------------------
    matmul = staticmethod(mx.matmul)
    dot = staticmethod(mx.matmul)     # b 2-D (ops.dot)

    def sum(self, x, axis=None, keepdims=False):
        return mx.sum(x, axis=_ax(axis), keepdims=keepdims)

    def mean(self, x, axis=None, keepdims=False):
        return mx.mean(x, axis=_ax(axis), keepdims=keepdims)

    def var(self, x, axis=None, keepdims=False):
        return mx.var(x, axis=_ax(axis), keepdims=keepdims)

    def std(self, x, axis=None, keepdims=False):
        return mx.sqrt(mx.var(x, axis=_ax(axis), keepdims=keepdims))

    def max(self, x, axis=None, keepdims=False):
        return mx.max(x, axis=_ax(axis), keepdims=keepdims)

    def min(self, x, axis=None, keepdims=False):
        return mx.min(x, axis=_ax(axis), keepdims=keepdims)

    def argmax(self, x, axis=None):
        return mx.argmax(x, axis=axis).astype(mx.int64)      # mx gives uint32; numpy/torch int64

    def argmin(self, x, axis=None):
        return mx.argmin(x, axis=axis).astype(mx.int64)      # mx gives uint32; numpy/torch int64

    def cumsum(self, x, axis=0):
        return mx.cumsum(x, axis=axis)

    # ---- comparisons / selection ---------------------------------------------------------
    where = staticmethod(mx.where)
    greater = staticmethod(mx.greater)
    greater_equal = staticmethod(mx.greater_equal)
    less = staticmethod(mx.less)
    less_equal = staticmethod(mx.less_equal)
    equal = staticmethod(mx.equal)
    logical_and = staticmethod(mx.logical_and)
    logical_or = staticmethod(mx.logical_or)
    logical_not = staticmethod(mx.logical_not)
    isfinite = staticmethod(lambda x: mx.logical_not(mx.logical_or(mx.isnan(x), mx.isinf(x))))
    isnan = staticmethod(mx.isnan)

    def allclose(self, a, b, rtol=1e-5, atol=1e-6):
        return bool(np.allclose(self.to_numpy(a), self.to_numpy(b), rtol=rtol, atol=atol))

    # ---- random / autodiff ------------------------------------------------------------------
    def generator(self, seed=None):
        return Generator(self, seed)

    def stop_gradient(self, x):
        return mx.stop_gradient(x)

    def value_and_grad(self, fn):
        """Same contract as the torch backend: grads is a dict keyed like ``params``."""
        vg = mx.value_and_grad(fn)

        def wrapped(params, *args, **kwargs):
            value, grads = vg(dict(params), *args, **kwargs)
            return value, dict(grads)
        return wrapped


BACKEND = MlxBackend()
