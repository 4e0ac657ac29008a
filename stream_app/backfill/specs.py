"""Sources and sinks from command-line URIs, and again from the specs carried in shard tasks.

Sources::

    bigquery://PROJECT/DATASET/TABLE     (or bq://, or bigquery:PROJECT.DATASET.TABLE;
                                         bigquery://DATASET/TABLE uses the client's project)
    path/to/file.parquet | path/to/dir   Parquet or CSV, detected by suffix (parquet:/csv: prefixes force one)

Sinks::

    bigquery://PROJECT/DATASET/TABLE     a scores table (created when missing)
    parquet:path/to/dir | path/to/dir    one Parquet file per shard
    alerts | alerts:TOPIC | kafka://HOST:PORT/TOPIC    the alerts topic (default: the worker settings')
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from stream_app.backfill.alerts_sink import AlertsSink
from stream_app.backfill.bigquery_clients import BigQueryClients
from stream_app.backfill.bigquery_sink import BigQuerySink
from stream_app.backfill.bigquery_source import BigQuerySource
from stream_app.backfill.file_source import FileSource
from stream_app.backfill.parquet_sink import ParquetSink
from stream_app.event_fields import EventFields

ClientsFactory = Callable[[], BigQueryClients]


def _bigquery_table(uri: str) -> str | None:
    for prefix in ("bigquery://", "bq://"):
        if uri.startswith(prefix):
            parts = [p for p in uri[len(prefix):].split("/") if p]
            if len(parts) == 1 and parts[0].count(".") >= 1:
                return parts[0]
            if len(parts) in (2, 3):
                return ".".join(parts)
            raise ValueError(f"{uri!r}: expected bigquery://PROJECT/DATASET/TABLE")
    if uri.startswith("bigquery:"):  # bigquery:PROJECT.DATASET.TABLE
        return uri[len("bigquery:"):]
    return None


def _strip_file(uri: str) -> tuple[str | None, str]:
    for fmt in ("parquet", "csv"):
        if uri.startswith(fmt + ":") and not uri.startswith(fmt + "://"):
            return fmt, uri[len(fmt) + 1:]
    return None, uri.removeprefix("file://")


def source_from_uri(uri: str, fields: EventFields, clients: ClientsFactory = BigQueryClients.from_env,
                    staging_dir: str | None = None, **options: Any) -> Any:
    table = _bigquery_table(uri)
    if table is not None:
        return BigQuerySource(table, fields, clients(), **options)
    fmt, path = _strip_file(uri)
    return FileSource(path, fields, format=fmt, staging_dir=staging_dir)


def sink_from_uri(uri: str, clients: ClientsFactory = BigQueryClients.from_env, settings: Any = None) -> Any:
    table = _bigquery_table(uri)
    if table is not None:
        return BigQuerySink(table, clients())
    if uri == "alerts" or uri.startswith("alerts:") or uri.startswith("kafka://"):
        if settings is None:
            from stream_app.settings import StreamSettings

            settings = StreamSettings()
        if uri.startswith("kafka://"):
            bootstrap, _, topic = uri[len("kafka://"):].partition("/")
            if not topic:
                raise ValueError(f"{uri!r}: expected kafka://HOST:PORT/TOPIC")
        else:
            bootstrap = settings.kafka_bootstrap
            topic = uri.partition(":")[2] or settings.alerts_topic
        return AlertsSink(bootstrap, topic, client_kwargs=settings.client_kwargs())
    fmt, path = _strip_file(uri)
    if fmt == "csv":
        raise ValueError(f"{uri!r}: scores are written as Parquet (parquet:DIR), not CSV")
    return ParquetSink(path)


def source_from_spec(spec: dict[str, Any], clients: ClientsFactory = BigQueryClients.from_env) -> Any:
    fields = EventFields.from_dict(spec["fields"])
    if spec["kind"] == "bigquery":
        return BigQuerySource(spec["table"], fields, clients(), staging_dataset=spec.get("staging_dataset"),
                              staging_hours=spec.get("staging_hours", 24),
                              max_read_streams=spec.get("max_read_streams", 1))
    if spec["kind"] == "files":
        return FileSource(spec["path"], fields, format=spec.get("format"), staging_dir=spec.get("staging_dir"),
                          batch_rows=spec.get("batch_rows", 131_072), flush_rows=spec.get("flush_rows", 65_536))
    raise ValueError(f"unknown source kind {spec.get('kind')!r}")


def sink_from_spec(spec: dict[str, Any], clients: ClientsFactory = BigQueryClients.from_env,
                   client_kwargs: dict[str, Any] | None = None) -> Any:
    kind = spec.get("kind")
    if kind == "bigquery":
        return BigQuerySink(spec["table"], clients(), retries=spec.get("retries", 5))
    if kind == "parquet":
        return ParquetSink(spec["directory"], compression=spec.get("compression", "zstd"))
    if kind == "alerts":
        return AlertsSink(spec["bootstrap"], spec["topic"], client_kwargs=client_kwargs)
    raise ValueError(f"unknown sink kind {kind!r}")
