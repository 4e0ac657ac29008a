"""Choosing the array backend: ``set_backend(name)``, ``using_backend(name)``, ``EMBER_BACKEND``.

Automatic choice, when neither a call nor the environment names one (documented in
docs/backends.md):

1. ``torch`` when torch is installed and a CUDA GPU is visible;
2. ``mlx`` on Apple silicon (macOS arm64) when mlx is installed;
3. ``numpy`` otherwise: on a CPU, NumPy is fastest for ember's small-batch inference, and
   the Linux ``mlx[cpu]`` wheel uses a reference BLAS (~6 GFLOP/s vs NumPy's ~100).

The backend is process-global (like Keras 3); ``using_backend`` switches it for a block.
"""
from __future__ import annotations

import contextlib
import importlib
import importlib.util
import os
import platform

KNOWN = ("numpy", "torch", "mlx")
_MODULES = {"numpy": "numpy_backend", "torch": "torch_backend", "mlx": "mlx_backend"}
_LIB = {"numpy": "numpy", "torch": "torch", "mlx": "mlx.core"}
_current = None


class BackendError(RuntimeError):
    """An unknown backend, or one whose library is not installed."""


def _lib_installed(name: str) -> bool:
    try:
        return importlib.util.find_spec(_LIB[name].split(".")[0]) is not None
    except (ImportError, ValueError):
        return False


def installed_backends() -> list[str]:
    """Backends whose library can be found (not imported: importing torch costs a second)."""
    return [n for n in KNOWN if _lib_installed(n)]


def _load(name: str, device=None):
    if name not in KNOWN:
        raise BackendError(f"unknown backend {name!r}: ember has {', '.join(KNOWN)}; "
                           f"installed here: {', '.join(installed_backends())}")
    try:
        mod = importlib.import_module(f"ember_models.backends.{_MODULES[name]}")
    except ImportError as exc:
        raise BackendError(
            f"backend {name!r} is not usable: {exc}. Installed backends: "
            f"{', '.join(installed_backends())} (pip install 'ember[{name}]')") from exc
    if device is not None:
        return type(mod.BACKEND)(device)
    return mod.BACKEND


def get_backend_object(name: str, device=None):
    """The backend object for ``name`` without making it current."""
    return _load(name, device)


def _nvidia_driver_present() -> bool:
    # Importing torch costs ~3 s of CPU; only ask it about CUDA when an NVIDIA driver is loaded.
    return os.path.exists("/proc/driver/nvidia/version") or os.path.exists("/dev/nvidiactl")


def auto_backend_name() -> str:
    if _lib_installed("torch") and _nvidia_driver_present():
        try:
            import torch
            if torch.cuda.is_available():
                return "torch"
        except ImportError:
            pass
    if platform.system() == "Darwin" and platform.machine() == "arm64" and _lib_installed("mlx"):
        return "mlx"
    return "numpy"


def set_backend(name: str, device=None):
    """Make ``name`` ('numpy', 'torch', 'mlx') the backend of ``ember_models.ops``."""
    global _current
    backend = _load(name, device)
    _current = backend
    from . import ops
    ops._bind(backend)
    return backend


def get_backend():
    """The current backend object (chosen from EMBER_BACKEND or automatically on first use)."""
    if _current is None:
        env = os.environ.get("EMBER_BACKEND", "").strip().lower()
        if env:
            try:
                set_backend(env)
            except BackendError as exc:
                raise BackendError(f"EMBER_BACKEND={env!r}: {exc}") from exc
        else:
            set_backend(auto_backend_name())
    return _current


def backend_name() -> str:
    return get_backend().name


@contextlib.contextmanager
def using_backend(name: str, device=None):
    """Run a block on another backend, then restore the previous one."""
    global _current
    previous = get_backend()
    set_backend(name, device)
    try:
        yield _current
    finally:
        _current = previous
        from . import ops
        ops._bind(previous)
