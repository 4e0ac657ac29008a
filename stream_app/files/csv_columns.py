"""CSV files → the event fields' columns (strings) and each row's line number.

Arrow's reader for clean files; Python's csv module, line by line, for the others (ragged lines,
quoted newlines), which knows every row's line exactly.
"""

from __future__ import annotations

import csv
from dataclasses import replace
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from stream_app.event_fields import EventFields
from stream_app.files.formats import EventFileError, column_index
from stream_app.files.report import ReadReport


def csv_columns_fast(path: Path, fields: EventFields):
    """Arrow's CSV reader (~15x faster than Python's csv module) for files with nothing wrong
    in them. Returns None when Arrow cannot read the file as one clean table (a ragged line, a
    quoted newline, a header with padded names); the caller then takes the line-by-line path,
    which also handles a clean read whose values turn out malformed. Line numbers from here
    are only right when no line is blank, so they are never shown: a report with skipped rows
    gets its lines from ``name_csv_lines``, or is redone line by line."""
    with path.open("r", encoding="utf-8", newline="") as f:
        try:
            header = next(csv.reader(f))
        except (StopIteration, csv.Error):
            return None
    column_index(path, [h.strip() for h in header], fields)
    if any(h != h.strip() for h in header) or len(set(header)) != len(header):
        return None
    try:
        table = pacsv.read_csv(
            path,
            parse_options=pacsv.ParseOptions(newlines_in_values=False),
            convert_options=pacsv.ConvertOptions(
                include_columns=list(fields.columns),
                column_types={c: pa.string() for c in fields.columns},
                strings_can_be_null=False, quoted_strings_can_be_null=False))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, UnicodeDecodeError):
        return None
    columns = {name: table.column(name).combine_chunks() for name in fields.columns}
    return columns, np.arange(2, table.num_rows + 2, dtype=np.int64), []


def _nonblank_line_numbers(path: Path) -> np.ndarray:
    """Line numbers (1-based) of the non-empty lines after the header: where Arrow's rows come
    from when it read the file without error (one row per line, empty lines skipped)."""
    data = path.read_bytes().split(b"\n")
    if data and data[-1] == b"":
        data.pop()
    return np.asarray([i + 1 for i, line in enumerate(data) if i > 0 and line not in (b"", b"\r")], np.int64)


def name_csv_lines(path: Path, report: ReadReport, rows: int) -> bool:
    """Give the skipped rows of a fast read (``csv_columns_fast``) their real line numbers
    (Arrow skipped blank lines); False when the lines cannot be matched to the rows."""
    lines = _nonblank_line_numbers(path)
    if len(lines) != rows:
        return False
    report.bad_rows = [replace(b, line=int(lines[b.line - 2])) for b in report.bad_rows]
    return True


def csv_columns(path: Path, fields: EventFields):
    """Python's csv module rather than Arrow's reader: it knows each row's line number exactly
    (quoted newlines included), and lets a ragged line be reported and skipped."""
    bad: list[tuple[int, str]] = []
    with path.open("r", encoding="utf-8", newline="") as f:
        reader = csv.reader(f)
        try:
            header = next(reader)
        except StopIteration:
            raise EventFileError(f"{path}: empty file (expected a header line)") from None
        except csv.Error as err:
            raise EventFileError(f"{path}:1: cannot read the header: {err}") from None
        header = [h.strip() for h in header]
        index = column_index(path, header, fields)
        width = len(header)
        cells: list[list[str]] = [[] for _ in index]
        lines: list[int] = []
        prev_end = reader.line_num
        while True:
            start = prev_end + 1
            try:
                row = next(reader)
            except StopIteration:
                break
            except csv.Error as err:
                bad.append((start, f"unreadable CSV: {err}"))
                prev_end = reader.line_num
                continue
            prev_end = reader.line_num
            if not row or (len(row) == 1 and not row[0].strip()):
                continue                       # a blank line is not a row
            if len(row) != width:
                bad.append((start, f"expected {width} fields, found {len(row)} (ragged line)"))
                continue
            lines.append(start)
            for out, i in zip(cells, index):
                out.append(row[i])
    columns = {name: pa.array(vals, pa.string()) for name, vals in zip(fields.columns, cells)}
    return columns, np.asarray(lines, np.int64), bad
