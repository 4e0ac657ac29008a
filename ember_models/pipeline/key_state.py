"""Per-key state as bytes: a safetensors blob of named NumPy arrays (no pickle), tagged with
the model version it was made by so a state from another model is refused, not misread.

In the detector core the state of K keys is a dict of arrays with a leading [K] axis; a key's
bytes hold its row of each array.
"""
from __future__ import annotations

import json

import numpy as np

STATE_FORMAT = "ember-key-state/1"


class KeyStateError(ValueError):
    """A stored key state that cannot be used with this pipeline (names the key)."""


def pack(arrays: dict[str, np.ndarray], model_version: str) -> bytes:
    from safetensors.numpy import save
    return save({k: np.ascontiguousarray(v) for k, v in arrays.items()},
                metadata={"format": STATE_FORMAT, "model_version": model_version})


def unpack(blob: bytes, key: str, model_version: str, layout: dict[str, tuple]) -> dict:
    """Arrays of one key; ``layout`` maps name → (shape, dtype) the core expects."""
    from safetensors.numpy import load
    try:
        meta = _metadata(blob)
        arrays = load(bytes(blob))
    except Exception as exc:  # safetensors has its own exception types
        raise KeyStateError(f"state of key {key!r} is not a readable ember key state ({exc})") \
            from None
    if meta.get("format") != STATE_FORMAT:
        raise KeyStateError(f"state of key {key!r} has format {meta.get('format')!r}, "
                            f"expected {STATE_FORMAT!r}")
    if meta.get("model_version") != model_version:
        raise KeyStateError(f"state of key {key!r} was made by model {meta.get('model_version')!r},"
                            f" this pipeline is {model_version!r}: start the key fresh (None) "
                            "or load the matching model")
    for name, (shape, dtype) in layout.items():
        a = arrays.get(name)
        if a is not None and a.shape != tuple(shape) and a.size == int(np.prod(shape)):
            a = arrays[name] = a.reshape(shape)     # safetensors stores 0-d arrays as (1,)
        if a is None or a.shape != tuple(shape) or a.dtype != np.dtype(dtype):
            got = None if a is None else f"{a.shape} {a.dtype}"
            raise KeyStateError(f"state of key {key!r}: array {name!r} is {got}, expected "
                                f"{tuple(shape)} {np.dtype(dtype)}")
    return arrays


def _metadata(blob: bytes) -> dict:
    n = int.from_bytes(blob[:8], "little")
    header = json.loads(bytes(blob[8:8 + n]))
    return header.get("__metadata__", {}) or {}
