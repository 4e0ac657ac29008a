"""``ember backfill``, and reading training history from a source URI (``ember train --source``).

Mounted on the ``ember`` group by ``stream_app.cli`` (``cli_backfill.register(main)``).

    ember backfill --model model/ --source bigquery://proj/ds/events --sink bigquery://proj/ds/scores \\
        --since 2024-01-01 --until 2024-02-01 --shards 32 [--dry-run] [--local | --distributed]
    ember backfill --model model/ --source data/events/ --sink parquet:out/scores --local
    python -m stream_app.backfill.distributed worker      # on each worker, for --distributed

See docs/backfill.md.
"""

from __future__ import annotations

from typing import Any

import click
import pyarrow as pa

from stream_app.backfill.errors import BackfillError
from stream_app.backfill.timerange import TimeRange
from stream_app.event_fields import EventFields


def is_bigquery_uri(uri: str) -> bool:
    return uri.startswith(("bigquery:", "bq://"))


def read_history(uri: str, config: Any, since: Any = None, until: Any = None, clients: Any = None) -> pa.Table:
    """Every event of ``uri`` in [since, until) as one table sorted by (key, time), for training.

    ``config``: the ember configuration (or a pipeline) naming the key, time and value fields.
    BigQuery is read straight through the Storage Read API (no query, no staging table); files
    through the same file source as the backfill. Raises ``SourceError`` naming a missing table,
    file or column, or a wrong type.
    """
    from stream_app.backfill.bigquery_clients import BigQueryClients
    from stream_app.backfill.specs import _bigquery_table, source_from_uri

    fields = EventFields.from_pipeline(config) if hasattr(config, "model_version") else EventFields.from_config(config)
    time_range = TimeRange.of(since, until)
    table_id = _bigquery_table(uri)
    if table_id is not None:
        from stream_app.backfill.bigquery_source import BigQuerySource

        return BigQuerySource(table_id, fields, clients or BigQueryClients.from_env()).read_range(time_range)
    source = source_from_uri(uri, fields)
    plan = source.prepare("history", 1, time_range)
    return source.read_shard(plan, 0)


@click.command("backfill")
@click.option("--model", "model_dir", required=True, type=click.Path(exists=True, file_okay=False),
              help="Model directory (ember train); its config names the key, time and value fields.")
@click.option("--source", required=True,
              help="bigquery://PROJECT/DATASET/TABLE, or a Parquet/CSV file or directory.")
@click.option("--sink", required=True,
              help="bigquery://PROJECT/DATASET/TABLE, parquet:DIR, or alerts[:TOPIC] / kafka://HOST:PORT/TOPIC.")
@click.option("--since", default=None, help="Start of the time range (ISO 8601, UTC unless an offset is given), inclusive.")
@click.option("--until", default=None, help="End of the time range, exclusive.")
@click.option("--shards", default=8, show_default=True, type=click.IntRange(min=1),
              help="Key-hash shards: the unit of work, retry and resume; memory holds one shard.")
@click.option("--local/--distributed", default=True, show_default=True,
              help="Run every shard here, or publish them as tasks to the backfill workers (Kafka).")
@click.option("--dry-run", is_flag=True, help="Print shards, bytes scanned, cost and time estimates; run nothing.")
@click.option("--run-id", default=None, help="Default: a digest of source, sink, range, shards and model (same command = resume).")
@click.option("--state-dir", default="var/backfill", show_default=True, type=click.Path(file_okay=False),
              help="Where --local records finished shards.")
@click.option("--staging-dir", default=None, type=click.Path(file_okay=False),
              help="Per-shard staging files of a file source (shared storage for --distributed).")
@click.option("--staging-dataset", default=None, help="BigQuery dataset of the staging table (default: the source's).")
@click.option("--workers", default=1, show_default=True, type=int, help="Cores/workers, for the dry run's time estimate.")
@click.option("--timeout-s", default=None, type=float, help="--distributed: stop waiting after this long.")
@click.option("--progress/--no-progress", default=True, show_default=True)
def backfill(model_dir, source, sink, since, until, shards, local, dry_run, run_id, state_dir, staging_dir,
             staging_dataset, workers, timeout_s, progress):
    """Score history from BigQuery or files with a model, shard by shard, into a sink."""
    from stream_app.backfill import runner
    from stream_app.backfill.manifest import LocalManifest
    from stream_app.backfill.specs import sink_from_uri, source_from_uri

    try:
        pipe, model_path = runner.load_pipeline(model_dir)
        fields = EventFields.from_pipeline(pipe)
        options = {"staging_dataset": staging_dataset} if is_bigquery_uri(source) and staging_dataset else {}
        src = source_from_uri(source, fields, staging_dir=staging_dir, **options)
        if dry_run:
            report = runner.dry_run(src, shards, since, until, workers=workers, run_id=run_id)
            click.echo(report.render())
            return
        dst = sink_from_uri(sink)
        distributed = None
        if not local:
            from stream_app.backfill.distributed import DistributedOptions
            from stream_app.settings import StreamSettings

            settings = StreamSettings()
            distributed = DistributedOptions(settings.kafka_bootstrap, timeout_s=timeout_s,
                                             client_kwargs=settings.client_kwargs())
        result = runner.run_backfill(
            src, dst, model_path if not local else pipe, shards=shards, since=since, until=until, local=local,
            progress=progress, run_id=run_id, manifest=LocalManifest(state_dir), distributed=distributed,
        )  # fmt: skip
    except (BackfillError, ValueError, OSError) as exc:
        raise click.ClickException(str(exc)) from None
    rate = f", {result.rows_per_second:,.0f} events/s" if result.rows else ""
    skipped = f"; {len(result.skipped)} shard(s) were already done" if result.skipped else ""
    click.echo(f"backfill {result.run_id}: {len(result.processed)} shard(s), {result.rows:,} events, "
               f"{result.alerts} alerts in {result.seconds:.1f} s{rate}{skipped} -> {dst.describe()}")


COMMANDS = [backfill]


def register(group: click.Group) -> click.Group:
    """Add ``backfill`` to the ``ember`` group."""
    for command in COMMANDS:
        group.add_command(command)
    return group

