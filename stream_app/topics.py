"""Kafka admin helpers: create topics with their partition counts, wait until the broker is ready.

Faust creates only its own internal topics (changelogs, repartitions); the events, alerts,
scores and dead-letter topics are ours to create, with the partition count that sets how many
workers can share the load. A fresh broker also needs a moment after ``create_topics`` (the first
produce can get ``NotLeaderForPartition``) and after its first group request (the first answer is
``GroupCoordinatorNotAvailable`` while ``__consumer_offsets`` is created): these helpers wait for
the condition itself instead of sleeping.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Mapping
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import for_code

TOPIC_ALREADY_EXISTS = 36


class TopicError(RuntimeError):
    """A topic could not be created or did not become ready in time."""


async def _admin(bootstrap: str, client_kwargs: Mapping[str, Any]) -> AIOKafkaAdminClient:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, **client_kwargs)
    await admin.start()
    return admin


async def ensure_topics(
    bootstrap: str,
    topics: Mapping[str, int],
    timeout_s: float = 30.0,
    configs: Mapping[str, Mapping[str, str]] | None = None,
    replication_factor: int = 1,
    **client_kwargs: Any,
) -> dict[str, int]:
    """Create each missing topic with its partition count; wait until every partition has a leader.

    Returns the partition count of every topic (an existing topic keeps the count it has; a
    difference from the requested count is reported to the caller, not changed).
    """
    admin = await _admin(bootstrap, client_kwargs)
    try:
        existing = set(await admin.list_topics())
        missing = [
            NewTopic(name, num_partitions=n, replication_factor=replication_factor,
                     topic_configs=dict((configs or {}).get(name, {})))
            for name, n in topics.items()
            if name not in existing
        ]
        if missing:
            response = await admin.create_topics(missing, timeout_ms=int(timeout_s * 1000))
            for item in response.topic_errors:
                name, code = item[0], item[1]
                if code not in (0, TOPIC_ALREADY_EXISTS):
                    message = item[2] if len(item) > 2 else ""
                    raise TopicError(f"creating topic {name!r}: {for_code(code).__name__} {message}")
        return await _wait_for_leaders(admin, list(topics), timeout_s)
    finally:
        await admin.close()


async def _wait_for_leaders(
    admin: AIOKafkaAdminClient, names: list[str], timeout_s: float
) -> dict[str, int]:
    deadline = time.monotonic() + timeout_s
    while True:
        described = await admin.describe_topics(names)
        counts: dict[str, int] = {}
        ready = True
        for topic in described:
            parts = topic["partitions"]
            if topic["error_code"] != 0 or not parts:
                ready = False
                continue
            if any(p["error_code"] != 0 or p["leader"] < 0 for p in parts):
                ready = False
            counts[topic["topic"]] = len(parts)
        if ready and set(counts) == set(names):
            return counts
        if time.monotonic() > deadline:
            raise TopicError(f"topics {names} had no leader for every partition within {timeout_s} s")
        await asyncio.sleep(0.05)


async def wait_for_coordinators(
    bootstrap: str,
    group_ids: Iterable[str] = (),
    transactional_ids: Iterable[str] = (),
    timeout_s: float = 30.0,
    **client_kwargs: Any,
) -> None:
    """Wait until the broker names a coordinator for each group / transactional id.

    The first request makes the broker create ``__consumer_offsets`` (or ``__transaction_state``);
    until that is done it answers ``CoordinatorNotAvailable``.
    """
    admin = await _admin(bootstrap, client_kwargs)
    try:
        wanted = [(g, 0) for g in group_ids] + [(t, 1) for t in transactional_ids]
        deadline = time.monotonic() + timeout_s
        for key, kind in wanted:
            while True:
                try:
                    await admin.find_coordinator(key, coordinator_type=kind)
                    break
                except Exception as exc:  # CoordinatorNotAvailable while the topic is created
                    if time.monotonic() > deadline:
                        raise TopicError(f"no coordinator for {key!r} within {timeout_s} s: {exc}")
                    await asyncio.sleep(0.05)
    finally:
        await admin.close()


async def delete_topics(bootstrap: str, names: Iterable[str], **client_kwargs: Any) -> None:
    admin = await _admin(bootstrap, client_kwargs)
    try:
        existing = set(await admin.list_topics())
        doomed = [n for n in names if n in existing]
        if doomed:
            await admin.delete_topics(doomed)
    finally:
        await admin.close()


async def end_offsets(bootstrap: str, topic: str, **client_kwargs: Any) -> dict[int, int]:
    """The log-end offset of every partition of ``topic``."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, **client_kwargs)
    await consumer.start()
    try:
        parts = consumer.partitions_for_topic(topic)
        if parts is None:
            await consumer._client.force_metadata_update()
            parts = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        ends = await consumer.end_offsets(tps)
        return {tp.partition: off for tp, off in ends.items()}
    finally:
        await consumer.stop()
