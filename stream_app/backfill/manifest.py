"""Which shards of a run are done, so that a stopped backfill resumes where it was.

``LocalManifest`` (``--local``): one JSON line per finished shard in ``<dir>/<run_id>.jsonl``,
appended and fsynced after the shard's sink write. A line cut short by a crash is ignored
(that shard simply runs again, and its idempotent sink write replaces what it wrote).
The distributed runner keeps the same records in a compacted Kafka topic (``distributed.py``).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any, Protocol


class Manifest(Protocol):
    def done(self, run_id: str) -> dict[int, dict[str, Any]]: ...

    def mark(self, run_id: str, shard: int, record: dict[str, Any]) -> None: ...


class LocalManifest:
    def __init__(self, directory: str | os.PathLike = "var/backfill") -> None:
        self.directory = Path(directory)

    def path(self, run_id: str) -> Path:
        return self.directory / f"{run_id}.jsonl"

    def done(self, run_id: str) -> dict[int, dict[str, Any]]:
        path = self.path(run_id)
        if not path.exists():
            return {}
        out: dict[int, dict[str, Any]] = {}
        for line in path.read_text().splitlines():
            try:
                rec = json.loads(line)
                out[int(rec["shard"])] = rec
            except (ValueError, KeyError, TypeError):
                continue  # a partial last line from a crash
        return out

    def mark(self, run_id: str, shard: int, record: dict[str, Any]) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        line = json.dumps({"shard": shard, "at": time.time(), **record}) + "\n"
        with open(self.path(run_id), "a", encoding="utf-8") as f:
            f.write(line)
            f.flush()
            os.fsync(f.fileno())

    def forget(self, run_id: str) -> None:
        self.path(run_id).unlink(missing_ok=True)
