"""What every backfill sink does: write one shard's scores so that writing it again replaces it.

A shard can be written twice: a worker dies after its sink write but before the shard is
recorded as done, or a stopped run is resumed. So every sink writes per shard idempotently
(the Parquet file of the shard is replaced atomically; the BigQuery rows of (run, shard) are
replaced in one transaction; alerts carry a deterministic ``alert_id``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Protocol

import pyarrow as pa


@dataclass(frozen=True)
class RunInfo:
    run_id: str
    shards: int
    model_version: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class ShardSink(Protocol):
    # True when the sink needs the pipeline's alert records (``Pipeline.step``), not only the
    # scores table (``Pipeline.score``).
    needs_alerts: bool

    def describe(self) -> str: ...

    def open(self, run: RunInfo) -> None:
        """Check (or create) the destination before any shard is scored."""

    def write_shard(self, run: RunInfo, shard: int, scores: pa.Table, alerts: list[dict]) -> None:
        """Write (or replace) everything of ``shard``; return only when it is durable."""

    def close(self) -> None: ...

    def spec(self) -> dict[str, Any]: ...
