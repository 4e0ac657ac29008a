"""Distributed backfill on a real Kafka broker and the BigQuery emulator: shard tasks taken by a
consumer group of worker processes; a worker killed in the middle of a shard loses nothing."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

from stream_app.backfill import BigQuerySink, BigQuerySource, EventFields, run_backfill
from stream_app.backfill.distributed import DistributedOptions, read_done
from stream_app.backfill.emulator import ENV_GRPC, ENV_PROJECT, ENV_REST

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
FIELDS = EventFields(key_field="host", time_field="ts", value_fields=("cpu",))


class Worker:
    def __init__(self, bootstrap: str, group: str, tasks: str, done: str, bq, sleep_s: float):
        env = dict(os.environ, EMBER_TEST_SHARD_SLEEP_S=str(sleep_s),
                   PYTHONPATH=os.pathsep.join([str(Path(__file__).parent), str(ROOT)]))
        env.update({ENV_REST: bq.rest_url, ENV_GRPC: bq.grpc_endpoint, ENV_PROJECT: bq.project})
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "stream_app.backfill.distributed", "worker", "--bootstrap", bootstrap,
             "--group", group, "--tasks-topic", tasks, "--done-topic", done,
             "--pipeline-loader", "slow_pipeline:load", "--session-timeout-s", "6"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=ROOT,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.log: list[str] = []
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self):
        for line in self.proc.stdout:
            self.lines.put(line.strip())

    def wait_for(self, prefix: str, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.2)
            except queue.Empty:
                continue
            self.log.append(line)
            if line.startswith(prefix):
                return line
        raise AssertionError(f"worker did not print {prefix!r} within {timeout} s; output: {self.log}")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def test_a_killed_workers_shard_is_taken_again(kafka_bootstrap, bq_emulator, bq_clients, bq_dataset,
                                               events_table, pipeline, tmp_path):
    import asyncio

    table_id, events = events_table(keys=24, per_key=10)
    model_dir = tmp_path / "model"
    pipeline.save(model_dir)
    tag = uuid.uuid4().hex[:8]
    opts = DistributedOptions(kafka_bootstrap, tasks_topic=f"bf-tasks-{tag}", done_topic=f"bf-done-{tag}",
                              task_partitions=4, timeout_s=180)
    group = f"bf-group-{tag}"
    sink_table = f"{bq_dataset}.scores"

    first = Worker(kafka_bootstrap, group, opts.tasks_topic, opts.done_topic, bq_emulator, sleep_s=3.0)
    second = None
    outcome: dict = {}

    def coordinate():
        try:
            outcome["result"] = run_backfill(
                BigQuerySource(table_id, FIELDS, bq_clients), BigQuerySink(sink_table, bq_clients), str(model_dir),
                shards=4, local=False, distributed=opts, run_id=f"dist-{tag}", progress=False)
        except BaseException as exc:  # reported by the assertion below
            outcome["error"] = exc

    coordinator = threading.Thread(target=coordinate)
    try:
        coordinator.start()
        started = first.wait_for("start ", timeout=90)
        killed_shard = int(started.rsplit("shard=", 1)[1])
        first.proc.kill()  # SIGKILL in the middle of the shard: no commit, no goodbye to the group
        first.proc.wait()
        second = Worker(kafka_bootstrap, group, opts.tasks_topic, opts.done_topic, bq_emulator, sleep_s=0.0)
        coordinator.join(timeout=150)
        assert not coordinator.is_alive(), "the coordinator did not see every shard done"
        assert "error" not in outcome, outcome.get("error")
        result = outcome["result"]
        assert sorted(result.processed) == [0, 1, 2, 3] and result.rows == events.num_rows

        records = asyncio.run(read_done(opts, f"dist-{tag}"))
        assert {s for (_, s), r in records.items() if r["status"] == "done"} == {0, 1, 2, 3}
        assert records[(f"dist-{tag}", killed_shard)]["worker"] == second.proc.pid

        got = bq_clients.bq.query(f"SELECT key, time FROM `{sink_table}`").result().to_arrow(create_bqstorage_client=False)
        pairs = list(zip(got.column("key").to_pylist(), got.column("time").to_pylist()))
        assert len(pairs) == len(set(pairs)) == events.num_rows
    finally:
        first.stop()
        if second is not None:
            second.stop()
        coordinator.join(timeout=5)
