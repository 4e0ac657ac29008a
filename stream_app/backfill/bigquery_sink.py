"""Scores to a BigQuery table, one shard at a time, replacing the shard's rows on a retry.

Per shard: a load job puts the shard's rows into a staging table of their own (WRITE_TRUNCATE),
then one transaction deletes the target's rows of (run_id, shard) and inserts the staged rows,
then the staging table is dropped. Writing a shard twice leaves its rows once; a crash before
the commit leaves the previous state; a crash after it leaves the complete shard.

The target table has the scores columns plus ``run_id``, ``shard`` and ``model_version``; it is
created (clustered by run_id, shard so the per-shard DELETE touches little) when missing.
BigQuery runs concurrent DML on one table one at a time and may abort a transaction that
collides with another; those are retried with backoff.
"""

from __future__ import annotations

import io
import re
import time
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from stream_app.backfill.bigquery_clients import BigQueryClients
from stream_app.backfill.bigquery_names import NamedTable, quote, run_suffix
from stream_app.backfill.errors import SinkError
from stream_app.backfill.sink import RunInfo

META_COLUMNS = ("run_id", "shard", "model_version")
SCORE_COLUMNS = ("key", "time", "score", "threshold", "alert")
_SAFE_RUN_ID = re.compile(r"^[A-Za-z0-9_.\-]+$")


def _bq_type(arrow_type: pa.DataType, column: str) -> str:
    if pa.types.is_timestamp(arrow_type):
        return "TIMESTAMP"
    if pa.types.is_floating(arrow_type) or pa.types.is_decimal(arrow_type):
        return "FLOAT64"
    if pa.types.is_integer(arrow_type):
        return "INT64"
    if pa.types.is_boolean(arrow_type):
        return "BOOL"
    if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type):
        return "STRING"
    raise SinkError(f"scores column {column!r} has type {arrow_type}, which has no BigQuery column type here")


class BigQuerySink(NamedTable):
    needs_alerts = False

    def __init__(self, table: str, clients: BigQueryClients, retries: int = 5) -> None:
        self.clients = clients
        self._name_table(table, clients.project)
        self.retries = retries
        self._ready = False

    def spec(self) -> dict[str, Any]:
        return {"kind": "bigquery", "table": self.table_id, "retries": self.retries}

    def open(self, run: RunInfo) -> None:
        from google.api_core.exceptions import NotFound

        if not _SAFE_RUN_ID.match(run.run_id):
            raise SinkError(f"run id {run.run_id!r} may only hold letters, digits, '_', '.', '-'")
        try:
            self.clients.bq.get_dataset(f"{self.project}.{self.dataset}")
        except NotFound as exc:
            raise SinkError(f"BigQuery dataset {self.project}.{self.dataset} of the sink table not found") from exc
        try:
            existing = self.clients.bq.get_table(self.table_id)
        except NotFound:
            return  # created at the first write, when the key and time types are known
        names = {f.name for f in existing.schema}
        missing = [c for c in META_COLUMNS + SCORE_COLUMNS if c not in names]
        if missing:
            raise SinkError(
                f"BigQuery table {self.table_id} exists but has no column {', '.join(missing)}: "
                "it is not a backfill scores table; name a new table"
            )
        self._ready = True

    def _schema(self, rows: pa.Table) -> list[Any]:
        from google.cloud import bigquery

        return [bigquery.SchemaField(f.name, _bq_type(f.type, f.name)) for f in rows.schema]

    def _ensure_table(self, rows: pa.Table) -> None:
        from google.api_core.exceptions import Conflict
        from google.cloud import bigquery

        if self._ready:
            return
        table = bigquery.Table(self.table_id, schema=self._schema(rows))
        table.clustering_fields = ["run_id", "shard"]
        try:
            self.clients.bq.create_table(table)
        except Conflict:
            pass  # another worker created it first
        self._ready = True

    def _rows(self, run: RunInfo, shard: int, scores: pa.Table) -> pa.Table:
        missing = [c for c in SCORE_COLUMNS if c not in scores.column_names]
        if missing:
            raise SinkError(f"the pipeline's scores have no column {', '.join(missing)}")
        n = scores.num_rows
        meta = pa.table({
            "run_id": pa.array([run.run_id] * n, pa.string()),
            "shard": pa.array([shard] * n, pa.int64()),
            "model_version": pa.array([run.model_version] * n, pa.string()),
        })
        cols = {name: meta.column(name) for name in META_COLUMNS}
        cols.update({name: scores.column(name) for name in SCORE_COLUMNS})
        return pa.table(cols)

    def write_shard(self, run: RunInfo, shard: int, scores: pa.Table, alerts: list[dict]) -> None:
        from google.api_core.exceptions import GoogleAPICallError
        from google.cloud import bigquery

        rows = self._rows(run, shard, scores)
        self._ensure_table(rows)
        stage = f"{self.project}.{self.dataset}.{self.table}__ember_{run_suffix(run.run_id)}_{shard:05d}"
        columns = ", ".join(quote(c) for c in rows.column_names)
        statements = [f"DELETE FROM {quote(self.table_id)} WHERE run_id = '{run.run_id}' AND shard = {int(shard)}"]
        try:
            if rows.num_rows:
                buf = io.BytesIO()
                pq.write_table(rows, buf)
                buf.seek(0)
                self.clients.bq.load_table_from_file(
                    buf, stage,
                    job_config=bigquery.LoadJobConfig(
                        source_format="PARQUET", schema=self._schema(rows),
                        write_disposition="WRITE_TRUNCATE", create_disposition="CREATE_IF_NEEDED",
                    ),
                ).result()  # fmt: skip
                statements.append(f"INSERT INTO {quote(self.table_id)} ({columns}) SELECT {columns} FROM {quote(stage)}")
            script = "BEGIN TRANSACTION;\n" + ";\n".join(statements) + ";\nCOMMIT TRANSACTION;"
            self._run_with_retry(script, shard)
        except GoogleAPICallError as exc:
            raise SinkError(f"writing shard {shard} to BigQuery table {self.table_id}: {exc.message}") from exc
        finally:
            try:
                self.clients.bq.delete_table(stage, not_found_ok=True)
            except GoogleAPICallError:
                pass  # the staging table is harmless; the next write of the shard truncates it

    def _run_with_retry(self, script: str, shard: int) -> None:
        from google.api_core.exceptions import BadRequest, Conflict

        delay = 1.0
        for attempt in range(self.retries + 1):
            try:
                self.clients.bq.query(script).result()
                return
            except (Conflict, BadRequest) as exc:
                collided = "concurrent" in str(exc).lower() or isinstance(exc, Conflict)
                if not collided or attempt == self.retries:
                    raise
                time.sleep(delay)
                delay = min(delay * 2, 30.0)

    def close(self) -> None:
        pass
