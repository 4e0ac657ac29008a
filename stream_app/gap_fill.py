"""Re-read event messages that Faust did not deliver to the agent.

faust-streaming 0.15.3 can drop a message on its way from the consumer to an agent around a
rebalance or the end of table recovery (messages fetched while the flow is suspended, or from
the previous generation, are acked without being delivered, and a jump in offsets is recorded
as a "gap" that commits may step over). The SIGKILL tests saw one event of a partition never
scored after a restart. Offsets on the events topic are contiguous (plain producers, no
transactions, no compaction), so the agent notices a jump between the last offset it
processed on a partition and the next one it is given, and fetches the missing range here,
directly from the broker, before processing the batch. Messages already applied are then
skipped by the per-key stored offsets, so refetching too much is harmless.

Faust must also learn that the range is done (``mark_done``): it commits a partition's offset
only up to its first offset never acked, so a skipped message it never acked held that
partition's commits back for good: at-least-once, its committed offset stopped moving (a
restart replays everything since); exactly-once, its transaction never committed, and every
output of the partition stayed invisible to ``read_committed`` consumers (the SIGKILL test's
rare "timed out waiting for scored events").
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from faust.types import TP

from .processor import InMessage

log = logging.getLogger(__name__)


class GapFetchError(RuntimeError):
    """The missing range could not be read back from the broker."""


class GapFiller:
    def __init__(self, bootstrap: str, timeout_s: float = 30.0, **client_kwargs: Any):
        self.bootstrap = bootstrap
        self.timeout_s = timeout_s
        self.client_kwargs = client_kwargs
        self._consumer: AIOKafkaConsumer | None = None
        self._lock = asyncio.Lock()

    async def fetch(self, topic: str, partition: int, start: int, end: int) -> list[InMessage]:
        """Messages with offsets in [start, end) of ``topic``/``partition``, in order. A range
        that retention already deleted comes back shorter (from the log start)."""
        async with self._lock:
            if self._consumer is None:
                self._consumer = AIOKafkaConsumer(
                    bootstrap_servers=self.bootstrap, enable_auto_commit=False,
                    isolation_level="read_committed", **self.client_kwargs)
                await self._consumer.start()
            consumer = self._consumer
            tp = TopicPartition(topic, partition)
            consumer.assign([tp])
            consumer.seek(tp, start)
            out: list[InMessage] = []
            deadline = time.monotonic() + self.timeout_s
            while True:
                batch = await consumer.getmany(tp, timeout_ms=500)
                for m in batch.get(tp, []):
                    if m.offset >= end:
                        return out
                    out.append(InMessage(topic, partition, m.offset, m.value))
                if out and out[-1].offset >= end - 1:
                    return out
                if time.monotonic() > deadline:
                    raise GapFetchError(
                        f"could not read back {topic}[{partition}] offsets {start}..{end - 1} "
                        f"within {self.timeout_s:.0f} s (got {len(out)})")

    async def close(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None


async def mark_done(consumer: Any, topic: str, partition: int, start: int, end: int) -> None:
    """Tell Faust's consumer that offsets [start, end) of ``topic``/``partition`` are processed
    although it never delivered (nor acked) them, so its commits can step over them.

    Faust's own record of "offsets that commits may step over" is its gap tree
    (``Consumer._add_gap``, filled when its fetch loop sees a jump in offsets; private API of
    faust-streaming 0.15.3, which the project pins). A gap is only stepped over once a later
    offset is acked, i.e. after the batch that read the range back has been processed.
    """
    if end > start:
        await consumer._add_gap(TP(topic, partition), start, end - 1)  # inclusive end
