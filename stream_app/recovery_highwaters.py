"""Where table recovery stops reading: after the changelog's last record, asked of the broker.

Before a worker restores a changelog partition, Faust (faust-streaming 0.15.3) reads the
partition's end ("highwater") and applies records until it has seen the one before that end.
Two things went wrong with the end it took:

- In exactly-once mode it took ``last_stable_offset(tp)`` from aiokafka: the last stable
  offset *as reported by the last fetch response for that partition*. A changelog partition
  just assigned has not been fetched yet, so that is None, which Faust reads as "empty": the
  recovery restored nothing and the worker scored the partition's keys from fresh states,
  silently. The exactly-once rebalance test (tests/kafka/test_stream_worker.py, a second
  worker joining mid-backlog) saw it in 1 of 4 runs on the 2-core dev VM and in a CI run,
  November 2026: the joining worker logged "highwater -1" for changelog partitions holding
  thousands of records, "stored cursor None", then warmed its keys up again from scratch.
- With transactions the offset before the end is a commit marker, never delivered as a
  record, so recovery waited for it until its own fallback (two idle 5 s polls, then "Aborted
  tx until highwater"): every rebalance or restart in exactly-once mode held the worker
  ~10 s, measured.

So the end is asked of the broker (``end_offsets``: a ListOffsets request at the consumer's
isolation level; ``read_committed`` gives the last stable offset: recovery must read exactly
the committed transactions, whose states and cursors agree, ``stream_app.state_writes``) and
then moved back to just after the last *record* below it, found by reading the partition's
tail (a few records, once per partition and recovery) with a consumer of the same isolation
level. Control markers and, at ``read_committed``, aborted records are what the recovery would
never see, and what this step skips. At ``read_committed`` the end is read once the last
transactions' markers are written (``settled_ends``), so it covers every batch committed
before the rebalance.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Iterable

from aiokafka import AIOKafkaConsumer

log = logging.getLogger(__name__)

TAIL_RECORDS = 16  # the first look back from the end; widened 8-fold while it finds nothing
READ_TIMEOUT_S = 30.0
SETTLE_S = 5.0     # at most this long for the last transactions' markers (``settled_ends``)

_client: dict[str, Any] = {}  # bootstrap and security settings of the worker (``install``)


async def last_record_ends(consumer: Any, ends: dict[Any, int], timeout_s: float = READ_TIMEOUT_S) -> dict[Any, int]:
    """For each partition, the offset just after its last record below ``ends[tp]`` (0 if it
    has none), as ``consumer`` (assigned nothing else, no group) reads them: markers and what
    its isolation level hides do not count. On timeout the ends are returned unchanged."""
    out = {tp: 0 for tp in ends}
    todo = {tp: end for tp, end in ends.items() if end > 0}
    back = dict.fromkeys(todo, TAIL_RECORDS)
    deadline = time.monotonic() + timeout_s
    while todo:
        consumer.assign(list(todo))
        for tp, end in todo.items():
            consumer.seek(tp, max(end - back[tp], 0))
        last: dict[Any, int] = {}
        reading = set(todo)
        while reading:
            if time.monotonic() > deadline:
                log.warning("recovery ends: could not read the tails of %s within %.0f s; "
                            "using the broker's ends",
                            ", ".join(sorted(f"{tp.topic}[{tp.partition}]" for tp in todo)), timeout_s)
                out.update(todo)
                return out
            batch = await consumer.getmany(*reading, timeout_ms=200)
            for tp, records in batch.items():
                for r in records:
                    if r.offset < todo[tp]:
                        last[tp] = r.offset
            reading = {tp for tp in reading if await consumer.position(tp) < todo[tp]}
        widen = {}
        for tp, end in todo.items():
            if tp in last:
                out[tp] = last[tp] + 1
            elif end - back[tp] > 0:  # only markers (or hidden records) there: look further back
                back[tp] *= 8
                widen[tp] = end
        todo = widen
    return out


def _reader(isolation_level: str) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(bootstrap_servers=_client["bootstrap"], enable_auto_commit=False,
                            auto_offset_reset="earliest", isolation_level=isolation_level,
                            **_client["kwargs"])


async def settled_ends(thread_consumer: Any, partitions: list, timeout_s: float | None = None) -> dict[Any, int]:
    """``read_committed`` ends once every transaction on ``partitions`` is complete (the last
    stable offset has reached the log's end), or as they are after ``timeout_s``.

    A committed transaction's markers are written after the producer's commit returns, so for
    a moment its records still count as pending: read then, the end would leave out the last
    batch a worker committed, which its own local store already holds (a stored offset past
    the end stops Faust's recovery). When recovery starts nobody else writes the partition
    (the new owner's producer has fenced the old one's), so this settles in milliseconds."""
    timeout_s = SETTLE_S if timeout_s is None else timeout_s
    log_reader = _reader("read_uncommitted")
    await log_reader.start()
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            ends = dict(await thread_consumer.end_offsets(partitions))
            logs = dict(await log_reader.end_offsets(partitions))
            pending = sorted(f"{tp.topic}[{tp.partition}]" for tp in partitions if ends[tp] < logs[tp])
            if not pending:
                return ends
            if time.monotonic() > deadline:
                log.warning("recovery ends: transactions still open on %s after %.1f s; reading up "
                            "to what is committed", ", ".join(pending), timeout_s)
                return ends
            await asyncio.sleep(0.05)
    finally:
        await log_reader.stop()


async def recovery_ends(thread_consumer: Any, partitions: Iterable[Any], read_committed: bool) -> dict[Any, int]:
    """What Faust's recovery should take as the ends of ``partitions`` (it reads up to the
    offset before): just after each one's last record as the broker has it now."""
    partitions = list(partitions)
    ends = (await settled_ends(thread_consumer, partitions) if read_committed
            else dict(await thread_consumer.end_offsets(partitions)))
    if not any(ends.values()):
        return ends
    reader = _reader("read_committed" if read_committed else "read_uncommitted")
    await reader.start()
    try:
        return await last_record_ends(reader, ends)
    finally:
        await reader.stop()


def install(bootstrap: str, client_kwargs: dict[str, Any]) -> None:
    """Make Faust's consumer thread take recovery ends from ``recovery_ends`` (idempotent)."""
    from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

    _client.update(bootstrap=bootstrap, kwargs=dict(client_kwargs))
    if getattr(AIOKafkaConsumerThread._highwaters, "ember_patched", False):
        return

    async def _highwaters(self: Any, partitions: list) -> dict:
        return await recovery_ends(self._ensure_consumer(), partitions, bool(self.consumer.in_transaction))

    _highwaters.ember_patched = True  # type: ignore[attr-defined]
    AIOKafkaConsumerThread._highwaters = _highwaters
