"""PyTorch backend: autodiff for training, and the GPU when one is present. Arrays are
``torch.Tensor`` on the backend's device (``set_backend('torch', device='cuda')``)."""
from __future__ import annotations

import numpy as np
import torch

from ._common import Generator

_DT = {"float32": torch.float32, "float64": torch.float64, "float16": torch.float16,
       "int32": torch.int32, "int64": torch.int64, "bool": torch.bool, "bool_": torch.bool}
_NAME = {v: k for k, v in _DT.items() if k != "bool_"}


def _contiguous(a) -> np.ndarray:
    # np.ascontiguousarray returns at least 1-d, which would turn a 0-d array into shape (1,)
    a = np.asarray(a)
    return a if a.flags.c_contiguous else np.ascontiguousarray(a)


def _axis(axis):
    return tuple(axis) if isinstance(axis, (list, tuple)) else axis


class TorchBackend:
    name = "torch"
    has_autodiff = True
    slices_are_views = True      # a basic slice shares storage: writes through it land
    arrays_are_numpy = False
    float32, float64, float16 = torch.float32, torch.float64, torch.float16
    int32, int64, bool_ = torch.int32, torch.int64, torch.bool

    def __init__(self, device=None):
        self._device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))

    # ---- dtype / device -------------------------------------------------------------
    def dtype(self, name):
        if isinstance(name, torch.dtype):
            return name
        if not isinstance(name, str):
            name = np.dtype(name).name
        try:
            return _DT[name]
        except KeyError:
            raise TypeError(f"unsupported dtype {name!r}") from None

    def dtype_name(self, x):
        return _NAME[x.dtype] if isinstance(x, torch.Tensor) else np.asarray(x).dtype.name

    def device(self, x=None):
        return str(x.device if isinstance(x, torch.Tensor) else self._device)

    def is_array(self, x):
        return isinstance(x, torch.Tensor)

    # ---- creation / conversion --------------------------------------------------------
    def asarray(self, x, dtype=None):
        if isinstance(x, torch.Tensor):
            t = x.to(self._device)
        elif isinstance(x, np.ndarray):
            t = torch.from_numpy(_contiguous(x)).to(self._device)
        else:
            t = torch.as_tensor(x, device=self._device)
            if t.dtype == torch.float64:
                t = t.to(torch.float32)
        return t if dtype is None else t.to(self.dtype(dtype))

    def from_numpy(self, a):
        return torch.from_numpy(_contiguous(a)).to(self._device)

    def to_numpy(self, x):
        if isinstance(x, torch.Tensor):
            return x.detach().cpu().numpy()
        return np.asarray(x)

    def zeros(self, shape, dtype="float32"):
        return torch.zeros(shape, dtype=self.dtype(dtype), device=self._device)

    def ones(self, shape, dtype="float32"):
        return torch.ones(shape, dtype=self.dtype(dtype), device=self._device)

    def full(self, shape, value, dtype="float32"):
        return torch.full(shape if isinstance(shape, (tuple, list)) else (shape,), value,
                          dtype=self.dtype(dtype), device=self._device)

    def zeros_like(self, x):
        return torch.zeros_like(x)

    def ones_like(self, x):
        return torch.ones_like(x)

    def arange(self, start, stop=None, step=1, dtype="int64"):
        if stop is None:
            start, stop = 0, start
        return torch.arange(start, stop, step, dtype=self.dtype(dtype), device=self._device)

    def eye(self, n, dtype="float32"):
        return torch.eye(n, dtype=self.dtype(dtype), device=self._device)

    def astype(self, x, dtype):
        return self.asarray(x).to(self.dtype(dtype))

    def copy(self, x):
        return x.clone()

    def item(self, x):
        return x.item() if isinstance(x, torch.Tensor) else np.asarray(x).item()

    def shape(self, x):
        return tuple(x.shape)

    # ---- shape ops ----------------------------------------------------------------------
    def reshape(self, x, shape):
        return torch.reshape(x, tuple(shape) if isinstance(shape, (list, tuple)) else (shape,))

    def transpose(self, x, axes=None):
        return x.permute(*(axes if axes is not None else reversed(range(x.ndim))))

    def concatenate(self, xs, axis=0):
        return torch.cat(list(xs), dim=axis)

    def stack(self, xs, axis=0):
        return torch.stack(list(xs), dim=axis)

    def split(self, x, indices_or_sections, axis=0):
        n = x.shape[axis]
        if isinstance(indices_or_sections, (int, np.integer)):
            indices_or_sections = int(indices_or_sections)
            if n % indices_or_sections:
                raise ValueError("array split does not result in an equal division")
            return list(torch.split(x, n // indices_or_sections, dim=axis))
        bounds = [0, *indices_or_sections, n]
        return [x.narrow(axis, a, b - a) for a, b in zip(bounds[:-1], bounds[1:])]

    def expand_dims(self, x, axis):
        return torch.unsqueeze(x, axis)

    def squeeze(self, x, axis=None):
        return torch.squeeze(x) if axis is None else torch.squeeze(x, axis)

    def broadcast_to(self, x, shape):
        return torch.broadcast_to(x, tuple(shape))

    def take(self, x, indices, axis=0):
        if axis is None:                      # NumPy: take from the flattened array
            x, axis = x.reshape(-1), 0
        idx = self.asarray(indices).to(torch.int64)
        return torch.index_select(x, axis, idx.reshape(-1)).reshape(
            *x.shape[:axis % x.ndim], *idx.shape, *x.shape[axis % x.ndim + 1:])

    def flip(self, x, axis):
        return torch.flip(x, dims=(axis,) if isinstance(axis, int) else tuple(axis))

    def tile(self, x, reps):
        return torch.tile(x, tuple(reps) if isinstance(reps, (list, tuple)) else (reps,))

    def index_update(self, x, index, values):
        out = x.clone()
        out[index] = values
        return out

    # ---- elementwise ----------------------------------------------------------------------
    exp = staticmethod(torch.exp)
    log = staticmethod(torch.log)
    log1p = staticmethod(torch.log1p)
    sqrt = staticmethod(torch.sqrt)
    tanh = staticmethod(torch.tanh)
    abs = staticmethod(torch.abs)
    sign = staticmethod(torch.sign)
    square = staticmethod(torch.square)
    sin = staticmethod(torch.sin)
    cos = staticmethod(torch.cos)
    floor = staticmethod(torch.floor)
    sigmoid = staticmethod(torch.sigmoid)
    softplus = staticmethod(torch.nn.functional.softplus)
    relu = staticmethod(torch.relu)

    def _t(self, x, like=None):
        if isinstance(x, torch.Tensor):
            return x
        if like is not None and not isinstance(x, np.ndarray):
            # promote like NumPy: 0.5 beside an int tensor is a float, not truncated to 0
            return torch.as_tensor(x, dtype=torch.result_type(like, x), device=like.device)
        return self.asarray(x)

    def maximum(self, a, b):
        a_t = self._t(a, b if isinstance(b, torch.Tensor) else None)
        return torch.maximum(a_t, self._t(b, a_t))

    def minimum(self, a, b):
        a_t = self._t(a, b if isinstance(b, torch.Tensor) else None)
        return torch.minimum(a_t, self._t(b, a_t))

    def power(self, a, b):
        return torch.pow(a, b)

    def clip(self, x, lo=None, hi=None):
        return torch.clamp(x, lo, hi)

    def logsumexp(self, x, axis=None, keepdims=False):
        if axis is None:
            out = torch.logsumexp(x.reshape(-1), dim=0)
            return out.reshape([1] * x.ndim) if keepdims else out
        return torch.logsumexp(x, dim=_axis(axis), keepdim=keepdims)

    def softmax(self, x, axis=-1):
        return torch.softmax(x, dim=axis)

    # ---- linear algebra / reductions ------------------------------------------------------
    matmul = staticmethod(torch.matmul)
    dot = staticmethod(torch.matmul)  # b 2-D (ops.dot); torch.dot is the 1-D inner product

    def _reduce(self, fn, x, axis, keepdims, **kw):
        if axis is None:
            out = fn(x, **kw)
            return out.reshape([1] * x.ndim) if keepdims else out
        return fn(x, dim=_axis(axis), keepdim=keepdims, **kw)

    def sum(self, x, axis=None, keepdims=False):
        return self._reduce(torch.sum, x, axis, keepdims)

    def mean(self, x, axis=None, keepdims=False):
        return self._reduce(torch.mean, x, axis, keepdims)

    def var(self, x, axis=None, keepdims=False):
        return self._reduce(torch.var, x, axis, keepdims, correction=0)

    def std(self, x, axis=None, keepdims=False):
        return self._reduce(torch.std, x, axis, keepdims, correction=0)

    def max(self, x, axis=None, keepdims=False):
        return self._reduce(torch.amax, x, axis, keepdims) if axis is not None else \
            self._reduce(torch.max, x, None, keepdims)

    def min(self, x, axis=None, keepdims=False):
        return self._reduce(torch.amin, x, axis, keepdims) if axis is not None else \
            self._reduce(torch.min, x, None, keepdims)

    def argmax(self, x, axis=None):
        return torch.argmax(x, dim=axis)

    def argmin(self, x, axis=None):
        return torch.argmin(x, dim=axis)

    def cumsum(self, x, axis=0):
        return torch.cumsum(x, dim=axis)

    # ---- comparisons / selection ---------------------------------------------------------
    def where(self, cond, a, b):
        cond = self._t(cond)
        ref = a if isinstance(a, torch.Tensor) else b if isinstance(b, torch.Tensor) else None
        return torch.where(cond, self._t(a, ref), self._t(b, ref))

    def greater(self, a, b):
        return torch.gt(self._t(a), b)

    def greater_equal(self, a, b):
        return torch.ge(self._t(a), b)

    def less(self, a, b):
        return torch.lt(self._t(a), b)

    def less_equal(self, a, b):
        return torch.le(self._t(a), b)

    def equal(self, a, b):
        return torch.eq(self._t(a), b)

    logical_and = staticmethod(torch.logical_and)
    logical_or = staticmethod(torch.logical_or)
    logical_not = staticmethod(torch.logical_not)
    isfinite = staticmethod(torch.isfinite)
    isnan = staticmethod(torch.isnan)

    def allclose(self, a, b, rtol=1e-5, atol=1e-6):
        return bool(np.allclose(self.to_numpy(a), self.to_numpy(b), rtol=rtol, atol=atol))

    # ---- random / autodiff ------------------------------------------------------------------
    def generator(self, seed=None):
        return Generator(self, seed)

    def stop_gradient(self, x):
        return x.detach()

    def value_and_grad(self, fn):
        """``fn(params: dict[str, Tensor], *args) -> scalar`` → ``f(params, *args) -> (value, grads)``
        where ``grads`` has the keys of ``params``."""
        def wrapped(params, *args, **kwargs):
            leaves = {k: v.detach().requires_grad_(True) for k, v in params.items()}
            with torch.enable_grad():
                value = fn(leaves, *args, **kwargs)
                grads = torch.autograd.grad(value, list(leaves.values()), allow_unused=True)
            out = {k: (g if g is not None else torch.zeros_like(leaves[k]))
                   for k, g in zip(leaves, grads)}
            return value.detach(), out
        return wrapped


BACKEND = TorchBackend()
