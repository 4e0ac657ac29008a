"""The emulator process itself: it starts offline, answers the real clients, stops by pid."""

from __future__ import annotations

import json

import pytest

from stream_app.backfill import emulator


def test_fixture_emulator_answers_rest_and_grpc(bq_clients, bq_dataset):
    from google.cloud import bigquery

    rows = list(bq_clients.bq.query(
        "SELECT ABS(MOD(FARM_FINGERPRINT('key1'), 4)) AS a, MOD(ABS(FARM_FINGERPRINT('key1')), 4) AS b, "
        "FARM_FINGERPRINT('key1') AS f"
    ).result())
    # FARM_FINGERPRINT('key1') as computed by BigQuery (farmhash Fingerprint64).
    assert rows[0]["f"] == -2284770677635606306
    assert rows[0]["a"] == rows[0]["b"] == 2
    assert isinstance(bq_clients.bq.get_dataset(bq_dataset), bigquery.Dataset)


@pytest.mark.slow
def test_start_and_stop_by_pid(tmp_path):
    handle = emulator.start_emulator(tmp_path)
    try:
        state = json.loads((tmp_path / emulator.STATE_FILE).read_text())
        assert state["pid"] == handle.pid
        assert emulator.running_emulator(tmp_path) == handle
        assert emulator.install_spatial_extension().exists()
    finally:
        assert emulator.stop_emulator(tmp_path) is True
    assert emulator.running_emulator(tmp_path) is None
    assert emulator.stop_emulator(tmp_path) is False
