"""Writing key states to the worker's table: the changelog topic first, then the local RocksDB
copy (Faust's store of the partition), and the changelog offset Faust resumes its recovery from.

``router`` is the app's producer router (``stream_app.producer_router.ProducerRouter``): it sends with the
right transactional producer and records persisted changelog offsets. Table writes go to the
partition of the *current event* (see ``stream_app.app``), so each write names an event of its
partition.
"""

from __future__ import annotations

import asyncio
import weakref
from typing import Any

from faust.streams import _current_event  # see stream_app/app.py

from .pending_states import PendingStates


async def write_states(router: Any, table: Any, partition_event: dict[int, Any],
                        writes: list[tuple[bytes, int, bytes]], outputs: list) -> None:
    """Write key states (and cursors) to the changelog, and once the broker has them, to the
    local RocksDB copy.

    The changelog records are sent here, awaited, and not through ``table[key] = value``:
    Faust buffers that send and, in exactly-once mode, can commit the batch's offsets before
    the buffered record is produced, so the state change lands in the next transaction and is
    lost with it in a crash (found by the SIGKILL test). Here it joins the outputs' transaction.
    """
    events = {p: partition_event[p] for p in {p for _, p, _ in writes}}  # a rebalance may clear it
    changelog = []
    for key_bytes, partition, value in writes:
        changelog.append((partition, await router.send(router.changelog_topic, key_bytes, value, partition)))
    await asyncio.gather(*outputs, *(f for _, f in changelog))
    for key_bytes, partition, value in writes:
        _current_event.set(weakref.ref(events[partition]))
        table.data[key_bytes] = value  # the local RocksDB copy (Faust's store for that partition)
    _current_event.set(None)
    for partition, fut in changelog:
        router.persisted(table, fut.result())


async def flush_states(router: Any, table: Any, pending: PendingStates, outputs: list,
                       partition_event: dict[int, Any], limit: int | None = None) -> None:
    """At-least-once: send the states waiting in ``pending`` to the changelog, without
    waiting for the broker: they reach the local store at the next flush (or a revocation).
    ``outputs``: the output sends since the last flush; ``limit``: states to send now (a part of
    a flush round, ``PendingStates.take_some``), None: all at once."""
    await asyncio.gather(*outputs)  # a state on the broker must not name events whose outputs are not
    await store_sent(router, table, pending, done_only=True)
    writes = pending.take() if limit is None else pending.take_some(limit)
    events = {p: partition_event[p] for p in {p for _, p, _ in writes}}
    futures = [await router.send(router.changelog_topic, key, value, partition)
               for key, partition, value in writes]
    pending.sent(writes, futures, events)


async def store_sent(router: Any, table: Any, pending: PendingStates, done_only: bool = False) -> None:
    """Sent states into the local RocksDB copy once the broker has them: all (waiting for
    them), or those already acknowledged."""
    sent = pending.take_sent(done_only)
    if not sent:
        return
    await asyncio.gather(*(future for _, _, _, future, _ in sent))
    for key, _, value, _, event in sent:
        _current_event.set(weakref.ref(event))
        table.data[key] = value
    _current_event.set(None)
    for _, _, _, future, _ in sent:
        router.persisted(table, future.result())
