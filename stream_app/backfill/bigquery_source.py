"""Read a BigQuery table for a backfill: one staging query, then one Storage Read session per shard.

Why this shape (and never LIMIT/OFFSET paging, never a query per shard):

- On-demand BigQuery bills the bytes a query scans. One ``CREATE OR REPLACE TABLE … AS
  SELECT key, time, values, <shard> FROM source WHERE time in range`` scans the source once;
  N queries with ``WHERE shard = i`` would bill the whole table N times.
- The staging table is clustered by (shard, key), so on BigQuery a ``shard = i`` read session
  touches only that shard's blocks; the Storage Read API streams Arrow record batches.
- The Storage Read API promises no row order, so the worker sorts each shard by (key, time).
- A read session expires (6 h on BigQuery): an expired session or an unknown stream raises
  :class:`SessionExpiredError`, and the runner reads the shard again with a fresh session.

The staging table lives next to the source (or in ``staging_dataset``), is named after the run
and expires after ``staging_hours``; resuming a run reuses it (no second scan) when its
description still carries the same query fingerprint.
"""

from __future__ import annotations

import hashlib
from typing import Any

import pyarrow as pa

from stream_app.backfill.bigquery_clients import BigQueryClients
from stream_app.backfill.bigquery_names import NamedTable, quote, run_suffix
from stream_app.backfill.estimate import DryRunReport, query_cost, read_cost, scoring_seconds
from stream_app.backfill.errors import SessionExpiredError, SourceError
from stream_app.backfill.fields import check_bigquery_schema
from stream_app.backfill.shards import SHARD_COLUMN, bigquery_shard_expression, sort_by_key_time
from stream_app.backfill.source import ScanPlan
from stream_app.backfill.timerange import TimeRange
from stream_app.event_fields import EventFields


class BigQuerySource(NamedTable):
    def __init__(
        self,
        table: str,
        fields: EventFields,
        clients: BigQueryClients,
        staging_dataset: str | None = None,
        staging_hours: int = 24,
        max_read_streams: int = 1,
    ) -> None:
        self.clients = clients
        self._name_table(table, clients.project)
        self.fields = fields
        self.staging_dataset = staging_dataset or self.dataset
        self.staging_hours = int(staging_hours)
        self.max_read_streams = int(max_read_streams)
        self._types: dict[str, str] | None = None

    def spec(self) -> dict[str, Any]:
        return {"kind": "bigquery", "table": self.table_id, "fields": self.fields.to_dict(),
                "staging_dataset": self.staging_dataset, "staging_hours": self.staging_hours,
                "max_read_streams": self.max_read_streams}

    # -- checks ----------------------------------------------------------------------------

    def _get_table(self) -> Any:
        from google.api_core.exceptions import Forbidden, NotFound

        try:
            return self.clients.bq.get_table(self.table_id)
        except NotFound as exc:
            raise SourceError(f"BigQuery table {self.table_id} not found ({exc.message})") from exc
        except Forbidden as exc:
            raise SourceError(
                f"no permission to read BigQuery table {self.table_id} "
                f"(needs bigquery.tables.get / getData): {exc.message}"
            ) from exc

    def check(self) -> dict[str, str]:
        if self._types is None:
            table = self._get_table()
            self._types = check_bigquery_schema(self.fields, table.schema, f"BigQuery table {self.table_id}")
        return self._types

    # -- SQL -------------------------------------------------------------------------------

    def _select(self, shards: int, time_range: TimeRange) -> tuple[str, list[Any]]:
        from google.cloud import bigquery

        types = self.check()
        f = self.fields
        key, time = quote(f.key_field), quote(f.time_field)
        time_expr = {"DATETIME": f"TIMESTAMP({time})", "NUMERIC": f"CAST({time} AS FLOAT64)"}.get(types[f.time_field], time)
        cols = [key, f"{time_expr} AS {time}"]
        for v in (*f.value_fields, *f.categorical_fields):
            cast = types[v] in ("NUMERIC", "BIGNUMERIC")
            cols.append(f"CAST({quote(v)} AS FLOAT64) AS {quote(v)}" if cast else quote(v))
        cols.append(f"{bigquery_shard_expression(key, types[f.key_field], shards)} AS {SHARD_COLUMN}")
        where, params = [], []
        for name, value, op in (("since", time_range.since, ">="), ("until", time_range.until, "<")):
            if value is None:
                continue
            where.append(f"{time} {op} @{name}")
            if types[f.time_field] == "TIMESTAMP":
                params.append(bigquery.ScalarQueryParameter(name, "TIMESTAMP", value))
            elif types[f.time_field] == "DATETIME":
                params.append(bigquery.ScalarQueryParameter(name, "DATETIME", value.replace(tzinfo=None)))
            else:
                params.append(bigquery.ScalarQueryParameter(name, "FLOAT64", f.numeric_time(value)))
        sql = f"SELECT {', '.join(cols)}\nFROM {quote(self.table_id)}"
        if where:
            sql += "\nWHERE " + " AND ".join(where)
        return sql, params

    def staging_table_id(self, run_id: str) -> str:
        return f"{self.project}.{self.staging_dataset}.ember_backfill_{run_suffix(run_id)}"

    def staging_sql(self, run_id: str, shards: int, time_range: TimeRange) -> tuple[str, list[Any], str]:
        select, params = self._select(shards, time_range)
        # BigQuery clusters on STRING and INT64 but not on BYTES keys.
        cluster = [SHARD_COLUMN] + ([quote(self.fields.key_field)] if self.check()[self.fields.key_field] != "BYTES" else [])
        fingerprint = hashlib.sha256(
            (select + repr([(p.name, str(p.value)) for p in params])).encode()
        ).hexdigest()[:16]
        sql = (
            f"CREATE OR REPLACE TABLE {quote(self.staging_table_id(run_id))}\n"
            f"CLUSTER BY {', '.join(cluster)}\n"
            f"OPTIONS (expiration_timestamp = TIMESTAMP_ADD(CURRENT_TIMESTAMP(), INTERVAL {self.staging_hours} HOUR),\n"
            f"         description = 'ember backfill staging {fingerprint}')\n"
            f"AS {select}"
        )
        return sql, params, fingerprint

    # -- dry run ---------------------------------------------------------------------------

    def dry_run(self, shards: int, time_range: TimeRange, workers: int = 1, run_id: str = "RUN") -> DryRunReport:
        from google.cloud import bigquery

        table = self._get_table()
        self.check()
        select, params = self._select(shards, time_range)
        job = self.clients.bq.query(
            select, job_config=bigquery.QueryJobConfig(dry_run=True, use_query_cache=False, query_parameters=params)
        )
        scanned = int(job.total_bytes_processed or 0)
        basis = "BigQuery dry-run job"
        if scanned == 0 and (table.num_rows or 0) > 0:
            # Only an emulator answers 0 for a non-empty table (it has no cost model): fall back
            # to the size the Storage Read API estimates for the same columns and rows.
            scanned = self._read_session_estimate(time_range)
            basis = "read-session estimate (the service's dry run reported 0 bytes)"
        sql, _, _ = self.staging_sql(run_id, shards, time_range)
        return DryRunReport(
            source=self.describe(), shards=shards, time_range=time_range.describe(),
            bytes_scanned=scanned, bytes_basis=basis, rows=table.num_rows,
            query_cost_usd=query_cost(scanned), read_cost_usd=read_cost(scanned),
            est_seconds=scoring_seconds(table.num_rows, workers), workers=workers,
            staging=self.staging_table_id(run_id), staging_sql=sql,
        )

    def _time_restriction(self, time_range: TimeRange) -> str:
        """The time range as a Storage Read ``row_restriction`` on the source table."""
        types = self.check()
        kind = types[self.fields.time_field]
        time = quote(self.fields.time_field)
        parts = []
        for value, op in ((time_range.since, ">="), (time_range.until, "<")):
            if value is None:
                continue
            if kind in ("TIMESTAMP", "DATETIME"):
                parts.append(f"{time} {op} {kind} '{value.strftime('%Y-%m-%d %H:%M:%S.%f')}'")
            else:
                parts.append(f"{time} {op} {self.fields.numeric_time(value)!r}")
        return " AND ".join(parts)

    def _source_session(self, time_range: TimeRange, streams: int) -> Any:
        from google.api_core.exceptions import NotFound
        from google.cloud.bigquery_storage_v1 import types as st

        try:
            return self.clients.read.create_read_session(
                parent=f"projects/{self.clients.project}",
                read_session=st.ReadSession(
                    table=f"projects/{self.project}/datasets/{self.dataset}/tables/{self.table}",
                    data_format=st.DataFormat.ARROW,
                    read_options=st.ReadSession.TableReadOptions(
                        selected_fields=list(self.fields.columns), row_restriction=self._time_restriction(time_range)
                    ),
                ),
                max_stream_count=streams,
            )
        except NotFound as exc:
            raise SourceError(f"BigQuery table {self.table_id} not found ({exc.message})") from exc

    def _read_session_estimate(self, time_range: TimeRange) -> int:
        return int(self._source_session(time_range, 1).estimated_total_bytes_scanned or 0)

    def read_range(self, time_range: TimeRange) -> pa.Table:
        """Every event of the range in one table, sorted by (key, time), read straight from the
        source table through the Storage Read API (no query: billed as Storage Read bytes only).
        For training, where all of it is needed in one process anyway."""
        from google.api_core.exceptions import FailedPrecondition, NotFound

        self.check()
        session = self._source_session(time_range, self.max_read_streams)
        try:
            table = self._read_session(session)
        except (NotFound, FailedPrecondition) as exc:
            raise SessionExpiredError(f"read session {session.name} of {self.table_id} ended: {exc.message}") from exc
        table = _numeric_as_float(table.select(list(self.fields.columns)))
        return self.fields.time_in_seconds(sort_by_key_time(table, self.fields.key_field, self.fields.time_field))

    def _read_session(self, session: Any) -> pa.Table:
        # Decode the Arrow IPC messages directly (the client's own to_arrow() helpers are
        # deprecated); the stream object still resumes at the right offset on transient errors.
        schema = pa.ipc.read_schema(pa.py_buffer(session.arrow_schema.serialized_schema))
        batches: list[pa.RecordBatch] = []
        for stream in session.streams:
            for response in self.clients.read.read_rows(stream.name):
                payload = response.arrow_record_batch.serialized_record_batch
                if payload:
                    batches.append(pa.ipc.read_record_batch(pa.py_buffer(payload), schema))
        return pa.Table.from_batches(batches, schema=schema)

    # -- scan once, read per shard ---------------------------------------------------------

    def prepare(self, run_id: str, shards: int, time_range: TimeRange) -> ScanPlan:
        from google.api_core.exceptions import GoogleAPICallError, NotFound
        from google.cloud import bigquery

        sql, params, fingerprint = self.staging_sql(run_id, shards, time_range)
        staging = self.staging_table_id(run_id)
        plan = ScanPlan(run_id, shards, time_range, staging, {"fingerprint": fingerprint})
        try:
            existing = self.clients.bq.get_table(staging)
        except NotFound:
            existing = None
        if existing is not None and fingerprint in (existing.description or ""):
            plan.details["reused"] = True
            return plan
        try:
            job = self.clients.bq.query(sql, job_config=bigquery.QueryJobConfig(query_parameters=params))
            job.result()
        except GoogleAPICallError as exc:
            raise SourceError(f"staging query for {self.table_id} into {staging} failed: {exc.message}") from exc
        plan.details.update(reused=False, bytes_processed=job.total_bytes_processed, job_id=job.job_id)
        return plan

    def read_shard(self, plan: ScanPlan, shard: int) -> pa.Table:
        from google.api_core.exceptions import FailedPrecondition, NotFound
        from google.cloud.bigquery_storage_v1 import types as st

        if not 0 <= shard < plan.shards:
            raise ValueError(f"shard {shard} is outside 0..{plan.shards - 1}")
        project, dataset, table = plan.staging.split(".")
        try:
            session = self.clients.read.create_read_session(
                parent=f"projects/{self.clients.project}",
                read_session=st.ReadSession(
                    table=f"projects/{project}/datasets/{dataset}/tables/{table}",
                    data_format=st.DataFormat.ARROW,
                    read_options=st.ReadSession.TableReadOptions(
                        selected_fields=list(self.fields.columns), row_restriction=f"{SHARD_COLUMN} = {int(shard)}"
                    ),
                ),
                max_stream_count=self.max_read_streams,
            )
        except NotFound as exc:
            raise SourceError(
                f"staging table {plan.staging} of run {plan.run_id} is gone (expired after "
                f"{self.staging_hours} h?); run the backfill again to restage it: {exc.message}"
            ) from exc
        try:
            result = self._read_session(session)
        except (NotFound, FailedPrecondition) as exc:
            raise SessionExpiredError(
                f"read session {session.name} for shard {shard} of {plan.staging} ended: {exc.message}"
            ) from exc
        result = result.select(list(self.fields.columns))
        return self.fields.time_in_seconds(sort_by_key_time(result, self.fields.key_field, self.fields.time_field))

    def cleanup(self, plan: ScanPlan) -> None:
        if plan.staging:
            self.clients.bq.delete_table(plan.staging, not_found_ok=True)


def _numeric_as_float(table: pa.Table) -> pa.Table:
    """NUMERIC / BIGNUMERIC columns (Arrow decimals) as float64, what the pipeline reads."""
    for i, f in enumerate(table.schema):
        if pa.types.is_decimal(f.type):
            table = table.set_column(i, f.name, table.column(i).cast(pa.float64()))
    return table
