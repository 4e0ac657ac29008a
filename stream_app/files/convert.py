"""The columns read from a file → the typed table the pipeline takes, and the rows skipped.

Key as a trimmed string, time as float64 epoch seconds, values as float64 (NaN = missing),
categorical values as strings (null = missing); a row with a problem is dropped and reported
with its line (or row) number and the reason.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from stream_app.event_fields import EventFields
from stream_app.files.cells import null_or_blank, to_float
from stream_app.files.report import BadRow, ReadReport
from stream_app.files.times import to_epoch_seconds


def convert(columns, lines, bad_lines, fields: EventFields, file: str, unit: str, missing_values):
    """``columns`` (field name → Arrow array, or (array, absent mask) for JSONL key and time), the
    ``lines`` (or row numbers, ``unit``) they came from and the ``bad_lines`` (line, reason) the
    reader already skipped → (typed table of the good rows, ``ReadReport``)."""
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
    key_missing = null_or_blank(key_text)
    flag(key_missing & key_absent, f"missing field {fields.key_field!r}")
    flag(key_missing, f"no key ({fields.key_field!r} is empty)")
    out[fields.key_field] = pc.utf8_trim_whitespace(key_text)

    # time
    col, time_absent = _split_absent(columns[fields.time_field], n)
    times, time_bad = to_epoch_seconds(col, fields.time_unit)
    flag(time_absent, f"missing field {fields.time_field!r}")
    flag(time_bad, lambda i: f"{fields.time_field}: cannot read {_show(col[i])} as a time "
                             f"(ISO 8601 or epoch {fields.time_unit})")
    out[fields.time_field] = fields.model_time_column(times)

    # values
    for name in fields.value_fields:
        col, _ = _split_absent(columns[name], n)
        values, missing, bad = to_float(col)
        flag(bad, lambda i, name=name, col=col: f"{name}: not a finite number: {_show(col[i])}")
        if missing_values == "skip":
            flag(missing, f"{name}: missing value")
        missing_counts[name] = int(missing.sum())
        out[name] = pa.array(values, pa.float64())

    for name in fields.categorical_fields:
        col, _ = _split_absent(columns[name], n)
        text = col if pa.types.is_string(col.type) else pc.cast(col, pa.string())
        text = pc.utf8_trim_whitespace(text)
        blank = null_or_blank(text)
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


def _missing_mask(arr: pa.Array) -> np.ndarray:
    if pa.types.is_floating(arr.type):
        return np.isnan(arr.to_numpy(zero_copy_only=False))
    return arr.is_null().to_numpy(zero_copy_only=False)
