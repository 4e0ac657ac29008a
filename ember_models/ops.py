"""The one op namespace every ember model uses: ``from ember_models import ops``.

Each name below is bound to the current backend's implementation when the backend is chosen
(``set_backend``), so an op call costs what the backend's own function costs: no per-call
dispatch, which matters for a batch-1 streaming step of ~10 µs. Always call ``ops.<name>``
(never ``from ember_models.ops import exp``), so a later ``set_backend`` is seen.

Semantics follow NumPy: ``axis``/``keepdims`` reductions, broadcasting, ``where(cond, a, b)``.
``dot(a, b)`` is ``matmul`` for a 2-D ``b`` (any rank of ``a``): NumPy binds ``np.dot`` itself,
without ``matmul``'s rank check, for per-event hot paths where a call costs ~0.5 µs.
"""
from __future__ import annotations

OP_NAMES = (
    # dtype / device
    "dtype", "dtype_name", "device", "is_array",
    # creation / conversion
    "asarray", "from_numpy", "to_numpy", "zeros", "ones", "full", "zeros_like", "ones_like",
    "arange", "eye", "astype", "copy", "item", "shape",
    # shape ops
    "reshape", "transpose", "concatenate", "stack", "split", "expand_dims", "squeeze",
    "broadcast_to", "take", "flip", "tile", "index_update",
    # elementwise
    "exp", "log", "log1p", "sqrt", "tanh", "abs", "sign", "square", "sin", "cos", "floor",
    "maximum", "minimum", "power", "clip", "sigmoid", "softplus", "relu", "logsumexp", "softmax",
    # linear algebra / reductions
    "matmul", "dot", "sum", "mean", "var", "std", "max", "min", "argmax", "argmin", "cumsum",
    # comparisons / selection
    "where", "greater", "greater_equal", "less", "less_equal", "equal",
    "logical_and", "logical_or", "logical_not", "isfinite", "isnan", "allclose",
    # random / autodiff
    "generator", "stop_gradient", "value_and_grad",
)
_FLAGS = ("backend_name", "has_autodiff", "slices_are_views", "arrays_are_numpy")
DTYPES = ("float32", "float64", "float16", "int32", "int64", "bool_")


def _bind(backend) -> None:
    g = globals()
    for name in OP_NAMES:
        g[name] = getattr(backend, name)
    for name in DTYPES:
        g[name] = getattr(backend, name)
    g["backend_name"] = backend.name
    g["has_autodiff"] = backend.has_autodiff
    g["slices_are_views"] = backend.slices_are_views
    g["arrays_are_numpy"] = backend.arrays_are_numpy


def __getattr__(name):
    # First use before any set_backend(): choose the backend (EMBER_BACKEND or automatic), bind.
    if name in OP_NAMES or name in DTYPES or name in _FLAGS:
        from .backend import get_backend
        get_backend()
        return globals()[name]
    raise AttributeError(f"ember_models.ops has no op {name!r}")
