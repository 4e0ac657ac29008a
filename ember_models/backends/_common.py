"""Pieces shared by every backend: backend-independent dtype names and the seeded generator.

Random draws come from NumPy's PCG64 on every backend and are converted, so that a seeded
run gives the same numbers on numpy, torch and mlx (RBM sampling, weight init and dropout
agree across backends, which is what the backend-parity tests hold us to).
"""
from __future__ import annotations

import numpy as np

DTYPE_NAMES = ("float32", "float64", "float16", "int32", "int64", "bool")


def dtype_name(np_dtype) -> str:
    """Backend-independent name of a NumPy dtype ('float32', ...)."""
    name = np.dtype(np_dtype).name
    if name not in DTYPE_NAMES:
        raise TypeError(f"unsupported dtype {name!r}; ember uses {', '.join(DTYPE_NAMES)}")
    return name


class Generator:
    """Seeded random numbers for one backend; draws with NumPy's PCG64, returns backend arrays."""

    def __init__(self, backend, seed=None):
        self._backend = backend
        self._rng = np.random.default_rng(seed)

    @property
    def numpy(self) -> np.random.Generator:
        return self._rng

    def _out(self, arr, dtype):
        return self._backend.from_numpy(np.asarray(arr, dtype=np.dtype(dtype or "float32")))

    def normal(self, shape, mean=0.0, std=1.0, dtype=None):
        return self._out(self._rng.normal(mean, std, size=shape), dtype)

    def uniform(self, shape, low=0.0, high=1.0, dtype=None):
        return self._out(self._rng.uniform(low, high, size=shape), dtype)

    def bernoulli(self, p, dtype=None):
        """0/1 samples with probability ``p`` (a backend array or a float), same shape as p."""
        b = self._backend
        p_arr = b.asarray(p)
        u = b.from_numpy(self._rng.random(size=tuple(b.shape(p_arr))).astype(b.dtype_name(p_arr)
                         if b.dtype_name(p_arr).startswith("float") else np.float32))
        return b.astype(u < p_arr, dtype or (b.dtype_name(p_arr) if b.dtype_name(p_arr).startswith("float") else "float32"))

    def integers(self, low, high, shape, dtype="int64"):
        return self._out(self._rng.integers(low, high, size=shape), dtype)

    def permutation(self, n):
        return self._rng.permutation(n)
