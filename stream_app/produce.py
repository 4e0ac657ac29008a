"""Produce events to the events topic the way the worker expects them, and read topics back.

Events are keyed by their key field (UTF-8), so Kafka's default partitioner sends each key to one
partition and the key's state lives with it. ``per_message > 1`` packs several events into one
message (a JSON array); a batch message only holds events of keys that share a partition, and
is sent to that partition explicitly.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterable, Sequence
from typing import Any

import pyarrow as pa
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from .processor import default_partition
from .schemas import event_to_json


def table_rows(table: pa.Table) -> list[dict[str, Any]]:
    return table.to_pylist()


def encode_messages(
    rows: Sequence[dict[str, Any]], key_field: str, partitions: int, per_message: int = 1
) -> list[tuple[int, bytes, bytes]]:
    """(partition, key, value) messages for ``rows``, keeping each key's order."""
    if per_message <= 1:
        out = []
        for row in rows:
            key = str(row[key_field])
            out.append((default_partition(key, partitions), key.encode(), event_to_json(row)))
        return out
    pending: dict[int, list[dict[str, Any]]] = {}
    out = []
    for row in rows:
        key = str(row[key_field])
        p = default_partition(key, partitions)
        buf = pending.setdefault(p, [])
        buf.append(row)
        if len(buf) >= per_message:
            out.append((p, str(buf[0][key_field]).encode(), _array(buf)))
            pending[p] = []
    for p, buf in pending.items():
        if buf:
            out.append((p, str(buf[0][key_field]).encode(), _array(buf)))
    return out


def _array(rows: list[dict[str, Any]]) -> bytes:
    return json.dumps(rows, separators=(",", ":"), allow_nan=False).encode()


async def produce(
    bootstrap: str,
    topic: str,
    messages: Iterable[tuple[int, bytes | None, bytes]],
    rate: float | None = None,
    linger_ms: int = 5,
    **client_kwargs: Any,
) -> int:
    """Send (partition, key, value) messages; ``rate`` = messages/s (None: as fast as possible)."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=linger_ms, acks="all",
                                max_request_size=8 * 1024 * 1024, **client_kwargs)
    await producer.start()
    n = 0
    try:
        t0 = time.perf_counter()
        futures = []
        for partition, key, value in messages:
            if rate:
                ahead = t0 + n / rate - time.perf_counter()
                if ahead > 0:
                    await asyncio.sleep(ahead)
            futures.append(await producer.send(topic, value, key=key, partition=partition))
            n += 1
            if len(futures) >= 10_000:
                await asyncio.gather(*futures)
                futures.clear()
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return n


async def read_topic(
    bootstrap: str,
    topic: str,
    *,
    expect: int | None = None,
    idle_s: float = 3.0,
    timeout_s: float = 120.0,
    isolation_level: str = "read_uncommitted",
    **client_kwargs: Any,
) -> list[Any]:
    """All messages of ``topic`` from the beginning (no consumer group): stops when ``expect``
    messages are read and then ``idle_s`` passes without more, or at ``timeout_s``."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                auto_offset_reset="earliest", isolation_level=isolation_level,
                                **client_kwargs)
    await consumer.start()
    try:
        from aiokafka import TopicPartition

        parts = consumer.partitions_for_topic(topic)
        if not parts:
            await consumer._client.force_metadata_update()
            parts = consumer.partitions_for_topic(topic) or set()
        consumer.assign([TopicPartition(topic, p) for p in sorted(parts)])
        await consumer.seek_to_beginning()
        got: list[Any] = []
        deadline = time.monotonic() + timeout_s
        last_new = time.monotonic()
        while time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=200)
            n = sum(len(v) for v in batch.values())
            for msgs in batch.values():
                got.extend(msgs)
            if n:
                last_new = time.monotonic()
            elif (expect is None or len(got) >= expect) and time.monotonic() - last_new >= idle_s:
                break
        return got
    finally:
        await consumer.stop()
