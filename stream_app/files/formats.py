"""Which event files ember reads, and the checks that a file can be read at all."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from stream_app.event_fields import EventFields

FORMATS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet", ".jsonl": "jsonl",
           ".ndjson": "jsonl", ".json": "jsonl"}


class EventFileError(ValueError):
    """A file that cannot be read at all (unknown type, missing column, unreadable): names the file."""


def file_format(path) -> str:
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise EventFileError(f"{path}: unknown event file type {suffix!r} "
                             f"(use one of {', '.join(sorted(FORMATS))})")
    return FORMATS[suffix]


def column_index(path, names: Sequence[str], fields: EventFields) -> list[int]:
    """Where each event field is among a file's column ``names`` (in ``fields.columns`` order);
    a missing one is an ``EventFileError`` naming the file, the role and the columns there are."""
    index = []
    for role, name in [("key", fields.key_field), ("time", fields.time_field),
                       *[("value", v) for v in fields.value_fields],
                       *[("categorical", c) for c in fields.categorical_fields]]:
        if name not in names:
            raise EventFileError(f"{path}: no {role} column {name!r} (columns: {', '.join(names)})")
        index.append(list(names).index(name))
    return index
