"""Where table recovery stops reading (stream_app/recovery_highwaters.py), real broker.

What went wrong before: a read_committed consumer that has not fetched a partition yet knows
no last stable offset, and faust-streaming took that as an empty changelog (a worker given a
partition restored none of its states); and it waited for a commit marker as for a record.
"""

from __future__ import annotations

import asyncio
import uuid

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from stream_app import recovery_highwaters

pytestmark = pytest.mark.kafka


async def _write_transactions(bootstrap: str, topic: str, committed: int, open_after: int) -> None:
    """``committed`` records in one committed transaction, then ``open_after`` records in a
    transaction left open (the producer is closed without committing; the broker aborts it
    after its timeout, long after this test)."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, transactional_id=f"t-{uuid.uuid4().hex[:8]}",
                                transaction_timeout_ms=60_000)
    await producer.start()
    try:
        async with producer.transaction():
            for i in range(committed):
                await producer.send(topic, f"c{i}".encode(), partition=0)
        if open_after:
            await producer.begin_transaction()
            for i in range(open_after):
                await (await producer.send(topic, f"o{i}".encode(), partition=0))
    finally:
        await producer.stop()


async def _ends(bootstrap: str, tps: list, isolation_level: str = "read_committed") -> tuple[list, dict, dict]:
    """(what the fetch cache knows, the broker's ends, the ends recovery is given)."""
    thread_consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, isolation_level=isolation_level,
                                       enable_auto_commit=False)
    await thread_consumer.start()
    try:
        thread_consumer.assign(tps)
        cached = [thread_consumer.last_stable_offset(tp) for tp in tps]  # what Faust used
        broker = await thread_consumer.end_offsets(tps)
        recovery_highwaters.install(bootstrap, {})
        got = await recovery_highwaters.recovery_ends(thread_consumer, tps, isolation_level == "read_committed")
        return cached, broker, got
    finally:
        await thread_consumer.stop()


def test_recovery_ends_after_the_last_committed_record_fetched_or_not(kafka_bootstrap, kafka_topics,
                                                                      monkeypatch, caplog):
    monkeypatch.setattr(recovery_highwaters, "SETTLE_S", 0.5)  # the open transaction stays open
    done, open_, empty = kafka_topics("committed", "open", "empty")
    asyncio.run(_write_transactions(kafka_bootstrap, done, committed=5, open_after=0))
    asyncio.run(_write_transactions(kafka_bootstrap, open_, committed=3, open_after=4))
    tps = [TopicPartition(done, 0), TopicPartition(open_, 0), TopicPartition(empty, 0)]
    cached, broker, got = asyncio.run(_ends(kafka_bootstrap, tps))
    assert cached[:2] == [None, None], "nothing fetched yet: the cache knows no end (Faust read -1)"
    # 5 records, then the commit marker (offset 5); 3 records, their marker, the open transaction
    assert broker == {tps[0]: 6, tps[1]: 4, tps[2]: 0}
    # recovery stops after the last record it will be given, not at a marker it never gets
    assert got == {tps[0]: 5, tps[1]: 3, tps[2]: 0}
    assert f"transactions still open on {open_}[0] after 0.5 s" in caplog.text


def test_recovery_ends_look_back_past_many_markers_and_aborted_records(kafka_bootstrap, kafka_topics):
    (topic,) = kafka_topics("aborted")
    tp = TopicPartition(topic, 0)

    async def write() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, transactional_id=f"t-{uuid.uuid4().hex[:8]}")
        await producer.start()
        try:
            async with producer.transaction():
                await producer.send(topic, b"kept", partition=0)     # offset 0, marker 1
            for _ in range(12):  # aborted transactions: a record and a marker each (offsets 2..25)
                await producer.begin_transaction()
                await (await producer.send(topic, b"gone", partition=0))
                await producer.abort_transaction()
        finally:
            await producer.stop()

    asyncio.run(write())
    _, broker, committed = asyncio.run(_ends(kafka_bootstrap, [tp]))
    assert broker == {tp: 26}
    assert committed == {tp: 1}, "read_committed: the last record recovery gets is the first one"
    _, _, uncommitted = asyncio.run(_ends(kafka_bootstrap, [tp], "read_uncommitted"))
    assert uncommitted == {tp: 25}, "read_uncommitted: the last aborted record is delivered too"


def test_install_routes_fausts_highwaters_to_the_broker(monkeypatch):
    from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

    monkeypatch.setattr(recovery_highwaters, "_client", {})  # (restored after the test)
    recovery_highwaters.install("127.0.0.1:9", {})
    recovery_highwaters.install("127.0.0.1:9", {})  # idempotent
    assert AIOKafkaConsumerThread._highwaters.ember_patched
    assert recovery_highwaters._client == {"bootstrap": "127.0.0.1:9", "kwargs": {}}
