"""Module system on ``ops``: parameters, buffers, nested modules, state dicts, train/eval,
moving between backends.

Parameters and buffers live as plain attributes (``self.weight`` is a backend array), so
reading one in a hot path costs a normal attribute lookup; the module only keeps the *names*
of its parameters, buffers and children, in registration order.
"""
from __future__ import annotations

import contextlib
from collections import OrderedDict
from typing import Iterator

import numpy as np

from . import ops
from .backend import get_backend_object


class Parameter:
    """Marks an array as trainable on assignment: ``self.w = Parameter(ops.zeros((3, 4)))``.
    The module stores the array itself; this wrapper only exists during assignment."""

    __slots__ = ("data",)

    def __init__(self, data):
        self.data = data


class StateDictError(KeyError):
    """A state dict that does not fit the module: missing, unexpected or mis-shaped keys."""

    def __str__(self):  # KeyError quotes its message; we want it readable
        return str(self.args[0])


class Module:
    """Base class of every ember model. Subclasses implement ``forward`` and, to be saved as a
    model file, ``get_config()`` returning the JSON-able constructor arguments."""

    def __init__(self):
        object.__setattr__(self, "_param_names", [])
        object.__setattr__(self, "_buffer_names", [])
        object.__setattr__(self, "_module_names", [])
        object.__setattr__(self, "training", True)

    # ---- registration ---------------------------------------------------------------------
    def __setattr__(self, name, value):
        if "_param_names" not in self.__dict__:
            raise RuntimeError(f"{type(self).__name__}.__init__ must call super().__init__() "
                               f"before assigning {name!r}")
        if isinstance(value, Parameter):
            self._forget(name)
            self._param_names.append(name)
            value = value.data
        elif isinstance(value, Module):
            self._forget(name)
            self._module_names.append(name)
        elif name in self._module_names:
            self._module_names.remove(name)
        object.__setattr__(self, name, value)

    def _forget(self, name):
        for names in (self._param_names, self._buffer_names, self._module_names):
            if name in names:
                names.remove(name)

    def register_buffer(self, name: str, value) -> None:
        """A non-trainable array saved with the module (``None`` is a valid buffer value)."""
        self._forget(name)
        self._buffer_names.append(name)
        object.__setattr__(self, name, value)

    # ---- traversal ------------------------------------------------------------------------
    def named_modules(self, prefix: str = "") -> Iterator[tuple[str, "Module"]]:
        yield prefix, self
        for name in self._module_names:
            child = getattr(self, name)
            yield from child.named_modules(f"{prefix}.{name}" if prefix else name)

    def children(self):
        return [getattr(self, n) for n in self._module_names]

    def _walk(self, kind: str, prefix: str = ""):
        for name in getattr(self, kind):
            yield prefix + name, self, name
        for mname in self._module_names:
            yield from getattr(self, mname)._walk(kind, f"{prefix}{mname}.")

    def named_parameters(self) -> Iterator[tuple[str, object]]:
        for full, owner, name in self._walk("_param_names"):
            yield full, getattr(owner, name)

    def parameters(self) -> list:
        return [p for _, p in self.named_parameters()]

    def named_buffers(self) -> Iterator[tuple[str, object]]:
        for full, owner, name in self._walk("_buffer_names"):
            yield full, getattr(owner, name)

    def num_parameters(self) -> int:
        return int(sum(np.prod(ops.shape(p)) for p in self.parameters()))

    # ---- state dicts ------------------------------------------------------------------------
    def state_dict(self) -> "OrderedDict[str, object]":
        """Parameters then buffers, by dotted name; a ``None`` buffer appears as ``None``."""
        out = OrderedDict(self.named_parameters())
        out.update(self.named_buffers())
        return out

    def _slots(self):
        slots = OrderedDict()
        for kind in ("_param_names", "_buffer_names"):
            for full, owner, name in self._walk(kind):
                slots[full] = (owner, name)
        return slots

    def load_state_dict(self, state: dict, strict: bool = True) -> None:
        """Copy arrays (any backend, or NumPy) into this module's slots, converted to the
        current backend. Strict by default: missing, unexpected and mis-shaped keys are errors."""
        slots = self._slots()
        missing = [k for k in slots if k not in state]
        unexpected = [k for k in state if k not in slots]
        problems = []
        if strict and missing:
            problems.append(f"missing keys: {', '.join(missing)}")
        if strict and unexpected:
            problems.append(f"unexpected keys: {', '.join(unexpected)}")
        converted = {}
        for key, value in state.items():
            if key not in slots:
                continue
            owner, name = slots[key]
            current = getattr(owner, name)
            if value is None:
                converted[key] = None
                continue
            arr = _to_current(value)
            if current is not None and tuple(ops.shape(arr)) != tuple(ops.shape(current)):
                problems.append(f"{key}: shape {tuple(ops.shape(arr))} in the state dict, "
                                f"{tuple(ops.shape(current))} in the module")
            converted[key] = arr
        if problems:
            raise StateDictError(f"cannot load state dict into {type(self).__name__}: "
                                 + "; ".join(problems))
        for key, arr in converted.items():
            owner, name = slots[key]
            object.__setattr__(owner, name, arr)

    @contextlib.contextmanager
    def substituted(self, arrays: dict):
        """Temporarily use ``arrays`` (dotted name → array) in place of the module's own, e.g.
        the leaf tensors an autodiff function differentiates through; restored afterwards."""
        slots = self._slots()
        saved = {k: getattr(*slots[k]) for k in arrays}
        try:
            for k, v in arrays.items():
                object.__setattr__(slots[k][0], slots[k][1], v)
            yield self
        finally:
            for k, v in saved.items():
                object.__setattr__(slots[k][0], slots[k][1], v)

    # ---- modes and backends -----------------------------------------------------------------
    def train(self, mode: bool = True) -> "Module":
        for _, m in self.named_modules():
            object.__setattr__(m, "training", mode)
        return self

    def eval(self) -> "Module":
        return self.train(False)

    def to_backend(self, name: str | None = None, device=None) -> "Module":
        """Convert every parameter and buffer to backend ``name`` (default: the current one)."""
        target = get_backend_object(name, device) if name else ops_backend()
        for owner, attr in self._slots().values():
            value = getattr(owner, attr)
            if value is not None and not isinstance(value, (int, float, str)):
                object.__setattr__(owner, attr, target.from_numpy(_numpy_of(value)))
        return self

    # ---- calling ------------------------------------------------------------------------------
    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} does not define forward()")

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    def get_config(self) -> dict:
        raise NotImplementedError(f"{type(self).__name__} does not define get_config(), "
                                  "so it cannot be saved as a model file")

    def __repr__(self):
        inner = ", ".join(f"{n}={type(getattr(self, n)).__name__}" for n in self._module_names)
        return f"{type(self).__name__}({inner})"


class ModuleList(Module):
    """A list of modules, registered as children named '0', '1', ..."""

    def __init__(self, modules=()):
        super().__init__()
        for m in modules:
            self.append(m)

    def append(self, module: Module) -> None:
        setattr(self, str(len(self._module_names)), module)

    def __getitem__(self, i):
        return getattr(self, self._module_names[i])

    def __len__(self):
        return len(self._module_names)

    def __iter__(self):
        return iter(self.children())


class ModuleDict(Module):
    """A dict of modules, registered as children under their keys."""

    def __init__(self, modules: dict | None = None):
        super().__init__()
        for k, m in (modules or {}).items():
            self[k] = m

    def __setitem__(self, key: str, module: Module) -> None:
        if "." in key:
            raise ValueError(f"module name {key!r} may not contain '.'")
        setattr(self, key, module)

    def __getitem__(self, key: str) -> Module:
        if key not in self._module_names:
            raise KeyError(key)
        return getattr(self, key)

    def keys(self):
        return list(self._module_names)

    def items(self):
        return [(k, getattr(self, k)) for k in self._module_names]

    def __len__(self):
        return len(self._module_names)


def ops_backend():
    from .backend import get_backend
    return get_backend()


def _numpy_of(value) -> np.ndarray:
    """A NumPy copy of an array of any backend (torch, mlx, numpy) or a Python number."""
    if isinstance(value, np.ndarray):
        return value
    for name in ("numpy", "torch", "mlx"):
        mod_name = {"numpy": "numpy", "torch": "torch", "mlx": "mlx.core"}[name]
        import sys
        if mod_name.split(".")[0] in sys.modules:
            b = get_backend_object(name)
            if b.is_array(value):
                return b.to_numpy(value)
    return np.asarray(value)


def _to_current(value):
    return ops.from_numpy(_numpy_of(value))
