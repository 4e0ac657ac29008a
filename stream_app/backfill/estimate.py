"""What a backfill would do, before it does anything: shards, bytes scanned, cost and time.

Prices are Google's public list prices for the US multi-region (on-demand queries, Storage
Read API); they change and differ by region and contract, so they are parameters. The time
estimate divides the rows by a scoring rate per core (measured by ``benchmarks/backfill.py``,
see docs/performance.md) and ignores BigQuery's own query time; it is an order of magnitude.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

TIB = 1024**4
MIB = 1024**2
# https://cloud.google.com/bigquery/pricing (US multi-region list prices).
ON_DEMAND_USD_PER_TIB = 6.25
STORAGE_READ_USD_PER_TIB = 1.10
# On-demand queries bill at least 10 MiB per table referenced.
MIN_BILLED_BYTES = 10 * MIB
# Events scored per second per core, local Parquet -> scores (docs/performance.md, ## Backfill).
DEFAULT_EVENTS_PER_SECOND_PER_CORE = 1_000_000


@dataclass
class DryRunReport:
    source: str
    shards: int
    time_range: str
    bytes_scanned: int  # what the one staging query scans (BigQuery) / the files' size
    bytes_basis: str  # where bytes_scanned comes from
    rows: int | None  # rows of the source (an upper bound when a time range narrows it)
    query_cost_usd: float | None  # the staging query, on-demand pricing (None for files)
    read_cost_usd: float | None  # reading the staged rows back through the Storage Read API
    est_seconds: float | None
    workers: int = 1
    staging: str | None = None  # the staging table / directory the run would write
    staging_sql: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)

    def render(self) -> str:
        lines = [
            f"source        {self.source}",
            f"time range    {self.time_range}",
            f"shards        {self.shards}",
            f"bytes scanned {human_bytes(self.bytes_scanned)} ({self.bytes_scanned} B; {self.bytes_basis})",
            f"rows          {'unknown' if self.rows is None else f'{self.rows:,}'}",
        ]
        if self.query_cost_usd is not None:
            lines.append(f"query cost    ${self.query_cost_usd:.4f} (on-demand ${ON_DEMAND_USD_PER_TIB}/TiB, billed once)")
        if self.read_cost_usd is not None:
            lines.append(f"read cost     ${self.read_cost_usd:.4f} (Storage Read API ${STORAGE_READ_USD_PER_TIB}/TiB)")
        if self.est_seconds is not None:
            lines.append(f"est. time     {self.est_seconds:,.1f} s scoring on {self.workers} core(s)")
        if self.staging:
            lines.append(f"staging       {self.staging}")
        return "\n".join(lines)


def query_cost(bytes_scanned: int, usd_per_tib: float = ON_DEMAND_USD_PER_TIB) -> float:
    return max(bytes_scanned, MIN_BILLED_BYTES) / TIB * usd_per_tib


def read_cost(bytes_read: int, usd_per_tib: float = STORAGE_READ_USD_PER_TIB) -> float:
    return bytes_read / TIB * usd_per_tib


def scoring_seconds(rows: int | None, workers: int, rate: float = DEFAULT_EVENTS_PER_SECOND_PER_CORE) -> float | None:
    if rows is None:
        return None
    return rows / (rate * max(1, workers))


def human_bytes(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{n} B"
        n /= 1024
    return f"{n} B"
