"""Reading event files: each format's columns, converted and checked the same way."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
import pyarrow as pa

from stream_app.event_fields import EventFields
from stream_app.files.convert import convert
from stream_app.files.csv_columns import csv_columns, csv_columns_fast, name_csv_lines
from stream_app.files.formats import EventFileError, column_index, file_format
from stream_app.files.jsonl_columns import jsonl_columns, jsonl_columns_fast
from stream_app.files.parquet_columns import parquet_columns
from stream_app.files.report import ReadReport


def read_events(paths, fields: EventFields, missing_values: Literal["keep", "skip"] = "keep"
                ) -> tuple[pa.Table, ReadReport]:
    """Read one file or several (concatenated in the order given); see the module docstring."""
    if isinstance(paths, (str, Path)):
        paths = [paths]
    if not paths:
        raise EventFileError("no event files given")
    if missing_values not in ("keep", "skip"):
        raise ValueError(f"missing_values must be 'keep' or 'skip', got {missing_values!r}")
    tables, report = [], ReadReport()
    for path in paths:
        table, one = _read_one(Path(path), fields, missing_values)
        tables.append(table)
        report.merge(one)
    return (tables[0] if len(tables) == 1 else pa.concat_tables(tables)), report


def events_from_table(table: pa.Table, fields: EventFields, name: str,
                      missing_values: Literal["keep", "skip"] = "keep") -> tuple[pa.Table, ReadReport]:
    """An in-memory table (e.g. read from BigQuery) checked and typed like a Parquet file:
    malformed rows are skipped and reported by row number under ``name``."""
    column_index(name, table.column_names, fields)
    columns = {c: table.column(c).combine_chunks() for c in fields.columns}
    return convert(columns, np.arange(1, table.num_rows + 1, dtype=np.int64), [], fields, name, "row",
                   missing_values)


# Per format: Arrow's reader for clean files (None when it cannot read the file), the exact
# line-by-line reader, and how a fast read's skipped rows get their line numbers (if they can).
_LINE_READERS = {
    "csv": (csv_columns_fast, csv_columns, name_csv_lines),
    "jsonl": (jsonl_columns_fast, jsonl_columns, None),
}


def _read_one(path: Path, fields: EventFields, missing_values) -> tuple[pa.Table, ReadReport]:
    fmt = file_format(path)
    if not path.is_file():
        raise EventFileError(f"{path}: no such file")
    if fmt == "parquet":
        return convert(*parquet_columns(path, fields), fields, str(path), "row", missing_values)
    fast_columns, exact_columns, name_lines = _LINE_READERS[fmt]
    fast = fast_columns(path, fields)
    if fast is not None:
        table, report = convert(*fast, fields, str(path), "line", missing_values)
        if report.rows_skipped == 0 or (name_lines is not None and name_lines(path, report, len(fast[1]))):
            return table, report
    # Arrow could not read it (ragged lines, quoted newlines, ...) or the skipped rows need their
    # lines: line by line.
    return convert(*exact_columns(path, fields), fields, str(path), "line", missing_values)
