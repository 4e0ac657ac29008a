"""BigQuery → pipeline → BigQuery against the emulator: idempotent shard writes, resume, parity."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from stream_app.backfill import BigQuerySink, BigQuerySource, EventFields, LocalManifest, SinkError, run_backfill
from stream_app.backfill.sink import RunInfo

FIELDS = EventFields(key_field="host", time_field="ts", value_fields=("cpu",))


def read_table(bq_clients, table_id: str) -> pa.Table:
    return bq_clients.bq.query(f"SELECT * FROM `{table_id}`").result().to_arrow(create_bqstorage_client=False)


def scores_for(n: int, base: float) -> pa.Table:
    return pa.table({
        "key": [f"k{i % 3}" for i in range(n)],
        "time": pa.array(np.arange(n) * 1_000_000 + 1_700_000_000_000_000, pa.int64()).cast(pa.timestamp("us", tz="UTC")),
        "score": [base + i / 100 for i in range(n)],
        "threshold": [0.5] * n,
        "alert": [i % 5 == 0 for i in range(n)],
    })


def test_writing_a_shard_again_replaces_it(bq_clients, bq_dataset):
    sink = BigQuerySink(f"{bq_dataset}.scores", bq_clients)
    run = RunInfo("run-a", 3, "v1")
    sink.open(run)
    sink.write_shard(run, 0, scores_for(7, 0.1), [])
    sink.write_shard(run, 1, scores_for(5, 0.2), [])
    sink.write_shard(run, 1, scores_for(4, 0.3), [])  # the retry: other rows than the first try
    sink.write_shard(RunInfo("run-b", 3, "v1"), 1, scores_for(2, 0.9), [])  # another run, same shard
    got = read_table(bq_clients, f"{bq_dataset}.scores")
    counts = {}
    for run_id, shard in zip(got.column("run_id").to_pylist(), got.column("shard").to_pylist()):
        counts[(run_id, shard)] = counts.get((run_id, shard), 0) + 1
    assert counts == {("run-a", 0): 7, ("run-a", 1): 4, ("run-b", 1): 2}
    shard1 = got.filter(pa.compute.and_(pa.compute.equal(got.column("run_id"), "run-a"),
                                        pa.compute.equal(got.column("shard"), 1)))
    assert min(shard1.column("score").to_pylist()) == pytest.approx(0.3)
    # No per-shard staging table is left behind.
    assert {t.table_id for t in bq_clients.bq.list_tables(bq_dataset)} == {"scores"}


def test_sink_refuses_a_table_that_is_not_a_scores_table(bq_clients, bq_dataset, events_table):
    table_id, _ = events_table(keys=2, per_key=2)
    with pytest.raises(SinkError, match="not a backfill scores table"):
        BigQuerySink(table_id, bq_clients).open(RunInfo("r", 1, "v"))


class _StopAfter:
    """A real sink that stops the run (like a killed process) before writing shard ``at``."""

    def __init__(self, sink, at: int):
        self.sink, self.at = sink, at
        self.needs_alerts = sink.needs_alerts

    def __getattr__(self, name):
        return getattr(self.sink, name)

    def write_shard(self, run, shard, scores, alerts):
        if shard == self.at:
            raise KeyboardInterrupt("stopped")
        self.sink.write_shard(run, shard, scores, alerts)


class _ForgetfulManifest(LocalManifest):
    """A manifest that loses the record of shard ``lost`` (a crash after the sink write and
    before the shard was recorded): the shard is written a second time."""

    def __init__(self, directory, lost: int):
        super().__init__(directory)
        self.lost = lost

    def mark(self, run_id, shard, record):
        if shard != self.lost:
            super().mark(run_id, shard, record)


def test_resumed_and_retried_backfill_leave_every_event_once(bq_clients, bq_dataset, events_table, pipeline, tmp_path):
    table_id, events = events_table(keys=30, per_key=12)
    source = BigQuerySource(table_id, FIELDS, bq_clients)
    sink = BigQuerySink(f"{bq_dataset}.scores", bq_clients)
    manifest = _ForgetfulManifest(tmp_path, lost=1)

    with pytest.raises(KeyboardInterrupt):
        run_backfill(source, _StopAfter(sink, at=3), pipeline, shards=4, run_id="resume", manifest=manifest, progress=False)
    assert set(manifest.done("resume")) == {0, 2}  # shard 1 was written, but its record was lost

    result = run_backfill(source, sink, pipeline, shards=4, run_id="resume", manifest=LocalManifest(tmp_path), progress=False)
    assert result.skipped == [0, 2] and result.processed == [1, 3]
    got = read_table(bq_clients, f"{bq_dataset}.scores")
    pairs = list(zip(got.column("key").to_pylist(), got.column("time").to_pylist()))
    assert len(pairs) == events.num_rows == len(set(pairs))
    assert set(pairs) == set(zip(events.column("host").to_pylist(), events.column("ts").to_pylist()))
    assert set(got.column("run_id").to_pylist()) == {"resume"}
    # Every shard done: the staging table is gone, a third run does nothing.
    assert {t.table_id for t in bq_clients.bq.list_tables(bq_dataset)} == {"events", "scores"}
    again = run_backfill(source, sink, pipeline, shards=4, run_id="resume", manifest=LocalManifest(tmp_path), progress=False)
    assert again.processed == [] and again.rows == 0


def streaming_scores(pipeline, events: pa.Table) -> dict[tuple[str, object], float]:
    """The streaming path: ``Pipeline.step`` one event at a time, in event-time order across keys,
    carrying each key's state between calls as the worker does."""
    order = np.argsort(np.array(events.column("ts").cast(pa.int64()).to_pylist()), kind="stable")
    ordered = events.take(pa.array(order))
    states: dict[str, bytes] = {}
    out = {}
    for i in range(ordered.num_rows):
        row = ordered.slice(i, 1)
        key = row.column("host")[0].as_py()
        res = pipeline.step(row, {key: states.get(key)})
        states.update(res.states)
        out[(key, row.column("ts")[0].as_py())] = res.scores.column("score")[0].as_py()
    return out


def test_backfill_scores_equal_streaming_scores(bq_clients, bq_dataset, events_table, pipeline, tmp_path):
    table_id, events = events_table(keys=6, per_key=40, seed=3)
    run_backfill(BigQuerySource(table_id, FIELDS, bq_clients), BigQuerySink(f"{bq_dataset}.scores", bq_clients),
                 pipeline, shards=3, run_id="parity", manifest=LocalManifest(tmp_path), progress=False)
    got = read_table(bq_clients, f"{bq_dataset}.scores")
    backfill = dict(zip(zip(got.column("key").to_pylist(), got.column("time").to_pylist()), got.column("score").to_pylist()))
    stream = streaming_scores(pipeline, events)
    assert backfill.keys() == stream.keys()
    keys = sorted(stream)
    a, b = np.array([backfill[k] for k in keys]), np.array([stream[k] for k in keys])
    assert np.ptp(b) > 0.01, "degenerate scores would make parity trivial"
    # float32 model core: the batched CfC path differs from the batch-1 path by ~1e-7
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)
    assert set(got.column("model_version").to_pylist()) == {pipeline.model_version}
