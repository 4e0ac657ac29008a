"""The compiled (numba) loops of the per-key bookkeeping, imported on first use.

numba takes ~1 s to import, which commands that never score need not pay, so the modules that
hold ``@njit`` loops (``*_kernel.py``) are imported when a round first needs them; after that a
call costs a dict lookup, where an ``import`` statement in the round's code cost ~4 µs.
"""
from __future__ import annotations

import importlib
from types import ModuleType

_loaded: dict[str, ModuleType] = {}


def kernels(module: str) -> ModuleType:
    """The kernel module ``module`` (a dotted name), imported once."""
    found = _loaded.get(module)
    if found is None:
        found = _loaded[module] = importlib.import_module(module)
    return found
