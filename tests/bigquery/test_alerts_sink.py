"""Backfill alerts to a real Kafka alerts topic: the streaming format, ids stable across retries."""

from __future__ import annotations

import asyncio
import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from stream_app.backfill import AlertsSink, EventFields, FileSource, LocalManifest, run_backfill

pytestmark = pytest.mark.kafka
FIELDS = EventFields(key_field="host", time_field="ts", value_fields=("cpu",))


async def consume_all(bootstrap: str, topic: str) -> list:
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or {0})]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        out = []
        while any([await consumer.position(tp) < ends[tp] for tp in tps]):
            for msgs in (await consumer.getmany(timeout_ms=500)).values():
                out.extend(msgs)
        return out
    finally:
        await consumer.stop()


def test_alerts_reach_the_topic_once_per_alert_id(kafka_bootstrap, kafka_topics, arrow_events, pipeline, tmp_path):
    events = arrow_events(8, 60, seed=5)
    cpu = events.column("cpu").to_numpy().copy()
    spikes = np.arange(40, events.num_rows, 97)
    cpu[spikes] += 400.0  # unmistakable anomalies
    events = events.set_column(2, "cpu", pa.array(cpu))
    pq.write_table(events, tmp_path / "events.parquet")
    (topic,) = kafka_topics("alerts")

    expected = pipeline.score(events.sort_by([("host", "ascending"), ("ts", "ascending")]))
    want = {(k, t.timestamp()) for k, t, a in zip(expected.column("key").to_pylist(), expected.column("time").to_pylist(),
                                                  expected.column("alert").to_pylist()) if a}
    assert len(want) >= 3

    source = FileSource(tmp_path / "events.parquet", FIELDS, staging_dir=tmp_path / "stage")
    first = run_backfill(source, AlertsSink(kafka_bootstrap, topic), pipeline, shards=2, run_id="alerts",
                         manifest=LocalManifest(tmp_path / "m1"), progress=False)
    assert first.alerts == len(want)
    # A full retry (its manifest lost): the same alerts again, with the same ids.
    run_backfill(source, AlertsSink(kafka_bootstrap, topic), pipeline, shards=2, run_id="alerts",
                 manifest=LocalManifest(tmp_path / "m2"), progress=False)

    messages = asyncio.run(consume_all(kafka_bootstrap, topic))
    records = [json.loads(m.value) for m in messages]
    assert len(records) == 2 * len(want)
    ids = {r["alert_id"] for r in records}
    assert len(ids) == len(want)
    assert {(r["key"], r["time"]) for r in records} == want
    assert all(m.key.decode() == json.loads(m.value)["key"] for m in messages)
    assert {r["source"]["backfill_run"] for r in records} == {"alerts"}
    assert all(r["model_version"] == pipeline.model_version for r in records)
