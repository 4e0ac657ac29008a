"""One shard, start to end: read (sorted by key, time) → score → write. Shared by the local
runner and the distributed workers, so both do exactly the same thing."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from stream_app.backfill.errors import PipelineError, SessionExpiredError
from stream_app.backfill.sink import RunInfo, ShardSink
from stream_app.backfill.source import ScanPlan, ShardedSource


@dataclass
class ShardOutcome:
    shard: int
    rows: int
    alerts: int
    seconds: float
    read_attempts: int

    def record(self, run: RunInfo) -> dict[str, Any]:
        return {"rows": self.rows, "alerts": self.alerts, "seconds": round(self.seconds, 3),
                "model_version": run.model_version, "read_attempts": self.read_attempts}


def read_with_retry(source: ShardedSource, plan: ScanPlan, shard: int, retries: int) -> tuple[pa.Table, int]:
    """Read a shard; an expired read session starts the shard over with a fresh session."""
    for attempt in range(1, retries + 2):
        try:
            return source.read_shard(plan, shard), attempt
        except SessionExpiredError:
            if attempt > retries:
                raise
    raise AssertionError("unreachable")


def score_table(pipeline: Any, table: pa.Table, with_alerts: bool, shard: int) -> tuple[pa.Table, list[dict]]:
    try:
        if with_alerts:
            res = pipeline.step(table, {})
            scores, alerts = res.scores, list(res.alerts)
        else:
            scores, alerts = pipeline.score(table), []
    except Exception as exc:  # noqa: BLE001 - reported with the shard it happened in
        raise PipelineError(f"the pipeline failed on shard {shard} ({table.num_rows} events): {exc}") from exc
    if scores.num_rows != table.num_rows:
        raise PipelineError(f"the pipeline returned {scores.num_rows} scores for {table.num_rows} events of shard {shard}")
    return scores, alerts


def run_shard(source: ShardedSource, sink: ShardSink, pipeline: Any, plan: ScanPlan, run: RunInfo,
              shard: int, retries: int = 3) -> ShardOutcome:
    start = time.perf_counter()
    table, attempts = read_with_retry(source, plan, shard, retries)
    scores, alerts = score_table(pipeline, table, sink.needs_alerts, shard)
    sink.write_shard(run, shard, scores, alerts)
    return ShardOutcome(shard, table.num_rows, len(alerts), time.perf_counter() - start, attempts)
