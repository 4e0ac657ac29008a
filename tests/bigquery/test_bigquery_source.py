"""BigQuerySource against the emulator: one staging query, one Storage Read session per shard."""

from __future__ import annotations

from collections import Counter
from datetime import datetime

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from stream_app.backfill import BigQuerySource, EventFields, SourceError, TimeRange
from stream_app.backfill.errors import SessionExpiredError
from stream_app.backfill.shard_task import read_with_retry

FIELDS = EventFields(key_field="host", time_field="ts", value_fields=("cpu",))


def rows_of(table: pa.Table) -> Counter:
    t = table.select(["host", "ts", "cpu"])
    return Counter(zip(t.column("host").to_pylist(), t.column("ts").to_pylist(), t.column("cpu").to_pylist()))


def in_range(table: pa.Table, since: datetime, until: datetime) -> pa.Table:
    ts = table.column("ts")
    mask = pc.and_(pc.greater_equal(ts, pa.scalar(since, pa.timestamp("us", tz="UTC"))),
                   pc.less(ts, pa.scalar(until, pa.timestamp("us", tz="UTC"))))
    return table.filter(mask)


def test_sharded_read_gives_every_row_once_in_key_time_order(bq_clients, events_table, grouped_in_time_order):
    table_id, events = events_table(keys=40, per_key=30)
    source = BigQuerySource(table_id, FIELDS, bq_clients)
    times = sorted(events.column("ts").to_pylist())
    since, until = times[100], times[-100]  # cut both ends: since is kept, until is not
    plan = source.prepare("read-test", 5, TimeRange.of(since, until))

    shards = [source.read_shard(plan, i) for i in range(5)]
    seen = Counter()
    key_shard: dict[str, int] = {}
    for i, shard in enumerate(shards):
        seen += rows_of(shard)
        keys, ts = shard.column("host").to_pylist(), shard.column("ts").to_pylist()
        grouped_in_time_order(keys, ts, f"shard {i}")
        for k in set(keys):
            assert key_shard.setdefault(k, i) == i, f"key {k} is in shards {key_shard[k]} and {i}"
    expected = rows_of(in_range(events, since, until))
    assert seen == expected
    assert sum(expected.values()) == len(times) - 200
    assert sum(1 for s in shards if s.num_rows) >= 3  # the hash spreads 40 keys over the shards

    # The shard is BigQuery's FARM_FINGERPRINT shard, computed here independently.
    some_key = shards[0].column("host")[0].as_py() if shards[0].num_rows else shards[1].column("host")[0].as_py()
    row = next(iter(bq_clients.bq.query(f"SELECT MOD(ABS(FARM_FINGERPRINT('{some_key}')), 5) AS s").result()))
    assert key_shard[some_key] == row["s"]


def test_prepare_again_reuses_the_staging_table(bq_clients, events_table):
    table_id, _ = events_table(keys=10, per_key=10)
    source = BigQuerySource(table_id, FIELDS, bq_clients)
    first = source.prepare("reuse", 3, TimeRange())
    again = source.prepare("reuse", 3, TimeRange())
    assert first.details["reused"] is False and again.details["reused"] is True
    other = source.prepare("reuse", 4, TimeRange())  # another shard count is another query
    assert other.details["reused"] is False
    assert sum(source.read_shard(other, i).num_rows for i in range(4)) == 100
    source.cleanup(other)
    with pytest.raises(SourceError, match="staging table .* is gone"):
        source.read_shard(other, 0)


def test_dry_run_reports_bytes_and_runs_nothing(bq_clients, events_table):
    table_id, events = events_table(keys=20, per_key=50)
    source = BigQuerySource(table_id, FIELDS, bq_clients)
    times = sorted(events.column("ts").to_pylist())
    narrow = source.dry_run(4, TimeRange.of(times[0], times[len(times) // 4]), run_id="dry")
    wide = source.dry_run(4, TimeRange(), run_id="dry")
    assert narrow.shards == 4 and narrow.rows == 1000
    assert 0 < narrow.bytes_scanned < wide.bytes_scanned
    assert wide.query_cost_usd > 0 and wide.read_cost_usd > 0
    assert "FARM_FINGERPRINT" in wide.staging_sql and "CLUSTER BY" in wide.staging_sql
    assert str(wide.bytes_scanned) in wide.render()
    from google.api_core.exceptions import NotFound

    with pytest.raises(NotFound):
        bq_clients.bq.get_table(source.staging_table_id("dry"))


def test_missing_table_column_and_wrong_type_are_named(bq_clients, bq_dataset, events_table, load_table):
    from google.cloud import bigquery

    with pytest.raises(SourceError, match=rf"{bq_dataset}\.nope not found"):
        BigQuerySource(f"{bq_dataset}.nope", FIELDS, bq_clients).check()

    table_id, _ = events_table(keys=3, per_key=3)
    with pytest.raises(SourceError, match=r"has no column 'mem'"):
        BigQuerySource(table_id, EventFields("host", "ts", ("cpu", "mem")), bq_clients).prepare("x", 2, TimeRange())

    wrong = pa.table({"host": ["a", "b"], "ts": pa.array([1, 2], pa.int64()).cast(pa.timestamp("us", tz="UTC")),
                      "cpu": ["high", "low"]})
    wrong_id = load_table(f"{bq_dataset}.wrong", wrong, [bigquery.SchemaField("host", "STRING"),
                          bigquery.SchemaField("ts", "TIMESTAMP"), bigquery.SchemaField("cpu", "STRING")])
    with pytest.raises(SourceError, match=r"column 'cpu' .* has type STRING; the value column must be one of"):
        BigQuerySource(wrong_id, FIELDS, bq_clients).prepare("x", 2, TimeRange())
    # Nothing was staged for either failed run.
    tables = {t.table_id for t in bq_clients.bq.list_tables(bq_dataset)}
    assert tables == {"events", "wrong"}


def test_integer_keys_numeric_time_and_numeric_values(bq_clients, bq_dataset, load_table):
    from google.cloud import bigquery
    import decimal

    n = 60
    table = pa.table({
        "device": pa.array([i % 7 for i in range(n)], pa.int64()),
        "t": pa.array([1000.0 + i for i in range(n)], pa.float64()),
        "amount": pa.array([decimal.Decimal(f"{i}.25") for i in range(n)], pa.decimal128(38, 9)),
    })
    table_id = load_table(f"{bq_dataset}.ints", table, [bigquery.SchemaField("device", "INT64"),
                          bigquery.SchemaField("t", "FLOAT64"), bigquery.SchemaField("amount", "NUMERIC")])
    source = BigQuerySource(table_id, EventFields("device", "t", ("amount",)), bq_clients)
    plan = source.prepare("ints", 3, TimeRange.of(1010.0, 1050.0))
    got = pa.concat_tables([source.read_shard(plan, i) for i in range(3)])
    assert got.num_rows == 40
    assert got.schema.field("amount").type == pa.float64()
    assert sorted(got.column("t").to_pylist()) == [1010.0 + i for i in range(40)]
    assert sorted(got.column("amount").to_pylist()) == [10.25 + i for i in range(40)]


class _ExpiringReadClient:
    """The real read client, except that the first ``expire`` ReadRows calls name a stream of a
    session the server does not have (as after a session expired): the server answers for real."""

    def __init__(self, real, expire: int):
        self.real, self.expire, self.calls = real, expire, 0

    def create_read_session(self, *args, **kwargs):
        return self.real.create_read_session(*args, **kwargs)

    def read_rows(self, name, *args, **kwargs):
        self.calls += 1
        if self.calls <= self.expire:
            session, _, stream = name.rpartition("/streams/")
            name = f"{session}expired/streams/{stream}"
        return self.real.read_rows(name, *args, **kwargs)


def test_expired_session_retries_the_shard_and_loses_nothing(bq_clients, events_table):
    from stream_app.backfill.bigquery_clients import BigQueryClients

    table_id, events = events_table(keys=12, per_key=20)
    plain = BigQuerySource(table_id, FIELDS, bq_clients)
    plan = plain.prepare("expiry", 2, TimeRange())
    expected = [plain.read_shard(plan, i) for i in range(2)]

    flaky = _ExpiringReadClient(bq_clients.read, expire=1)
    source = BigQuerySource(table_id, FIELDS, BigQueryClients(bq_clients.bq, flaky, bq_clients.project))
    with pytest.raises(SessionExpiredError, match="shard 0"):
        source.read_shard(plan, 0)
    flaky.calls = 0
    table, attempts = read_with_retry(source, plan, 0, retries=2)
    assert attempts == 2
    assert table.equals(expected[0])
    flaky.calls, flaky.expire = 0, 5
    with pytest.raises(SessionExpiredError):
        read_with_retry(source, plan, 1, retries=2)
