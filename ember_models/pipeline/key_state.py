"""Per-key state as bytes (no pickle): the feature engine's own blob, then the detector's
arrays as one float64 row in a fixed layout.

    b"EKS1" | architecture tag (16 ASCII bytes) | uint32 n | feature blob (n bytes) | float64 row

The tag names the architecture (config, settings, layout) that made the state, so a state
from another architecture is recognised and the key restarted, never misread.
"""
from __future__ import annotations

import struct

import numpy as np

MAGIC = b"EKS1"
_HEAD = struct.Struct("<4s16sI")


class KeyStateError(ValueError):
    """A stored key state that is not an ember key state (names the key)."""


class ForeignState(KeyStateError):
    """A valid key state made by another architecture: the key starts fresh."""


class RowLayout:
    """name → (shape, initial value) of the detector's per-key arrays, packed in one row."""

    def __init__(self, spec: dict[str, tuple[tuple, float]]):
        self.spec = dict(spec)
        self.slices, start = {}, 0
        for name, (shape, _) in self.spec.items():
            size = int(np.prod(shape)) if shape else 1
            self.slices[name] = (slice(start, start + size), tuple(shape))
            start += size
        self.width = start
        self.initial = np.empty(self.width)
        for name, (shape, init) in self.spec.items():
            self.initial[self.slices[name][0]] = init

    def init_rows(self, n: int) -> np.ndarray:
        return np.tile(self.initial, (n, 1))

    def split(self, rows: np.ndarray) -> dict[str, np.ndarray]:
        """[K, width] → name → [K, *shape] (copies)."""
        return {name: rows[:, sl].reshape((rows.shape[0],) + shape).copy()
                for name, (sl, shape) in self.slices.items()}

    def join(self, arrays: dict[str, np.ndarray]) -> np.ndarray:
        n = next(iter(arrays.values())).shape[0] if arrays else 0
        rows = np.empty((n, self.width))
        for name, (sl, _) in self.slices.items():
            rows[:, sl] = np.asarray(arrays[name], np.float64).reshape(n, -1)
        return rows


def pack(tag: str, feature_blob: bytes, row: np.ndarray) -> bytes:
    return b"".join((_HEAD.pack(MAGIC, tag.encode("ascii"), len(feature_blob)), feature_blob,
                     np.ascontiguousarray(row, "<f8").tobytes()))


def unpack(blob, key: str, tag: str, width: int) -> tuple[bytes, np.ndarray]:
    blob = bytes(blob)
    if len(blob) < _HEAD.size or blob[:4] != MAGIC:
        raise KeyStateError(f"state of key {key!r} is not an ember key state "
                            f"({len(blob)} bytes, starts {blob[:8]!r})")
    _, their_tag, n = _HEAD.unpack_from(blob)
    if their_tag.decode("ascii", "replace") != tag:
        raise ForeignState(f"state of key {key!r} was made by another pipeline architecture "
                           f"({their_tag.decode('ascii', 'replace')}, this one is {tag})")
    start = _HEAD.size
    if len(blob) != start + n + 8 * width:
        raise KeyStateError(f"state of key {key!r} has {len(blob)} bytes, expected "
                            f"{start + n + 8 * width}: truncated or corrupted")
    return blob[start:start + n], np.frombuffer(blob, "<f8", count=width, offset=start + n)
