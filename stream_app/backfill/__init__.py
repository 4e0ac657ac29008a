"""Backfill: score history (BigQuery or Parquet/CSV files) through the same pipeline as the
stream, shard by shard, into a BigQuery table, Parquet files or the alerts topic.

See docs/backfill.md. The pieces: ``runner.run_backfill`` (and ``dry_run``), sources
(``BigQuerySource``, ``FileSource``), sinks (``BigQuerySink``, ``ParquetSink``, ``AlertsSink``),
``distributed`` (shards as Kafka tasks for the worker group), ``emulator`` (local bqemulator).
Submodules are imported lazily so that ``import stream_app.backfill`` stays cheap.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {
    "run_backfill": "runner", "dry_run": "runner", "BackfillResult": "runner",
    "BigQuerySource": "bigquery_source", "FileSource": "file_source",
    "BigQuerySink": "bigquery_sink", "ParquetSink": "parquet_sink", "AlertsSink": "alerts_sink",
    "BigQueryClients": "bigquery_clients", "EventFields": "fields", "TimeRange": "timerange",
    "LocalManifest": "manifest", "DryRunReport": "estimate",
    "BackfillError": "errors", "SourceError": "errors", "SinkError": "errors",
    "SessionExpiredError": "errors", "PipelineError": "errors",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(f"stream_app.backfill.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'stream_app.backfill' has no attribute {name!r}")
