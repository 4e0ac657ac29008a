"""Model files: a directory with ``manifest.json`` and safetensors weights. No pickle anywhere.

manifest.json::

    {"format": "ember-model", "format_version": 1, "class": "CfC",
     "config": {...constructor arguments...}, "dtype": "float32",
     "weights": {"weights.safetensors": {"sha256": "...", "bytes": 1234}},
     "none_buffers": ["trigger.last"], "metadata": {...}}

Weights are stored as NumPy arrays (backend-independent), so a model saved on one backend
loads on any other. Loading checks the format version, the file sizes and sha256 digests and
the tensor names/shapes against the module, and every failure names the file and the problem.
Classes are looked up in a registry (``register``), never imported by name from the file.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

import numpy as np

from .nn import Module, StateDictError, _numpy_of

FORMAT = "ember-model"
FORMAT_VERSION = 1
WEIGHTS = "weights.safetensors"
_REGISTRY: dict[str, type] = {}


class ModelFileError(ValueError):
    """A model file that cannot be loaded: says which file and what is wrong with it."""

    def __init__(self, path, problem: str):
        self.path, self.problem = str(path), problem
        super().__init__(f"{path}: {problem}")


def register(cls: type) -> type:
    """Class decorator: make a Module class loadable from model files by its name."""
    _REGISTRY[cls.__name__] = cls
    return cls


def registered_classes() -> dict[str, type]:
    return dict(_REGISTRY)


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def save_arrays(directory, arrays: dict[str, np.ndarray | None], *, cls_name: str,
                config: dict, metadata: dict | None = None) -> Path:
    """Write a model directory from NumPy arrays (``None`` values are recorded by name)."""
    from safetensors.numpy import save as st_save

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    # np.asarray + copy only when needed: np.ascontiguousarray would save a 0-d array as (1,)
    tensors = {k: np.asarray(v) for k, v in arrays.items() if v is not None}
    tensors = {k: v if v.flags.c_contiguous else np.ascontiguousarray(v) for k, v in tensors.items()}
    float_dtypes = sorted({str(v.dtype) for v in tensors.values() if v.dtype.kind == "f"})
    blob = st_save(tensors) if tensors else st_save({})
    weights_path = directory / WEIGHTS
    _atomic_write_bytes(weights_path, blob)
    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "class": cls_name,
        "config": config,
        "dtype": float_dtypes[0] if len(float_dtypes) == 1 else (float_dtypes or ["float32"]),
        "weights": {WEIGHTS: {"sha256": hashlib.sha256(blob).hexdigest(), "bytes": len(blob)}},
        "none_buffers": sorted(k for k, v in arrays.items() if v is None),
        "metadata": metadata or {},
    }
    _atomic_write_bytes(directory / "manifest.json",
                        json.dumps(manifest, indent=2, sort_keys=True).encode())
    return directory


def read_manifest(directory) -> dict:
    directory = Path(directory)
    path = directory / "manifest.json"
    if not directory.is_dir():
        raise ModelFileError(directory, "no such model directory")
    if not path.is_file():
        raise ModelFileError(path, "missing: a model directory needs manifest.json")
    try:
        manifest = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelFileError(path, f"not valid JSON ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ModelFileError(path, f"not an ember model manifest (format != {FORMAT!r})")
    version = manifest.get("format_version")
    if not isinstance(version, int):
        raise ModelFileError(path, "format_version missing or not an integer")
    if version > FORMAT_VERSION:
        raise ModelFileError(path, f"format_version {version} is newer than this ember "
                                   f"understands ({FORMAT_VERSION}); upgrade ember")
    for key in ("class", "config", "weights"):
        if key not in manifest:
            raise ModelFileError(path, f"manifest has no {key!r}")
    if not isinstance(manifest["weights"], dict):
        raise ModelFileError(path, "'weights' must be an object: file name -> {sha256, bytes}")
    return manifest


def load_arrays(directory) -> tuple[dict, dict[str, np.ndarray | None]]:
    """Verify and read a model directory: (manifest, arrays as NumPy, None buffers included)."""
    from safetensors.numpy import load as st_load

    directory = Path(directory)
    manifest = read_manifest(directory)
    arrays: dict[str, np.ndarray | None] = {}
    for fname, info in manifest["weights"].items():
        if "/" in fname or "\\" in fname or fname.startswith("."):
            raise ModelFileError(directory / "manifest.json", f"weight file name {fname!r} not allowed")
        if not isinstance(info, dict):
            raise ModelFileError(directory / "manifest.json",
                                 f"weights entry {fname!r} must be an object with sha256 and bytes")
        wpath = directory / fname
        if not wpath.is_file():
            raise ModelFileError(wpath, "weight file missing")
        data = wpath.read_bytes()
        if len(data) != info.get("bytes"):
            raise ModelFileError(wpath, f"truncated or extended: {len(data)} bytes, manifest "
                                        f"says {info.get('bytes')}")
        digest = hashlib.sha256(data).hexdigest()
        if digest != info.get("sha256"):
            raise ModelFileError(wpath, "checksum mismatch (corrupted or tampered): sha256 "
                                        f"{digest[:16]}..., manifest says {str(info.get('sha256'))[:16]}...")
        try:
            arrays.update(st_load(data))
        except Exception as exc:  # safetensors raises its own error types
            raise ModelFileError(wpath, f"not a readable safetensors file ({exc})") from None
    for name in manifest.get("none_buffers", []):
        arrays[name] = None
    return manifest, arrays


def save_module(module: Module, directory, metadata: dict | None = None) -> Path:
    """Save a registered Module (its ``get_config()`` and state dict) as a model directory."""
    cls_name = type(module).__name__
    if _REGISTRY.get(cls_name) is not type(module):
        raise TypeError(f"{cls_name} is not registered for model files "
                        "(decorate the class with @ember_models.model_file.register)")
    arrays = {k: (None if v is None else _numpy_of(v)) for k, v in module.state_dict().items()}
    return save_arrays(directory, arrays, cls_name=cls_name, config=module.get_config(),
                       metadata=metadata)


def load_module(directory, expected: type | None = None) -> Module:
    """Load a model directory onto the current backend."""
    manifest, arrays = load_arrays(directory)
    mpath = Path(directory) / "manifest.json"
    cls = _REGISTRY.get(manifest["class"])
    if cls is None:
        raise ModelFileError(mpath, f"unknown model class {manifest['class']!r}; "
                                    f"known: {', '.join(sorted(_REGISTRY)) or 'none'}")
    if expected is not None and not issubclass(cls, expected):
        raise ModelFileError(mpath, f"holds a {cls.__name__}, expected a {expected.__name__}")
    try:
        module = cls(**manifest["config"])
    except (TypeError, ValueError) as exc:        # unknown/missing arguments, refused values
        raise ModelFileError(mpath, f"config does not fit {cls.__name__}: {exc}") from None
    try:
        module.load_state_dict(arrays, strict=True)
    except StateDictError as exc:
        raise ModelFileError(Path(directory) / WEIGHTS, str(exc)) from None
    return module
