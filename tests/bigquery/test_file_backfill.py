"""Files → pipeline → Parquet: the embedded default path (no emulator needed)."""

from __future__ import annotations

import os
from collections import Counter

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from stream_app.backfill import EventFields, FileSource, LocalManifest, ParquetSink, SinkError, SourceError, TimeRange, run_backfill
from stream_app.backfill.shards import ShardKeys, key_shard
from stream_app.backfill.sink import RunInfo

FIELDS = EventFields(key_field="host", time_field="ts", value_fields=("cpu",))


def write_parts(table: pa.Table, directory, parts: int = 3) -> None:
    os.makedirs(directory, exist_ok=True)
    step = -(-table.num_rows // parts)
    for i in range(parts):
        pq.write_table(table.slice(i * step, step), os.path.join(directory, f"events-{i}.parquet"))


def test_file_shards_hold_every_row_once_sorted_and_in_range(tmp_path, arrow_events, grouped_in_time_order):
    events = arrow_events(50, 30, seed=1)
    write_parts(events, tmp_path / "in")
    source = FileSource(tmp_path / "in", FIELDS, staging_dir=tmp_path / "stage", batch_rows=100, flush_rows=40)
    times = sorted(events.column("ts").to_pylist())
    tr = TimeRange.of(times[10], times[-10])
    plan = source.prepare("files", 4, tr)
    got = Counter()
    owner: dict[str, int] = {}
    for i in range(4):
        shard = source.read_shard(plan, i)
        grouped_in_time_order(shard.column("host").to_pylist(), shard.column("ts").to_pylist(), f"shard {i}")
        got.update(zip(*(shard.column(c).to_pylist() for c in ("host", "ts", "cpu"))))
        for k in set(shard.column("host").to_pylist()):
            assert owner.setdefault(k, i) == i
            assert key_shard(k, 4) == i
    want = Counter(r for r in zip(*(events.column(c).to_pylist() for c in ("host", "ts", "cpu")))
                   if times[10] <= r[1] < times[-10])
    assert got == want and sum(got.values()) == events.num_rows - 20
    assert source.prepare("files", 4, tr).details["reused"] is True


def test_shard_function_is_stable_and_spreads_keys():
    keys = pc.dictionary_encode(pa.array([f"user-{i}" for i in range(4000)]))
    ids, codes = ShardKeys(8).rows(keys)
    assert np.array_equal(ids, ShardKeys(8).rows(keys)[0])  # no per-process salt
    assert key_shard("user-0", 8) == ids[0]
    counts = np.bincount(ids, minlength=8)
    assert counts.min() > 400 and counts.max() < 600
    for s in range(8):  # codes number each shard's keys 0, 1, 2, ... in first-appearance order
        assert codes[ids == s].tolist() == list(range(counts[s]))
    assert ShardKeys(8).rows(pc.dictionary_encode(pa.array([17, 17])))[0].tolist() == [key_shard("17", 8)] * 2
    later = ShardKeys(8)  # a key seen again in a later batch (another dictionary) keeps its code
    later.rows(pc.dictionary_encode(pa.array(["a", "b", "c"])))
    again = later.rows(pc.dictionary_encode(pa.array(["c", "a", "zz"])))
    first = later.rows(pc.dictionary_encode(pa.array(["a", "b", "c", "zz"])))
    assert again[1].tolist() == [first[1][2], first[1][0], first[1][3]]


def test_grouped_order_with_more_keys_than_16_bits(grouped_in_time_order):
    from stream_app.backfill.shards import grouped_order

    rng = np.random.default_rng(5)
    codes = rng.integers(0, 200_000, 300_000).astype(np.int32)
    times = rng.integers(0, 50, codes.shape[0]).astype(float)
    order = grouped_order(codes, 200_000, times)
    assert np.array_equal(order, np.lexsort((times, codes)))  # stable: ties keep input order
    assert grouped_order(np.sort(codes), 200_000, np.zeros(codes.shape[0])) is None
    grouped = np.sort(codes)  # grouped already, but times fall within keys: a full sort
    assert np.array_equal(grouped_order(grouped, 200_000, times), np.lexsort((times, grouped)))


def test_csv_source_and_wrong_types(tmp_path, arrow_events):
    events = arrow_events(5, 10)
    pacsv.write_csv(events, tmp_path / "events.csv")
    source = FileSource(tmp_path / "events.csv", FIELDS)
    plan = source.prepare("csv", 1, TimeRange())
    assert source.read_shard(plan, 0).num_rows == 50
    bad = events.set_column(2, "cpu", pa.array(["x"] * events.num_rows))
    pq.write_table(bad, tmp_path / "bad.parquet")
    with pytest.raises(SourceError, match=r"column 'cpu' of parquet files at .*bad.parquet has type string"):
        FileSource(tmp_path / "bad.parquet", FIELDS).check()
    with pytest.raises(SourceError, match=r"has no column 'mem'"):
        FileSource(tmp_path / "bad.parquet", EventFields("host", "ts", ("mem",))).check()
    with pytest.raises(SourceError, match="do not exist"):
        FileSource(tmp_path / "missing", FIELDS)


def test_parquet_sink_replaces_a_retried_shard_and_refuses_mixed_shard_counts(tmp_path):
    sink = ParquetSink(tmp_path / "out")
    run = RunInfo("r", 2, "v")
    sink.open(run)
    t = pa.table({"key": ["a", "b"], "time": [1.0, 2.0], "score": [0.1, 0.2], "threshold": [0.5, 0.5], "alert": [False, False]})
    sink.write_shard(run, 0, t, [])
    sink.write_shard(run, 0, t.slice(0, 1), [])
    assert pq.read_table(tmp_path / "out").num_rows == 1
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["part-00000-of-00002.parquet"]
    with pytest.raises(SinkError, match="2-shard backfill"):
        ParquetSink(tmp_path / "out").open(RunInfo("r", 3, "v"))


def test_local_file_backfill_resumes_and_matches_one_pass_scoring(tmp_path, arrow_events, pipeline):
    events = arrow_events(20, 25, seed=2)
    write_parts(events, tmp_path / "in")
    source = FileSource(tmp_path / "in", FIELDS, staging_dir=tmp_path / "stage")
    sink = ParquetSink(tmp_path / "out")
    manifest = LocalManifest(tmp_path / "state")

    class StopAt(ParquetSink):
        def write_shard(self, run, shard, scores, alerts):
            if shard == 2:
                raise KeyboardInterrupt
            super().write_shard(run, shard, scores, alerts)

    with pytest.raises(KeyboardInterrupt):
        run_backfill(source, StopAt(tmp_path / "out"), pipeline, shards=3, manifest=manifest, progress=False)
    result = run_backfill(source, sink, pipeline, shards=3, manifest=manifest, progress=False)
    assert result.skipped == [0, 1] and result.processed == [2]
    out = pq.read_table(tmp_path / "out")
    assert out.num_rows == events.num_rows
    whole = pipeline.score(events.sort_by([("host", "ascending"), ("ts", "ascending")]))
    want = dict(zip(zip(whole.column("key").to_pylist(), whole.column("time").to_pylist()), whole.column("score").to_pylist()))
    got = dict(zip(zip(out.column("key").to_pylist(), out.column("time").to_pylist()), out.column("score").to_pylist()))
    assert got.keys() == want.keys()
    np.testing.assert_allclose([got[k] for k in want], list(want.values()), rtol=0, atol=1e-6)
    assert not (tmp_path / "stage" / result.run_id).exists()  # staging removed when all shards are done


def test_sort_groups_keys_and_orders_time_even_when_shuffled(grouped_in_time_order):
    from stream_app.backfill.shards import sort_by_key_time

    rng = np.random.default_rng(4)
    n = 5000
    keys = [f"k{i}" for i in rng.integers(0, 70, n)]
    times = rng.integers(0, 300, n).astype(float)  # many ties: the sort must be stable
    table = pa.table({"k": keys, "t": times, "row": np.arange(n)})
    out = sort_by_key_time(table, "k", "t")
    grouped_in_time_order(out.column("k").to_pylist(), out.column("t").to_pylist())
    assert sorted(out.column("row").to_pylist()) == list(range(n))
    rows = list(zip(*(out.column(c).to_pylist() for c in ("k", "t", "row"))))
    assert all(a[2] < b[2] for a, b in zip(rows, rows[1:]) if a[0] == b[0] and a[1] == b[1])  # ties keep input order
    in_order = table.sort_by([("t", "ascending")])  # already time-ordered: no full sort needed
    grouped_in_time_order(*(sort_by_key_time(in_order, "k", "t").column(c).to_pylist() for c in ("k", "t")))


def test_numeric_times_in_milliseconds_reach_the_pipeline_as_utc_timestamps(tmp_path):
    ms = pa.table({"host": ["a", "a", "b", "b"], "ts": pa.array([1_000, 2_500, 1_500, 9_000], pa.int64()), "cpu": [1.0, 2.0, 3.0, 4.0]})
    pq.write_table(ms, tmp_path / "ms.parquet")
    fields = EventFields("host", "ts", ("cpu",), time_unit="ms")
    source = FileSource(tmp_path / "ms.parquet", fields)
    plan = source.prepare("ms", 1, TimeRange.of(1.2, 9.0))  # seconds: keeps 1.5 s and 2.5 s
    got = source.read_shard(plan, 0)
    # a timestamp, not float seconds: the model reads a numeric time in time_unit (ms here)
    assert got.schema.field("ts").type == pa.timestamp("us", "UTC")
    assert sorted(got.column("ts").cast(pa.int64()).to_pylist()) == [1_500_000, 2_500_000]


def test_a_shard_scored_in_key_blocks_gives_the_one_call_scores(arrow_events, pipeline):
    from stream_app.backfill.shard_task import key_blocks, score_table

    events = arrow_events(9, 40, seed=6).sort_by([("host", "ascending"), ("ts", "ascending")])
    as_dict = events.set_column(0, "host", pc.dictionary_encode(events.column("host")))
    for table in (events, as_dict):
        blocks = key_blocks(table, "host", 4)
        assert [len(set(table.column("host").slice(lo, hi - lo).to_pylist())) for lo, hi in blocks] == [4, 4, 1]
        assert blocks[0][0] == 0 and blocks[-1][1] == table.num_rows
        assert all(a[1] == b[0] for a, b in zip(blocks, blocks[1:]))
        whole, _ = score_table(pipeline, table, False, 0, keys_per_step=None)
        parts, _ = score_table(pipeline, table, False, 0, keys_per_step=4)
        assert parts.column("key").to_pylist() == whole.column("key").to_pylist()
        np.testing.assert_allclose(parts.column("score").to_numpy(), whole.column("score").to_numpy(), rtol=0, atol=1e-6)
        assert parts.column("alert").to_pylist() == whole.column("alert").to_pylist()
    assert key_blocks(events, "host", 9) == [(0, events.num_rows)]


def test_staging_holds_a_bounded_number_of_input_batches(tmp_path):
    from stream_app.backfill.staging import ShardStager, read_staged_shard

    stager = ShardStager(tmp_path, 50, "host", flush_rows=10_000, max_held_batches=4)
    rng = np.random.default_rng(7)
    for b in range(30):  # 100 rows per batch over ~50 shards: no shard reaches flush_rows
        keys = pc.dictionary_encode(pa.array([f"k{i}" for i in rng.integers(0, 400, 100)]))
        stager.write(pa.record_batch({"host": keys, "ts": pa.array(np.full(100, float(b)))}))
        assert sum(len(p) for p in stager._pending) <= 4 * 50  # slices of at most 4 held batches
    rows = stager.finish()
    assert sum(rows) == 3000
    schema = stager.schema
    shards = [read_staged_shard(tmp_path, i, schema, "host", "ts") for i in range(50)]
    assert sum(t.num_rows for t in shards) == 3000
