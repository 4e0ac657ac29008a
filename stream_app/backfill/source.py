"""What every backfill source does, and the plan one scan leaves for the shard readers.

A source is read in two steps, which is what makes a sharded backfill cheap and resumable:

1. ``prepare(run_id, shards, time_range)`` scans the source once and stages every event of
   the time range with its shard number (BigQuery: one query into a staging table; files: one
   pass into per-shard Arrow files). Preparing again for the same run reuses the staging.
2. ``read_shard(plan, i)`` returns the events of shard ``i`` sorted by (key, time), in memory
   bounded by the shard's size. Any worker can do it from the plan (a plain dict in a task).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import pyarrow as pa

from stream_app.backfill.estimate import DryRunReport
from stream_app.backfill.timerange import TimeRange
from stream_app.event_fields import EventFields


@dataclass
class ScanPlan:
    run_id: str
    shards: int
    time_range: TimeRange
    staging: str | None  # staging table id / directory; None when shards are read directly
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["time_range"] = self.time_range.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ScanPlan:
        return cls(d["run_id"], int(d["shards"]), TimeRange.from_dict(d["time_range"]), d.get("staging"),
                   dict(d.get("details") or {}))


class ShardedSource(Protocol):
    fields: EventFields

    def describe(self) -> str: ...

    def check(self) -> None:
        """Raise SourceError if the source is missing or lacks / mistypes a column."""

    def dry_run(self, shards: int, time_range: TimeRange, workers: int = 1, run_id: str = "RUN") -> DryRunReport: ...

    def prepare(self, run_id: str, shards: int, time_range: TimeRange) -> ScanPlan: ...

    def read_shard(self, plan: ScanPlan, shard: int) -> pa.Table: ...

    def cleanup(self, plan: ScanPlan) -> None:
        """Remove the staging once every shard is done."""

    def spec(self) -> dict[str, Any]:
        """A JSON-able description from which :func:`stream_app.backfill.specs.open_source`
        makes the same source in another process."""
