"""Key states the worker has computed but not yet written to its table.

Writing every touched key's state after every micro-batch costs more than everything else the
worker does for one-event messages: a state is ~7 KB (features, liquid state per stride,
tails) against ~100 bytes of event, so a batch of a few hundred events wrote ~1 MB of changelog
and waited for the broker to take it (measured in docs/performance.md, "Streaming"). In
at-least-once mode the worker therefore keeps the states of a batch here and writes them (to
the changelog, then the local RocksDB copy) at most every ``state_flush_interval_s``: a key
touched by 50 batches in that time is written once. Nor does the agent wait for a write:
the outputs since the last write are awaited, the states sent, and their acks awaited (long
done by then) at the next write, before they go to the local store; until then reads find the
values here.

Nothing is lost by writing late. Each partition's cursor (the last offset processed) is
written with, and after, that partition's states, and the stored state of a key names the last
event it includes. A worker that restarts, or takes over a partition, from states older than
the committed offsets finds a jump between the stored cursor and the first message Faust gives
it, reads the missing messages back from the broker (``stream_app.gap_fill``) and applies them
again; events a stored state already includes are skipped. Their alerts may be published again
(the same ``alert_id``), which at-least-once allows. Exactly-once mode writes every batch (its
state changes must commit in the batch's transaction).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable
from typing import Any


class PendingStates:
    """Table values not yet in the local store, by (partition, table key): those computed since
    the last flush, and those sent to the changelog by the last flush (``sent``), which go to
    the local store at the next flush, when the broker has long acknowledged them: the agent
    never waits for a flush's acks."""

    #: Flush when this many values wait, whatever the interval (bounds memory: ~7 KB each).
    MAX_ENTRIES = 50_000
    #: States sent per batch in a flush round: a round over all keys at once held the agent
    #: ~90 ms for 256 keys (measured), the p99 latency of the whole stream.
    WRITES_PER_BATCH = 32

    def __init__(self, cursor_key: bytes, clock=time.monotonic):
        self.cursor_key = cursor_key
        self.clock = clock
        self._values: dict[tuple[int, bytes], bytes] = {}
        self._sent: dict[tuple[int, bytes], bytes] = {}
        self.in_flight: list[tuple[bytes, int, bytes, Any, Any]] = []  # key, partition, value, future, event
        self._last_flush = clock()
        # a flush round in progress: its (partition, key)s still to send, and each partition's
        # cursor as the round began (written once that partition's round states are all sent)
        self._round: list[tuple[int, bytes]] = []
        self._round_cursors: dict[int, bytes] = {}
        self._round_left: Counter[int] = Counter()

    def __len__(self) -> int:
        return len(self._values)

    def get(self, partition: int, key: bytes) -> bytes | None:
        """The value waiting for (partition, key), or None (then the table has the latest)."""
        value = self._values.get((partition, key))
        return value if value is not None else self._sent.get((partition, key))

    def put(self, partition: int, key: bytes, value: bytes) -> None:
        self._values[(partition, key)] = value

    def due(self, interval_s: float) -> bool:
        return bool(self._round_cursors) or bool(self._values) and (
            self.clock() - self._last_flush >= interval_s or len(self._values) >= self.MAX_ENTRIES)

    def take(self) -> list[tuple[bytes, int, bytes]]:
        """Everything waiting, as (key, partition, value), each partition's cursor after its
        states (one changelog partition keeps the order: a cursor on the broker means the
        states before it are too); the buffer is emptied."""
        states = [(k, p, v) for (p, k), v in self._values.items() if k != self.cursor_key]
        cursors = [(k, p, v) for (p, k), v in self._values.items() if k == self.cursor_key]
        self._values.clear()
        self._end_round()
        self._last_flush = self.clock()
        return states + cursors

    def take_some(self, limit: int | None = None) -> list[tuple[bytes, int, bytes]]:
        """Part of a flush round, as (key, partition, value): the round is everything waiting
        when it begins, ``limit`` states per call (their latest values), and a partition's
        cursor as the round began once all its states of the round are taken. A cursor on the
        broker still means every state it covers is too: each key's state there is at least as
        new as the round's start."""
        if not self._round_cursors:
            self._round = [pk for pk in self._values if pk[1] != self.cursor_key]
            self._round_cursors = {p: v for (p, k), v in self._values.items() if k == self.cursor_key}
            self._round_left = Counter(p for p, _ in self._round)
            self._last_flush = self.clock()
        out = []
        while self._round and (limit is None or len(out) < limit):
            p, k = self._round.pop()
            self._round_left[p] -= 1
            v = self._values.pop((p, k), None)
            if v is not None:
                out.append((k, p, v))
        for p in [p for p in self._round_cursors if self._round_left[p] <= 0]:
            v = self._round_cursors.pop(p)
            if self._values.get((p, self.cursor_key)) is v:  # not advanced since the round began
                del self._values[(p, self.cursor_key)]
            out.append((self.cursor_key, p, v))
        if not self._round_cursors:
            self._end_round()
        return out

    def _end_round(self) -> None:
        self._round, self._round_cursors, self._round_left = [], {}, Counter()

    def sent(self, writes: list[tuple[bytes, int, bytes]], futures: list, events: dict[int, Any]) -> None:
        """``writes`` (from :meth:`take`) are on their way to the changelog."""
        for (key, partition, value), future in zip(writes, futures):
            self._sent[(partition, key)] = value
            self.in_flight.append((key, partition, value, future, events[partition]))

    def take_sent(self, done_only: bool = False) -> list[tuple[bytes, int, bytes, Any, Any]]:
        """Sent writes for the local store: all, or those the broker has acknowledged."""
        if done_only:
            out = [w for w in self.in_flight if w[3].done()]
            self.in_flight = [w for w in self.in_flight if not w[3].done()]
        else:
            out, self.in_flight = self.in_flight, []
        for key, partition, value, _, _ in out:
            if self._sent.get((partition, key)) is value:  # not sent again since
                del self._sent[(partition, key)]
        return out

    def drop(self, partitions: Iterable[int] | None = None) -> None:
        """Forget what waits (for ``partitions``, or all): after a rebalance the table and the
        broker are the truth, and the gap fill redoes the dropped work. (Sent values dropped
        here are on the changelog: Faust's recovery at the next assignment replays them.)"""
        if partitions is None:
            self._values.clear()
            self.take_sent()
            self._end_round()
        else:
            gone = set(partitions)
            for pk in [pk for pk in self._values if pk[0] in gone]:
                del self._values[pk]
            self._round = [pk for pk in self._round if pk[0] not in gone]
            for p in gone:
                self._round_cursors.pop(p, None)
                self._round_left.pop(p, None)
