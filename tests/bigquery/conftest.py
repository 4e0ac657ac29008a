"""BigQuery fixtures: one real emulator process (PyPI ``bqemulator``) per test session.

``bq_emulator`` reuses a running emulator when ``EMBER_BQ_ENDPOINT`` and
``EMBER_BQ_GRPC_ENDPOINT`` are set (``eval "$(scripts/bqemulator start)"``); otherwise it
starts one on free loopback ports (installing DuckDB's spatial extension from its wheel first,
so nothing is downloaded) and stops it by pid when the session ends. Tests talk to it through
the unmodified official clients (REST + gRPC Storage Read API). Every test here carries the
``bigquery`` marker.
"""

from __future__ import annotations

import io
import os
import uuid
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from stream_app.backfill import emulator
from stream_app.backfill.bigquery_clients import BigQueryClients

HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.bigquery)


@pytest.fixture(scope="session")
def bq_emulator(tmp_path_factory: pytest.TempPathFactory) -> emulator.EmulatorHandle:
    rest = os.environ.get(emulator.ENV_REST)
    if rest:
        grpc_endpoint = os.environ.get(emulator.ENV_GRPC)
        if not grpc_endpoint:
            pytest.fail(f"{emulator.ENV_REST} is set but {emulator.ENV_GRPC} is not (see scripts/bqemulator)")
        project = os.environ.get(emulator.ENV_PROJECT, emulator.DEFAULT_PROJECT)
        yield emulator.EmulatorHandle(pid=-1, rest_url=rest, grpc_endpoint=grpc_endpoint, project=project, log_path="")
        return
    state_dir = tmp_path_factory.mktemp("bqemulator")
    handle = emulator.start_emulator(state_dir)
    try:
        yield handle
    finally:
        emulator.stop_emulator(handle)


@pytest.fixture(scope="session")
def bq_clients(bq_emulator: emulator.EmulatorHandle) -> BigQueryClients:
    return BigQueryClients.for_emulator(bq_emulator.rest_url, bq_emulator.grpc_endpoint, bq_emulator.project)


@pytest.fixture
def bq_dataset(bq_clients: BigQueryClients) -> str:
    """A fresh dataset (``project.dataset``), deleted with its tables after the test."""
    name = f"t_{uuid.uuid4().hex[:10]}"
    dataset_id = f"{bq_clients.project}.{name}"
    bq_clients.bq.create_dataset(dataset_id)
    yield dataset_id
    bq_clients.bq.delete_dataset(dataset_id, delete_contents=True, not_found_ok=True)


@pytest.fixture
def load_table(bq_clients: BigQueryClients):
    """``load(table_id, arrow_table, schema)``: a Parquet load job into a new table."""
    from google.cloud import bigquery

    def load(table_id: str, table: pa.Table, schema: list[bigquery.SchemaField]) -> str:
        buf = io.BytesIO()
        pq.write_table(table, buf)
        buf.seek(0)
        job = bq_clients.bq.load_table_from_file(
            buf, table_id,
            job_config=bigquery.LoadJobConfig(source_format="PARQUET", schema=schema),
        )  # fmt: skip
        job.result()
        return table_id

    return load


def make_events(keys: int, per_key: int, seed: int = 0, start: float = 1_700_000_000.0,
                key_prefix: str = "host-") -> pa.Table:
    """``keys`` × ``per_key`` events in shuffled row order (what a warehouse table looks like):
    irregular time steps per key, a value with a per-key level, a TIMESTAMP time column."""
    import numpy as np

    rng = np.random.default_rng(seed)
    key_ids = np.repeat(np.arange(keys), per_key)
    gaps = rng.exponential(30.0, size=(keys, per_key)) + 1.0
    times = start + np.cumsum(gaps, axis=1).ravel()
    micros = np.round(times * 1e6).astype(np.int64)
    level = rng.normal(50.0, 10.0, size=keys)
    values = level[key_ids] + rng.normal(0.0, 2.0, size=keys * per_key)
    order = rng.permutation(keys * per_key)
    return pa.table({
        "host": pa.array([f"{key_prefix}{k}" for k in key_ids[order]], pa.string()),
        "ts": pa.array(micros[order], pa.int64()).cast(pa.timestamp("us", tz="UTC")),
        "cpu": pa.array(values[order], pa.float64()),
    })


EVENT_SCHEMA_SQL = [("host", "STRING"), ("ts", "TIMESTAMP"), ("cpu", "FLOAT64")]


@pytest.fixture
def events_table(bq_dataset, load_table):
    """``make(keys, per_key, seed=0, name="events") -> (table_id, arrow_table)`` in BigQuery."""
    from google.cloud import bigquery

    def make(keys: int, per_key: int, seed: int = 0, name: str = "events"):
        table = make_events(keys, per_key, seed)
        schema = [bigquery.SchemaField(n, t) for n, t in EVENT_SCHEMA_SQL]
        return load_table(f"{bq_dataset}.{name}", table, schema), table

    return make


@pytest.fixture
def arrow_events():
    """The event generator itself (no BigQuery), for file sources and pipelines."""
    return make_events


@pytest.fixture
def pipeline():
    """A real ember pipeline for the test events (host, ts, cpu), fitted on generated history."""
    from ember_models.config import parse_config
    from ember_models.pipeline import Pipeline

    config = parse_config({"data": {"key_field": "host", "time_field": "ts", "value_fields": ["cpu"]},
                           "model": {"warmup_events": 5}})
    return Pipeline(config).fit(make_events(5, 50, seed=99))


def assert_grouped_in_time_order(keys: list, times: list, where: str = "") -> None:
    """Each key's rows are contiguous and in time order (what a stateful model needs)."""
    seen: set = set()
    for i, k in enumerate(keys):
        if i and keys[i - 1] == k:
            assert times[i - 1] <= times[i], f"{where}: time goes back for key {k} at row {i}"
        else:
            assert k not in seen, f"{where}: rows of key {k} are not contiguous (row {i})"
            seen.add(k)


@pytest.fixture
def grouped_in_time_order():
    return assert_grouped_in_time_order
