"""Writing event (or score) tables to Parquet, CSV or JSON Lines files."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from stream_app.files.formats import file_format


def epoch_to_iso(times) -> pa.Array:
    """Float epoch seconds -> ISO 8601 UTC strings with milliseconds ("2024-03-04T00:00:00.123Z")."""
    ms = pc.cast(pc.round(pc.multiply(times, 1000.0)), pa.int64())
    return pc.strftime(pc.cast(ms, pa.timestamp("ms", tz="UTC")), format="%Y-%m-%dT%H:%M:%SZ")


def write_events(table: pa.Table, path, time_field: str | None = "time") -> Path:
    """Write ``table`` to ``path`` in the format its suffix names (.parquet, .csv, .jsonl).

    Parquet keeps the time column as it is; CSV and JSONL write a float time column as ISO 8601
    UTC strings, the form people expect to read in a text file."""
    path = Path(path)
    fmt = file_format(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "parquet":
        pq.write_table(table, path)
        return path
    if time_field is not None and time_field in table.column_names \
            and pa.types.is_floating(table.schema.field(time_field).type):
        i = table.column_names.index(time_field)
        table = table.set_column(i, time_field, epoch_to_iso(table.column(time_field)))
    if fmt == "csv":
        pacsv.write_csv(table, path)
    else:
        with path.open("w", encoding="utf-8") as f:
            for row in table.to_pylist():
                f.write(json.dumps(row, allow_nan=True) + "\n")
    return path
