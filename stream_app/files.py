"""Event files in and out: CSV, Parquet and JSON Lines.

``read_events(path, fields)`` returns an Arrow table the pipeline can take — the key as a string,
the time as float64 epoch seconds, the value fields as float64, the categorical fields as
strings — and a ``ReadReport``. A malformed row is skipped and reported with the file name and
its line number (CSV, JSONL) or row number (Parquet); every other row is kept. Malformed means:

- a ragged CSV line (more or fewer fields than the header) or a JSONL line that is not a JSON object;
- no key (absent, empty or null);
- no time, or a time that is neither ISO 8601 (``2024-03-04T05:06:07.123Z``, ``2024-03-04 05:06:07``,
  ``+02:00`` offsets; no offset = UTC) nor a finite epoch number (unit: ``time_unit``);
- a value field holding something that is not a number (``abc``, ``12,5``, ``true``) or ±inf.

A *missing* value (empty CSV cell, JSON null or absent, NaN) is not malformed: the pipeline
imputes missing values, so the row is kept with NaN and the report counts it per field — unless
``missing_values="skip"``, where such a row is skipped and reported like a malformed one.
Missing categorical values are kept as null. Columns the fields do not name are not read.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable, Literal, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from stream_app.event_fields import UNITS_PER_SECOND, EventFields, epoch_seconds

FORMATS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet", ".jsonl": "jsonl",
           ".ndjson": "jsonl", ".json": "jsonl"}


class EventFileError(ValueError):
    """A file that cannot be read at all (unknown type, missing column, unreadable): names the file."""


@dataclass(frozen=True)
class BadRow:
    """One skipped row: where it is and why."""

    file: str
    line: int            # 1-based line number (CSV, JSONL; the CSV header is line 1) or row number (Parquet)
    reason: str
    unit: str = "line"   # "line" or "row"

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.reason}" if self.unit == "line" else \
            f"{self.file} row {self.line}: {self.reason}"


@dataclass
class ReadReport:
    """What reading one or more event files found."""

    files: list[str] = field(default_factory=list)
    rows_read: int = 0                                   # data rows seen (malformed ones included)
    rows_kept: int = 0
    bad_rows: list[BadRow] = field(default_factory=list)
    missing_values: dict[str, int] = field(default_factory=dict)   # kept rows with a missing value, per field

    @property
    def rows_skipped(self) -> int:
        return len(self.bad_rows)

    def merge(self, other: "ReadReport") -> "ReadReport":
        self.files += other.files
        self.rows_read += other.rows_read
        self.rows_kept += other.rows_kept
        self.bad_rows += other.bad_rows
        for name, n in other.missing_values.items():
            self.missing_values[name] = self.missing_values.get(name, 0) + n
        return self

    def summary(self, max_rows: int = 20) -> str:
        """A few lines for a person: counts, then the skipped rows (the first ``max_rows``)."""
        lines = [f"read {self.rows_read} rows from {len(self.files)} file(s): {self.rows_kept} kept, "
                 f"{self.rows_skipped} skipped"]
        missing = {k: v for k, v in self.missing_values.items() if v}
        if missing:
            lines.append("missing values kept (imputed by the model): "
                         + ", ".join(f"{k}: {v}" for k, v in missing.items()))
        for bad in self.bad_rows[:max_rows]:
            lines.append(f"  skipped {bad}")
        if self.rows_skipped > max_rows:
            lines.append(f"  ... and {self.rows_skipped - max_rows} more skipped rows")
        return "\n".join(lines)

    def bad_rows_table(self) -> pa.Table:
        return pa.table({"file": [b.file for b in self.bad_rows], "line": [b.line for b in self.bad_rows],
                         "unit": [b.unit for b in self.bad_rows], "reason": [b.reason for b in self.bad_rows]})


def file_format(path) -> str:
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise EventFileError(f"{path}: unknown event file type {suffix!r} "
                             f"(use one of {', '.join(sorted(FORMATS))})")
    return FORMATS[suffix]


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
    _column_index(name, table.column_names, fields)
    columns = {c: table.column(c).combine_chunks() for c in fields.columns}
    return _convert(columns, np.arange(1, table.num_rows + 1, dtype=np.int64), [], fields, name, "row",
                    missing_values)


def _read_one(path: Path, fields: EventFields, missing_values) -> tuple[pa.Table, ReadReport]:
    fmt = file_format(path)
    if not path.is_file():
        raise EventFileError(f"{path}: no such file")
    if fmt == "csv":
        fast = _csv_columns_fast(path, fields)
        if fast is not None:
            table, report = _convert(*fast, fields, str(path), "line", missing_values)
            if report.rows_skipped == 0:
                return table, report
            # Some values are malformed: find each row's line (Arrow skipped blank lines).
            lines = _nonblank_line_numbers(path)
            if len(lines) == len(fast[1]):
                report.bad_rows = [replace(b, line=int(lines[b.line - 2])) for b in report.bad_rows]
                return table, report
        # Arrow could not read it (ragged lines, quoted newlines): line by line, Python's csv.
        columns, lines, bad = _csv_columns(path, fields)
        unit = "line"
    elif fmt == "jsonl":
        fast = _jsonl_columns_fast(path, fields)
        if fast is not None:
            table, report = _convert(*fast, fields, str(path), "line", missing_values)
            if report.rows_skipped == 0:
                return table, report
        columns, lines, bad = _jsonl_columns(path, fields)
        unit = "line"
    else:
        columns, lines, bad = _parquet_columns(path, fields)
        unit = "row"
    table, report = _convert(columns, lines, bad, fields, str(path), unit, missing_values)
    return table, report


# ---- sources → columns (pyarrow arrays, any type) + a line/row number per row ---------------------

def _csv_columns_fast(path: Path, fields: EventFields):
    """Arrow's CSV reader (~15x faster than Python's csv module) for files with nothing wrong
    in them. Returns None when Arrow cannot read the file as one clean table (a ragged line, a
    quoted newline, a header with padded names); the caller then takes the line-by-line path,
    which also handles a clean read whose values turn out malformed. Line numbers from here
    are only right when no line is blank, so they are never shown: a report with skipped rows
    is always redone line by line."""
    with path.open("r", encoding="utf-8", newline="") as f:
        try:
            header = next(csv.reader(f))
        except (StopIteration, csv.Error):
            return None
    _column_index(path, [h.strip() for h in header], fields)
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


def _csv_columns(path: Path, fields: EventFields):
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
        index = _column_index(path, header, fields)
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


def _jsonl_columns_fast(path: Path, fields: EventFields):
    """Arrow's JSON reader for files with nothing wrong in them (~10x Python's json per line).
    None when it cannot read the file, a field is absent from every object, or a value field
    came out boolean or nested (which the line-by-line reader reports as malformed); a clean
    read with malformed values is redone line by line by the caller, to name the lines."""
    import pyarrow.json as pajson

    try:
        table = pajson.read_json(path)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, UnicodeDecodeError):
        return None
    if any(name not in table.column_names for name in fields.columns):
        return None
    columns = {name: table.column(name).combine_chunks() for name in fields.columns}
    if any(pa.types.is_nested(c.type) for c in columns.values()) or any(
            pa.types.is_boolean(columns[v].type) for v in fields.value_fields):
        return None
    return columns, np.arange(1, table.num_rows + 1, dtype=np.int64), []


def _jsonl_columns(path: Path, fields: EventFields):
    bad: list[tuple[int, str]] = []
    cells: dict[str, list] = {name: [] for name in fields.columns}
    absent: dict[str, list] = {name: [] for name in fields.columns}
    lines: list[int] = []
    with path.open("r", encoding="utf-8") as f:
        for number, text in enumerate(f, start=1):
            if not text.strip():
                continue
            try:
                obj = json.loads(text.rstrip("\r\n"))
            except json.JSONDecodeError as err:
                bad.append((number, f"not valid JSON: {err.msg} at column {err.colno}"))
                continue
            if not isinstance(obj, dict):
                bad.append((number, f"expected a JSON object, found {type(obj).__name__}"))
                continue
            lines.append(number)
            for name in fields.columns:
                value = obj.get(name)
                absent[name].append(name not in obj)
                # Everything to JSON text (numbers exactly) so one converter handles CSV and JSONL;
                # a bool becomes "true", which no number parser accepts: a JSON true is no number.
                cells[name].append(None if value is None else
                                   value if isinstance(value, str) else json.dumps(value))
    columns = {name: pa.array(vals, pa.string()) for name, vals in cells.items()}
    # Key and time absent from the object: say "missing field", not just "missing".
    for name in (fields.key_field, fields.time_field):
        columns[name] = (columns[name], np.asarray(absent[name], bool))
    return columns, np.asarray(lines, np.int64), bad


def _parquet_columns(path: Path, fields: EventFields):
    try:
        schema = pq.read_schema(path)
    except Exception as err:  # noqa: BLE001 - pyarrow raises several types for a bad file
        raise EventFileError(f"{path}: not a readable Parquet file: {err}") from None
    _column_index(path, schema.names, fields)
    table = pq.read_table(path, columns=list(fields.columns))
    columns = {name: table.column(name).combine_chunks() for name in fields.columns}
    return columns, np.arange(1, table.num_rows + 1, dtype=np.int64), []


def _column_index(path, names: Sequence[str], fields: EventFields) -> list[int]:
    index = []
    for role, name in [("key", fields.key_field), ("time", fields.time_field),
                       *[("value", v) for v in fields.value_fields],
                       *[("categorical", c) for c in fields.categorical_fields]]:
        if name not in names:
            raise EventFileError(f"{path}: no {role} column {name!r} (columns: {', '.join(names)})")
        index.append(list(names).index(name))
    return index


# ---- columns → typed columns, row problems ---------------------------------------------------------

def _convert(columns, lines, bad_lines, fields: EventFields, file: str, unit: str, missing_values):
    n = len(lines)
    reasons: list[str | None] = [None] * n

    def flag(mask: np.ndarray, why) -> None:
        for i in np.flatnonzero(mask):
            if reasons[i] is None:
                reasons[i] = why(i) if callable(why) else why

    out: dict[str, pa.Array] = {}
    missing_counts: dict[str, int] = {}

    # key
    key, key_absent = _split_absent(columns[fields.key_field], n)
    key_text = key if pa.types.is_string(key.type) else pc.cast(key, pa.string())
    key_missing = _null_or_blank(key_text)
    flag(key_missing & key_absent, f"missing field {fields.key_field!r}")
    flag(key_missing, f"no key ({fields.key_field!r} is empty)")
    out[fields.key_field] = pc.utf8_trim_whitespace(key_text)

    # time
    col, time_absent = _split_absent(columns[fields.time_field], n)
    times, time_bad = _to_epoch_seconds(col, fields.time_unit)
    flag(time_absent, f"missing field {fields.time_field!r}")
    flag(time_bad, lambda i: f"{fields.time_field}: cannot read {_show(col[i])} as a time "
                             f"(ISO 8601 or epoch {fields.time_unit})")
    out[fields.time_field] = pa.array(times, pa.float64())

    # values
    for name in fields.value_fields:
        col, _ = _split_absent(columns[name], n)
        values, missing, bad = _to_float(col)
        flag(bad, lambda i, name=name, col=col: f"{name}: not a finite number: {_show(col[i])}")
        if missing_values == "skip":
            flag(missing, f"{name}: missing value")
        missing_counts[name] = int(missing.sum())
        out[name] = pa.array(values, pa.float64())

    for name in fields.categorical_fields:
        col, _ = _split_absent(columns[name], n)
        text = col if pa.types.is_string(col.type) else pc.cast(col, pa.string())
        text = pc.utf8_trim_whitespace(text)
        blank = _null_or_blank(text)
        missing_counts[name] = int(blank.sum())
        out[name] = pc.if_else(pa.array(blank), pa.scalar(None, pa.string()), text)

    ok = np.asarray([r is None for r in reasons], bool)
    table = pa.table(out).filter(pa.array(ok)) if n else pa.table(
        {name: pa.array([], arr.type) for name, arr in out.items()})
    bad = [BadRow(file, int(line), why, unit) for line, why in bad_lines]
    bad += [BadRow(file, int(lines[i]), reasons[i], unit) for i in np.flatnonzero(~ok)]
    bad.sort(key=lambda b: b.line)
    if ok.size:
        missing_counts = {name: int(np.sum(_missing_mask(out[name]) & ok)) for name in missing_counts}
    report = ReadReport(files=[file], rows_read=n + len(bad_lines), rows_kept=int(ok.sum()),
                        bad_rows=bad, missing_values=missing_counts)
    return table, report


def _split_absent(col, n):
    if isinstance(col, tuple):
        return col
    return col, np.zeros(n, bool)


def _show(scalar) -> str:
    value = scalar.as_py() if isinstance(scalar, pa.Scalar) else scalar
    if value is None:
        return "an empty value"
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "...'"


def _null_or_blank(text: pa.Array) -> np.ndarray:
    blank = pc.equal(pc.utf8_length(pc.utf8_trim_whitespace(text)), 0)
    return pc.fill_null(blank, True).to_numpy(zero_copy_only=False).astype(bool)


def _missing_mask(arr: pa.Array) -> np.ndarray:
    if pa.types.is_floating(arr.type):
        return np.isnan(arr.to_numpy(zero_copy_only=False))
    return arr.is_null().to_numpy(zero_copy_only=False)


def _to_float(col: pa.Array) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(values with NaN where missing, missing mask, malformed mask)."""
    t = col.type
    if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t):
        values = pc.cast(col, pa.float64()).to_numpy(zero_copy_only=False).astype(np.float64)
        missing = np.isnan(values)
        return values, missing, np.isinf(values)
    if pa.types.is_boolean(t) or pa.types.is_null(t):
        values = pc.cast(col, pa.float64()).to_numpy(zero_copy_only=False).astype(np.float64)
        return values, np.isnan(values), np.zeros(len(values), bool)
    text = col if pa.types.is_string(t) else pc.cast(col, pa.string())
    text = pc.utf8_trim_whitespace(text)
    missing = _null_or_blank(text)

    def all_at_once(block: pa.Array, blank: np.ndarray) -> np.ndarray:
        return pc.cast(pc.if_else(pa.array(blank), pa.scalar("nan"), block), pa.float64()
                       ).to_numpy(zero_copy_only=False).astype(np.float64)

    values = _parse_in_blocks(text, missing, all_at_once, _float_or_nan)
    bad = np.isinf(values) | (np.isnan(values) & ~missing & ~_is_nan_text(text))
    missing = missing | (np.isnan(values) & ~bad)
    return values, missing, bad


def _is_nan_text(text: pa.Array) -> np.ndarray:
    """Cells that spell NaN (a missing value, as pandas and others write it), not garbage."""
    spelled = pc.is_in(pc.utf8_lower(text), value_set=pa.array(["nan", "-nan", "+nan"]))
    return pc.fill_null(spelled, False).to_numpy(zero_copy_only=False).astype(bool)


def _parse_in_blocks(text: pa.Array, blank: np.ndarray, all_at_once, one, block: int = 1024) -> np.ndarray:
    """Parse a string column with Arrow all at once; when a cell defeats that, retry block by
    block and parse only the failing blocks cell by cell (``one(cell)`` → float, NaN = bad), so a
    few malformed rows in a big file cost a few blocks, not the whole column in Python."""
    try:
        return all_at_once(text, blank)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    out = np.full(len(text), np.nan)
    for lo in range(0, len(text), block):
        part, part_blank = text.slice(lo, block), blank[lo:lo + block]
        try:
            out[lo:lo + len(part)] = all_at_once(part, part_blank)
            continue
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            pass
        for i, cell in enumerate(part.to_pylist()):
            if not part_blank[i]:
                out[lo + i] = one(cell)
    return out


def _to_epoch_seconds(col: pa.Array, time_unit: str) -> tuple[np.ndarray, np.ndarray]:
    """(float64 epoch seconds, malformed mask). Numbers are in ``time_unit``; strings are ISO 8601
    or numbers; an ISO time without an offset is UTC."""
    t = col.type
    if pa.types.is_timestamp(t):
        nulls = col.is_null().to_numpy(zero_copy_only=False)
        ints = pc.fill_null(pc.cast(col, pa.int64()), 0).to_numpy(zero_copy_only=False)
        return np.where(nulls, np.nan, _int_ticks_to_seconds(ints, t.unit)), nulls
    if pa.types.is_date(t):
        secs = pc.cast(pc.cast(col, pa.timestamp("s")), pa.int64()).to_numpy(zero_copy_only=False)
        return np.asarray(secs, np.float64), col.is_null().to_numpy(zero_copy_only=False)
    if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t):
        secs = epoch_seconds(pc.cast(col, pa.float64()).to_numpy(zero_copy_only=False), time_unit)
        return secs, ~np.isfinite(secs)
    text = col if pa.types.is_string(t) else pc.cast(col, pa.string())
    text = pc.utf8_trim_whitespace(text)
    blank = _null_or_blank(text)
    first = next((v for v in text.to_pylist()[:1000] if v), "")
    numbers_first = not math.isnan(_float_or_nan(first))

    def all_at_once(block: pa.Array, blank: np.ndarray) -> np.ndarray:
        # The common cases: all numbers; all ISO with an offset; all ISO without one.
        if numbers_first:
            try:
                secs = pc.cast(pc.if_else(pa.array(blank), pa.scalar("nan"), block), pa.float64())
                return epoch_seconds(secs.to_numpy(zero_copy_only=False), time_unit)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                pass
        filled = pc.if_else(pa.array(blank), pa.scalar("1970-01-01T00:00:00Z"), block)
        for ty in (pa.timestamp("ns", tz="UTC"), pa.timestamp("ns")):
            try:
                ns = pc.cast(pc.cast(filled, ty), pa.int64()).to_numpy(zero_copy_only=False)
                return np.where(blank, np.nan, _int_ticks_to_seconds(ns, "ns"))
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                continue
        raise pa.ArrowInvalid("no one form fits the whole block")

    secs = _parse_in_blocks(text, blank, all_at_once, lambda cell: _one_time(cell, time_unit))
    return secs, blank | ~np.isfinite(secs)


def _int_ticks_to_seconds(ticks: np.ndarray, unit: str) -> np.ndarray:
    """Integer ticks → float seconds, whole seconds and fraction apart: ns counts exceed 2**53,
    so ``ticks / 1e9`` would land an ulp away from the decimal the file wrote (…249.2649999)."""
    per = UNITS_PER_SECOND[unit]
    ticks = np.asarray(ticks, np.int64)
    whole, frac = np.divmod(ticks, per)
    return whole.astype(np.float64) + frac.astype(np.float64) / per


def _float_or_nan(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return math.nan


def _one_time(text: str, time_unit: str) -> float:
    try:
        return epoch_seconds(float(text), time_unit)
    except ValueError:
        pass
    try:
        stamp = datetime.fromisoformat(text)
    except ValueError:
        return math.nan
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=timezone.utc)
    return stamp.timestamp()


# ---- ordering -----------------------------------------------------------------------------------

def in_key_time_order(table: pa.Table, fields: EventFields) -> bool:
    """Whether each key's rows are in time order (what the pipeline needs)."""
    if table.num_rows < 2:
        return True
    keys = table.column(fields.key_field).to_numpy(zero_copy_only=False)
    times = table.column(fields.time_field).to_numpy()
    _, code = np.unique(keys, return_inverse=True)
    order = np.lexsort((np.arange(len(code)), code))
    same_key = code[order][1:] == code[order][:-1]
    return not np.any(same_key & (np.diff(times[order]) < 0))


def time_ordered(table: pa.Table, fields: EventFields) -> pa.Table:
    """The rows in time order (stable: equal times keep their file order), as a stream would
    deliver them; returned unchanged when each key is already in time order."""
    if in_key_time_order(table, fields):
        return table
    order = np.argsort(table.column(fields.time_field).to_numpy(), kind="stable")
    return table.take(pa.array(order))


# ---- writing ------------------------------------------------------------------------------------

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
