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


def pack_many(tag: str, feature_blobs: np.ndarray, rows: np.ndarray) -> list[bytes]:
    """``pack`` for many keys at once: feature_blobs uint8 [K, n] (every key's blob has the
    same size), rows [K, width]. One array assembles every record; the Python loop only
    slices the joined bytes."""
    k, n = feature_blobs.shape
    head = _HEAD.pack(MAGIC, tag.encode("ascii"), n)
    h = len(head)
    size = h + n + 8 * rows.shape[1]
    mat = np.empty((k, size), np.uint8)
    mat[:, :h] = np.frombuffer(head, np.uint8)
    mat[:, h:h + n] = feature_blobs
    mat[:, h + n:] = np.ascontiguousarray(rows, "<f8").view(np.uint8).reshape(k, -1)
    flat = memoryview(mat).cast("B")          # slices copy straight out of mat
    return [bytes(flat[i:i + size]) for i in range(0, k * size, size)]


def unpack_many(blobs: list, keys: list[str], tag: str, feature_size: int, width: int):
    """``unpack`` for many keys at once (None = a new key). Returns (indices of the keys with
    a state, their feature blobs uint8 [m, feature_size], their rows float64 [m, width],
    indices of the keys whose state another architecture made); the arrays are read-only
    views of the joined blobs. Blobs that do not look like
    this architecture's go through ``unpack``, which names what is wrong and with which key."""
    head = _HEAD.pack(MAGIC, tag.encode("ascii"), feature_size)
    h = len(head)
    size = h + feature_size + 8 * width
    good, parts, foreign = [], [], []
    for i, blob in enumerate(blobs):
        if blob is None:
            continue
        if type(blob) is not bytes or len(blob) != size or not blob.startswith(head):
            try:
                fblob, _ = unpack(blob, keys[i], tag, width)
            except ForeignState:
                foreign.append(i)
                continue
            if len(fblob) != feature_size:
                raise KeyStateError(f"state of key {keys[i]!r} holds a feature state of "
                                    f"{len(fblob)} bytes, expected {feature_size}: corrupted")
            blob = bytes(blob)
        good.append(i)
        parts.append(blob)
    mat = np.frombuffer(b"".join(parts), np.uint8).reshape(len(parts), size)
    # views into the joined bytes (read-only): no further copies of the whole batch
    return (np.asarray(good, np.int64), mat[:, h:h + feature_size],
            mat[:, h + feature_size:].view("<f8"), foreign)
