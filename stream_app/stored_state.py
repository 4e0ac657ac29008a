"""What the worker stores per key in its Faust table: the pipeline's state plus bookkeeping.

The pipeline's state bytes are opaque to the driver. Around them the driver keeps:

- the latest event time seen for the key (to refuse events far out of order, and to score
  slightly late ones at the key's latest time, the same way whatever the batch boundaries are);
- the source offset of the latest event applied (the key's events all live in one partition):
  after a crash, messages already applied to the stored state are skipped instead of being
  applied twice, so a restarted worker's scores equal an uninterrupted run's;
- the model version that made the state (for inspection: the pipeline itself decides whether a
  stored state fits the model in use, and restarts the key when it does not).

Layout: b"EMS1" | float64 latest time | int64 offset | int32 index in message (-1: none) |
uint16 len(version) | version (UTF-8) | pipeline state.
"""

from __future__ import annotations

import struct
from typing import NamedTuple

MAGIC = b"EMS1"
_HEAD = struct.Struct("<4sdqiH")


class StoredStateError(ValueError):
    """A table value that is not a stored state of this format (names the key)."""


class StoredState(NamedTuple):
    """(A named tuple, not a frozen dataclass: every key of every micro-batch is read and
    written as one of these; reading one 6.7 KB record took 1.5-2.6 µs as a dataclass against
    1.0-1.1 now, building and serialising one 1.1-1.2 against 0.7-0.8: docs/performance.md,
    session 13.)"""

    latest_time: float
    offset: int           # source offset of the latest applied event
    index: int            # its position inside a batch message (-1 for a one-event message)
    model_version: str
    pipeline_state: bytes

    def applied(self, offset: int, index: int | None) -> bool:
        """Whether the event at (offset, index) is already reflected in this state."""
        i = -1 if index is None else index
        return (offset, i) <= (self.offset, self.index)

    def to_bytes(self) -> bytes:
        version = self.model_version.encode()
        return b"".join((_HEAD.pack(MAGIC, self.latest_time, self.offset, self.index,
                                    len(version)), version, self.pipeline_state))

    @classmethod
    def from_bytes(cls, blob: bytes, key: str) -> "StoredState":
        if type(blob) is not bytes:
            blob = bytes(blob)
        if len(blob) < _HEAD.size or not blob.startswith(MAGIC):
            raise StoredStateError(f"stored state of key {key!r} is not an ember stored state")
        _, latest, offset, index, n = _HEAD.unpack_from(blob)
        start = _HEAD.size + n
        return cls(latest, offset, index, blob[_HEAD.size:start].decode(), blob[start:])
