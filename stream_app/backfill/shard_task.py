"""One shard, start to end: read (sorted by key, time) → score → write. Shared by the local
runner and the distributed workers, so both do exactly the same thing.

A shard is scored in blocks of at most ``keys_per_step`` whole keys (row ranges of the grouped
table, one ``Pipeline.score`` call each): the detector advances every key of a call at each
step, and past a few thousand keys a step's per-key arrays leave the caches and a shard's
fresh arrays cost page faults. So the shard count sets only the parallelism across workers
and the unit of retry, not the size of a step. Keys are independent, so the blocks' scores
are the one call's scores (up to float rounding of products over another number of keys).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from stream_app.backfill.errors import PipelineError, SessionExpiredError
from stream_app.backfill.sink import RunInfo, ShardSink
from stream_app.backfill.source import ScanPlan, ShardedSource


# Measured (docs/performance.md, "Backfill"): 1,250 and 2,500 keys per step score alike,
# 5,000 and 10,000 cost more end to end (kernel time on larger arrays), 625 more per event.
KEYS_PER_STEP = 2_500


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


def key_blocks(table: pa.Table, key_field: str, keys_per_step: int | None) -> list[tuple[int, int]]:
    """Row ranges [lo, hi) of at most ``keys_per_step`` whole keys each, of a table whose rows
    are grouped by key (what ``read_shard`` returns)."""
    n = table.num_rows
    if not keys_per_step or n < 2:
        return [(0, n)]
    if keys_per_step < 1:
        raise ValueError(f"keys_per_step must be >= 1, got {keys_per_step}")
    keys = table.column(key_field)
    keys = keys.combine_chunks() if keys.num_chunks != 1 else keys.chunk(0)
    if pa.types.is_dictionary(keys.type) and pc.count_distinct(keys.dictionary).as_py() == len(keys.dictionary):
        # one code per key
        codes = keys.indices.to_numpy(zero_copy_only=False)
        change = codes[1:] != codes[:-1]
    else:
        change = pc.not_equal(keys.slice(1), keys.slice(0, n - 1)).to_numpy(zero_copy_only=False)
    starts = np.flatnonzero(change) + 1  # rows where a key begins (after the first)
    cuts = starts[keys_per_step - 1::keys_per_step].tolist()
    bounds = [0, *cuts, n]
    return list(zip(bounds[:-1], bounds[1:]))


def score_table(pipeline: Any, table: pa.Table, with_alerts: bool, shard: int,
                keys_per_step: int | None = KEYS_PER_STEP) -> tuple[pa.Table, list[dict]]:
    blocks = key_blocks(table, pipeline.config.key_field, keys_per_step)
    parts, alerts = [], []
    try:
        for lo, hi in blocks:
            block = table if len(blocks) == 1 else table.slice(lo, hi - lo)
            if with_alerts:
                res = pipeline.step(block, {})
                parts.append(res.scores)
                alerts.extend(res.alerts)
            else:
                parts.append(pipeline.score(block))
    except Exception as exc:  # noqa: BLE001 - reported with the shard it happened in
        raise PipelineError(f"the pipeline failed on shard {shard} ({table.num_rows} events): {exc}") from exc
    scores = parts[0] if len(parts) == 1 else pa.concat_tables(parts)
    if scores.num_rows != table.num_rows:
        raise PipelineError(f"the pipeline returned {scores.num_rows} scores for {table.num_rows} events of shard {shard}")
    return scores, alerts


def run_shard(source: ShardedSource, sink: ShardSink, pipeline: Any, plan: ScanPlan, run: RunInfo,
              shard: int, retries: int = 3, keys_per_step: int | None = KEYS_PER_STEP) -> ShardOutcome:
    start = time.perf_counter()
    table, attempts = read_with_retry(source, plan, shard, retries)
    scores, alerts = score_table(pipeline, table, sink.needs_alerts, shard, keys_per_step)
    sink.write_shard(run, shard, scores, alerts)
    return ShardOutcome(shard, table.num_rows, len(alerts), time.perf_counter() - start, attempts)
