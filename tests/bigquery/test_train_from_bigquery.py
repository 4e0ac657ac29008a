"""`ember train --source bigquery://…` reads the history through the emulator and trains the same
model as the same events from a Parquet file."""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from stream_app.backfill.emulator import ENV_GRPC, ENV_PROJECT, ENV_REST
from stream_app.cli import main

CONFIG = """\
[data]
key_field = "host"
time_field = "ts"
value_fields = ["cpu"]

[model]
warmup_events = 5
"""


@pytest.fixture
def emulator_env(bq_emulator, monkeypatch):
    monkeypatch.setenv(ENV_REST, bq_emulator.rest_url)
    monkeypatch.setenv(ENV_GRPC, bq_emulator.grpc_endpoint)
    monkeypatch.setenv(ENV_PROJECT, bq_emulator.project)


def ember(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def test_train_from_bigquery_equals_train_from_parquet(emulator_env, events_table, arrow_events, tmp_path):
    table_id, events = events_table(keys=4, per_key=60)
    (tmp_path / "ember.toml").write_text(CONFIG)
    uri = "bigquery://" + table_id.replace(".", "/")
    from_bq = ember("train", "--config", tmp_path / "ember.toml", "--source", uri, "--model", tmp_path / "m_bq",
                    "--no-progress")
    assert from_bq.exit_code == 0, from_bq.output
    assert "trained on 240 events of 4 keys" in from_bq.output

    pq.write_table(events, tmp_path / "history.parquet")
    from_file = ember("train", "--config", tmp_path / "ember.toml", "--input", tmp_path / "history.parquet",
                      "--model", tmp_path / "m_file", "--no-progress")
    assert from_file.exit_code == 0, from_file.output

    # Same history, same model: the next events score identically under both.
    later = arrow_events(4, 30, seed=5, start=float(np.max(events.column("ts").cast("int64").to_numpy()) / 1e6 + 60))
    pq.write_table(later, tmp_path / "later.parquet")
    scores = {}
    for name in ("m_bq", "m_file"):
        out = tmp_path / f"{name}.parquet"
        res = ember("score", "--model", tmp_path / name, "--input", tmp_path / "later.parquet", "--output", out,
                    "--no-progress")
        assert res.exit_code == 0, res.output
        scores[name] = pq.read_table(out)
    assert scores["m_bq"].column("ts").to_pylist() == scores["m_file"].column("ts").to_pylist()
    np.testing.assert_allclose(scores["m_bq"].column("score").to_numpy(), scores["m_file"].column("score").to_numpy(),
                               rtol=0, atol=1e-12)


def test_train_from_a_missing_bigquery_table_names_it(emulator_env, bq_dataset, tmp_path):
    (tmp_path / "ember.toml").write_text(CONFIG)
    project, dataset = bq_dataset.split(".")
    res = ember("train", "--config", tmp_path / "ember.toml", "--source", f"bigquery://{project}/{dataset}/nope",
                "--model", tmp_path / "m")
    assert res.exit_code != 0 and "nope" in res.output and "Traceback" not in res.output
