"""``ember backfill`` and the training-history reader, on files and on the emulator."""

from __future__ import annotations

import os

import click
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from stream_app import cli_backfill
from stream_app.backfill.emulator import ENV_GRPC, ENV_PROJECT, ENV_REST


@pytest.fixture
def ember():
    group = click.Group()
    cli_backfill.register(group)
    return lambda *args: CliRunner().invoke(group, list(args), catch_exceptions=False)


@pytest.fixture
def model_dir(pipeline, tmp_path):
    pipeline.save(tmp_path / "model")
    return str(tmp_path / "model")


@pytest.fixture
def emulator_env(bq_emulator, monkeypatch):
    monkeypatch.setenv(ENV_REST, bq_emulator.rest_url)
    monkeypatch.setenv(ENV_GRPC, bq_emulator.grpc_endpoint)
    monkeypatch.setenv(ENV_PROJECT, bq_emulator.project)


def test_cli_backfills_files_to_parquet_and_resumes(ember, model_dir, arrow_events, tmp_path):
    events = arrow_events(12, 20)
    os.makedirs(tmp_path / "in")
    pq.write_table(events, tmp_path / "in" / "a.parquet")
    args = ["backfill", "--model", model_dir, "--source", str(tmp_path / "in"), "--sink", f"parquet:{tmp_path / 'out'}",
            "--shards", "3", "--state-dir", str(tmp_path / "state"), "--staging-dir", str(tmp_path / "stage"), "--no-progress"]
    first = ember(*args)
    assert first.exit_code == 0, first.output
    assert "3 shard(s), 240 events" in first.output
    assert pq.read_table(tmp_path / "out").num_rows == 240
    again = ember(*args)
    assert "0 shard(s), 0 events" in again.output and "3 shard(s) were already done" in again.output


def test_cli_dry_run_and_bad_input(ember, model_dir, emulator_env, events_table):
    table_id, _ = events_table(keys=5, per_key=10)
    project, dataset, table = table_id.split(".")
    dry = ember("backfill", "--model", model_dir, "--source", f"bigquery://{project}/{dataset}/{table}",
                "--sink", "parquet:unused", "--shards", "4", "--dry-run", "--since", "2023-01-01")
    assert dry.exit_code == 0, dry.output
    assert "shards        4" in dry.output and "bytes scanned" in dry.output and "query cost" in dry.output
    missing = ember("backfill", "--model", model_dir, "--source", f"bigquery://{project}/{dataset}/nope",
                    "--sink", "parquet:unused", "--dry-run")
    assert missing.exit_code != 0 and f"{project}.{dataset}.nope not found" in missing.output


def test_read_history_from_bigquery_and_files(bq_clients, events_table, pipeline, tmp_path, grouped_in_time_order):
    table_id, events = events_table(keys=7, per_key=9)
    times = sorted(events.column("ts").to_pylist())
    got = cli_backfill.read_history(f"bigquery://{table_id.replace('.', '/')}", pipeline.config,
                                    since=times[5], clients=bq_clients)
    assert got.num_rows == events.num_rows - 5
    grouped_in_time_order(got.column("host").to_pylist(), got.column("ts").to_pylist())
    pq.write_table(events, tmp_path / "h.parquet")
    from_file = cli_backfill.read_history(str(tmp_path / "h.parquet"), pipeline, until=times[-3])
    assert from_file.num_rows == events.num_rows - 3
