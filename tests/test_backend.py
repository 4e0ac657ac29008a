"""Choosing the backend: set_backend / get_backend / using_backend, EMBER_BACKEND, the automatic
rule, and the errors for unknown or missing backends."""
from __future__ import annotations

import os
import platform
import subprocess
import sys

import numpy as np
import pytest

from ember_models import backend as backend_mod
from ember_models import ops
import ember_models.backend as backend_module
from ember_models.backend import (BackendError, auto_backend_name, get_backend,
                                  get_backend_object, installed_backends, set_backend,
                                  using_backend)

BACKENDS = installed_backends()
ARRAY_TYPES = {"numpy": ("numpy", "ndarray"), "torch": ("torch", "Tensor"),
               "mlx": ("mlx.core", "array")}


def array_type(name):
    module, cls = ARRAY_TYPES[name]
    return getattr(__import__(module, fromlist=[cls]), cls)


@pytest.fixture(autouse=True)
def restore_backend():
    previous = get_backend().name
    yield
    set_backend(previous)


def test_numpy_torch_and_mlx_are_installed_here():
    # requirements.lock installs all three; CI must test every backend, not skip one
    assert BACKENDS == ["numpy", "torch", "mlx"]


@pytest.mark.parametrize("name", BACKENDS)
def test_set_backend_binds_ops(name):
    returned = set_backend(name)
    assert get_backend() is returned and returned.name == name
    assert ops.backend_name == name == backend_mod.backend_name()
    assert isinstance(ops.zeros(3), array_type(name))
    assert isinstance(ops.exp(ops.ones(2)), array_type(name))
    assert ops.has_autodiff is (name != "numpy")


@pytest.mark.parametrize("outer", BACKENDS)
@pytest.mark.parametrize("inner", BACKENDS)
def test_using_backend_switches_and_restores(outer, inner):
    set_backend(outer)
    with using_backend(inner) as b:
        assert b.name == inner == ops.backend_name
        assert isinstance(ops.zeros(2), array_type(inner))
    assert ops.backend_name == outer and get_backend().name == outer
    assert isinstance(ops.zeros(2), array_type(outer))


def test_using_backend_restores_on_exception():
    set_backend("numpy")
    other = BACKENDS[-1]
    with pytest.raises(ZeroDivisionError):
        with using_backend(other):
            assert ops.backend_name == other
            1 / 0
    assert ops.backend_name == "numpy" and isinstance(ops.zeros(1), np.ndarray)


def test_nested_using_backend():
    set_backend("numpy")
    with using_backend(BACKENDS[1]):
        with using_backend(BACKENDS[-1]):
            assert ops.backend_name == BACKENDS[-1]
        assert ops.backend_name == BACKENDS[1]
    assert ops.backend_name == "numpy"


def test_unknown_backend_names_what_is_installed():
    set_backend("numpy")
    with pytest.raises(BackendError) as info:
        set_backend("jax")
    msg = str(info.value)
    assert "'jax'" in msg
    for name in BACKENDS:
        assert name in msg
    assert ops.backend_name == "numpy"              # a failed set_backend changes nothing
    with pytest.raises(BackendError, match="installed"):
        with using_backend("tensorflow"):
            pass
    assert ops.backend_name == "numpy"


def test_backend_whose_library_is_missing_is_a_clear_error(monkeypatch):
    # a library that is not importable: what a machine without torch sees
    monkeypatch.setitem(sys.modules, "ember_models.backends.torch_backend", None)
    with pytest.raises(BackendError) as info:
        get_backend_object("torch")
    msg = str(info.value)
    assert "'torch'" in msg and "not usable" in msg and "ember[torch]" in msg
    assert "numpy" in msg


def test_get_backend_object_does_not_change_the_current_backend():
    set_backend("numpy")
    for name in BACKENDS:
        assert get_backend_object(name).name == name
    assert ops.backend_name == "numpy"


def test_torch_device_argument():
    if "torch" not in BACKENDS:
        pytest.fail("torch is required")
    with using_backend("torch", device="cpu"):
        assert ops.device(ops.zeros(2)) == "cpu"


# ---- automatic choice ---------------------------------------------------------------------

def test_auto_choice_on_this_machine():
    import torch
    apple = platform.system() == "Darwin" and platform.machine() == "arm64"
    expected = "torch" if torch.cuda.is_available() else "mlx" if apple else "numpy"
    assert auto_backend_name() == expected


def test_auto_choice_rule(monkeypatch):
    import torch
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(platform, "system", lambda: "Linux")
    monkeypatch.setattr(platform, "machine", lambda: "x86_64")
    assert auto_backend_name() == "numpy"           # Linux CPU: NumPy (mlx[cpu] is slow there)
    monkeypatch.setattr(platform, "system", lambda: "Darwin")
    monkeypatch.setattr(platform, "machine", lambda: "arm64")
    assert auto_backend_name() == "mlx"             # Apple silicon: MLX
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(backend_module, "_nvidia_driver_present", lambda: True)
    assert auto_backend_name() == "torch"           # a CUDA GPU wins


def _run(env_value, code="from ember_models import ops; print(ops.backend_name)"):
    env = {k: v for k, v in os.environ.items() if k != "EMBER_BACKEND"}
    if env_value is not None:
        env["EMBER_BACKEND"] = env_value
    return subprocess.Popen([sys.executable, "-c", code], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def test_ember_backend_environment_variable():
    # fresh processes: the backend is process-global and chosen on first use
    cases = {name: _run(name) for name in BACKENDS}
    cases[" MLX "] = _run(" MLX ")                   # trimmed, case-insensitive
    cases["bogus"] = _run("bogus")
    results = {k: p.communicate(timeout=120) + (p.returncode,) for k, p in cases.items()}
    for name in BACKENDS:
        out, err, rc = results[name]
        assert rc == 0 and out.strip() == name, err
    out, err, rc = results[" MLX "]
    assert rc == 0 and out.strip() == "mlx", err
    out, err, rc = results["bogus"]
    assert rc != 0 and "BackendError" in err
    assert "EMBER_BACKEND='bogus'" in err
    for name in BACKENDS:
        assert name in err.splitlines()[-1]


def test_no_environment_variable_means_the_automatic_choice(monkeypatch):
    # in-process (a subprocess would pay another torch import): forget the chosen backend
    monkeypatch.delenv("EMBER_BACKEND", raising=False)
    monkeypatch.setattr(backend_mod, "_current", None)
    assert get_backend().name == auto_backend_name() == ops.backend_name


def test_explicit_set_backend_wins_over_the_environment():
    p = _run("torch", "from ember_models.backend import set_backend\n"
                      "from ember_models import ops\nset_backend('numpy'); print(ops.backend_name)")
    out, err = p.communicate(timeout=120)
    assert p.returncode == 0 and out.strip() == "numpy", err
