"""Weight initialisers shared by the liquid cells. Draws come from NumPy (``ops.generator``)
so a seed gives the same weights on every backend; the same schemes as ncps/torch defaults."""
from __future__ import annotations

import numpy as np

from .. import ops


def rng(seed) -> np.random.Generator:
    return ops.generator(seed).numpy


def xavier_uniform(g: np.random.Generator, fan_in: int, fan_out: int, shape=None) -> np.ndarray:
    """Glorot uniform, the CfC weights' init in ncps; shape (fan_in, fan_out) by default."""
    bound = float(np.sqrt(6.0 / (fan_in + fan_out)))
    return g.uniform(-bound, bound, size=shape or (fan_in, fan_out)).astype(np.float32)


def linear_bias(g: np.random.Generator, fan_in: int, n: int) -> np.ndarray:
    """torch.nn.Linear's default bias: U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
    bound = 1.0 / float(np.sqrt(max(fan_in, 1)))
    return g.uniform(-bound, bound, size=(n,)).astype(np.float32)


def uniform(g: np.random.Generator, low: float, high: float, shape) -> np.ndarray:
    return g.uniform(low, high, size=shape).astype(np.float32)


def orthogonal(g: np.random.Generator, rows: int, cols: int) -> np.ndarray:
    """A (rows, cols) matrix with orthonormal rows or columns (torch's orthogonal_ scheme)."""
    a = g.normal(size=(max(rows, cols), min(rows, cols)))
    q, r = np.linalg.qr(a)
    q = q * np.sign(np.diag(r))
    return (q if rows >= cols else q.T).astype(np.float32)


def param(array: np.ndarray):
    """A NumPy init value as an array of the current backend."""
    return ops.from_numpy(np.ascontiguousarray(array, dtype=np.float32))
