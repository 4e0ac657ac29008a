"""The local broker answers, takes topics with partitions, and serves a consumer group at once."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from stream_app import topics

pytestmark = pytest.mark.kafka


def test_topics_have_requested_partitions_and_accept_first_produce(kafka_bootstrap, kafka_topics):
    (name,) = kafka_topics("events", partitions=4)

    async def run() -> tuple[dict[int, int], list[bytes]]:
        counts = await topics.ensure_topics(kafka_bootstrap, {name: 4})
        assert counts == {name: 4}
        producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
        await producer.start()
        try:
            for p in range(4):  # the first produce right after creation, to every partition
                await producer.send_and_wait(name, f"m{p}".encode(), partition=p)
        finally:
            await producer.stop()
        ends = await topics.end_offsets(kafka_bootstrap, name)
        consumer = AIOKafkaConsumer(
            name, bootstrap_servers=kafka_bootstrap, group_id=f"g-{name}",
            auto_offset_reset="earliest",
        )
        await consumer.start()
        got: list[bytes] = []
        try:
            while len(got) < 4:
                batch = await asyncio.wait_for(consumer.getmany(timeout_ms=500), 30)
                got += [m.value for msgs in batch.values() for m in msgs]
        finally:
            await consumer.stop()
        return ends, got

    ends, got = asyncio.run(run())
    assert ends == {0: 1, 1: 1, 2: 1, 3: 1}
    assert sorted(got) == [b"m0", b"m1", b"m2", b"m3"]


def test_existing_topic_keeps_its_partition_count(kafka_bootstrap, kafka_topics):
    (name,) = kafka_topics("x", partitions=2)
    counts = asyncio.run(topics.ensure_topics(kafka_bootstrap, {name: 5}))
    assert counts == {name: 2}


def test_given_or_started_uses_the_named_broker_or_starts_and_stops_one(tmp_path, monkeypatch):
    from stream_app import broker
    from stream_app.processes import pid_alive

    monkeypatch.setenv("EMBER_KAFKA_BOOTSTRAP", "127.0.0.1:1")
    with broker.given_or_started(tmp_path / "unused") as (bootstrap, started):
        assert (bootstrap, started) == ("127.0.0.1:1", False)
    assert not (tmp_path / "unused").exists()  # nothing started

    monkeypatch.delenv("EMBER_KAFKA_BOOTSTRAP")
    with broker.given_or_started(tmp_path / "own") as (bootstrap, started):
        assert started and broker.status(tmp_path / "own").bootstrap == bootstrap
        pid = broker.status(tmp_path / "own").pid
    assert broker.status(tmp_path / "own") is None
    assert not pid_alive(pid)
