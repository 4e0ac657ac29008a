"""Arrow IPC batch messages: many events per Kafka message as one Arrow IPC *stream* (a schema
and one or more record batches) with the model's ``[data]`` columns.

JSON costs the worker ~1 µs per event to parse and ~1 µs to check and convert by columns
(docs/performance.md, "Streaming"); an Arrow message arrives as typed columns, so the driver
checks each column with a few vectorised calls and hands the arrays on.

A message is Arrow when it starts with the IPC continuation marker ``FF FF FF FF`` (every IPC
stream written by Arrow ≥ 0.15 does): no JSON text can (0xFF is never UTF-8), so no setting or
header is needed and JSON and Arrow messages can share a topic.

Columns, by the names of the model's ``[data]`` section (others are ignored):

- key: text (``string``, ``large_string``, dictionary of text) or integers (as decimal text,
  like JSON integer keys);
- time: numbers in the model's ``time_unit`` (integers or floats), or an Arrow ``timestamp``
  (any unit; without a zone it is UTC, as in the event-file reader);
- value fields: integers or floats; null = missing (as an absent or null JSON value);
- categorical fields: text (or dictionary of text), null allowed.

A column that is absent (key, time; a value field when ``missing_values = "dead_letter"``) or
of another type is the *message's* fault: one dead letter for the whole message, with its
bytes. A bad value (null key or time, NaN/inf, a time in the future, and the per-key checks of
the driver) is the *row's*: that row is a dead letter (``index`` = its row number, original
bytes = the row alone as a one-row IPC stream of the message's schema) and the other rows are
scored. An absent value or categorical column is missing in every row, as an absent JSON field.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .event_fields import SECONDS_PER_UNIT, EventFields

MAGIC = b"\xff\xff\xff\xff"


class ArrowMessageError(ValueError):
    """The whole message cannot be used: ``reason`` (a dead-letter code) and ``detail``."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def is_arrow(raw: bytes) -> bool:
    return raw[:4] == MAGIC


@dataclass
class ArrowColumns:
    """One message's events as typed columns (nulls kept, nothing checked per row yet)."""

    table: pa.Table            # the message as read (for one-row dead-letter copies)
    keys: pa.Array             # string
    times: np.ndarray          # float64 epoch seconds, NaN where null
    times_valid: np.ndarray    # bool
    values: list[np.ndarray]   # float64 per value field, NaN where null
    values_valid: list[np.ndarray]
    categories: list[pa.Array]  # string per categorical field

    def __len__(self) -> int:
        return len(self.keys)


# Decoded buffers may exceed the message (IPC body compression) by at most this factor.
MAX_EXPANSION = 64


def read_message(raw: bytes, max_bytes: int = 1 << 20) -> pa.Table:
    """The table of an IPC stream message, fully validated. ``max_bytes`` (the payload limit)
    also bounds the rows (at most one per byte) and the decoded size (``MAX_EXPANSION``×): a
    small message cannot declare a billion rows of null columns, or a compressed body that
    decodes to gigabytes, for the checks that follow to allocate."""
    try:
        with pa.ipc.open_stream(pa.py_buffer(raw)) as reader:
            table = reader.read_all()
        # The IPC reader checks the framing, not the data: corrupt offsets or lengths would
        # make later reads touch memory outside the message (a crash, not a dead letter).
        table.validate(full=True)
        _ = table.column_names  # field names must be UTF-8 too
    except (pa.ArrowException, ValueError, OSError) as exc:  # UnicodeDecodeError is a ValueError
        raise ArrowMessageError("bad_arrow", f"not an Arrow IPC stream: {exc}") from None
    if table.num_rows == 0:
        raise ArrowMessageError("empty", "Arrow batch message has no rows")
    if table.num_rows > max_bytes or table.nbytes > MAX_EXPANSION * max_bytes:
        raise ArrowMessageError("too_large", f"Arrow message of {len(raw)} bytes holds {table.num_rows} "
                                f"rows, {table.nbytes} bytes decoded (limits {max_bytes} rows, "
                                f"{MAX_EXPANSION * max_bytes} bytes)")
    return table


def _column(table: pa.Table, name: str) -> pa.Array | None:
    if name not in table.column_names:
        return None
    idx = table.schema.get_all_field_indices(name)
    if len(idx) > 1:
        raise ArrowMessageError("wrong_type", f"column {name!r} appears {len(idx)} times")
    col = table.column(idx[0])
    return col.combine_chunks() if col.num_chunks != 1 else col.chunk(0)


# A column of only nulls has Arrow's ``null`` type (what a writer infers from no values): it
# fits every kind of column, and its rows are missing.
def _is_text(ty: pa.DataType) -> bool:
    if pa.types.is_dictionary(ty):
        ty = ty.value_type
    return pa.types.is_string(ty) or pa.types.is_large_string(ty) or pa.types.is_null(ty)


def _is_number(ty: pa.DataType) -> bool:
    return pa.types.is_integer(ty) or pa.types.is_floating(ty) or pa.types.is_null(ty)


def _floats(col: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """float64 values (NaN where null) and the validity mask."""
    f = pc.cast(col, pa.float64()) if col.type != pa.float64() else col
    arr = f.to_numpy(zero_copy_only=False)
    if f.null_count == 0:
        return arr, np.ones(len(arr), bool)
    return arr, f.is_valid().to_numpy(zero_copy_only=False)


def columns(table: pa.Table, fields: EventFields, missing_values: str = "impute") -> ArrowColumns:
    """The model's columns of ``table``, typed; :class:`ArrowMessageError` for an absent or
    mistyped column."""
    n = table.num_rows
    key = _column(table, fields.key_field)
    if key is None:
        raise ArrowMessageError("missing_field", f"key column {fields.key_field!r} is absent")
    if _is_text(key.type) or pa.types.is_integer(key.type):
        keys = pc.cast(key, pa.string()) if key.type != pa.string() else key
    else:
        raise ArrowMessageError("wrong_type", f"key column {fields.key_field!r} must be text or "
                                f"integers, got {key.type}")
    t = _column(table, fields.time_field)
    if t is None:
        raise ArrowMessageError("missing_field", f"time column {fields.time_field!r} is absent")
    if pa.types.is_timestamp(t.type):
        ticks = pc.cast(t, pa.int64()).to_numpy(zero_copy_only=False).astype(np.float64)
        times = ticks * SECONDS_PER_UNIT[t.type.unit]
        valid = np.ones(n, bool) if t.null_count == 0 else t.is_valid().to_numpy(zero_copy_only=False)
        times[~valid] = np.nan
    elif _is_number(t.type):
        times, valid = _floats(t)
        times = times * SECONDS_PER_UNIT[fields.time_unit]
    else:
        raise ArrowMessageError("wrong_type", f"time column {fields.time_field!r} must be numbers "
                                f"(in {fields.time_unit}) or a timestamp, got {t.type}")
    values, values_valid = [], []
    for name in fields.value_fields:
        col = _column(table, name)
        if col is None:
            if missing_values != "impute":
                raise ArrowMessageError("missing_field", f"value column {name!r} is absent")
            values.append(np.full(n, np.nan))
            values_valid.append(np.zeros(n, bool))
            continue
        if not _is_number(col.type):
            raise ArrowMessageError("wrong_type", f"value column {name!r} must be numbers, got {col.type}")
        arr, ok = _floats(col)
        values.append(arr)
        values_valid.append(ok)
    categories = []
    for name in fields.categorical_fields:
        col = _column(table, name)
        if col is None:
            categories.append(pa.nulls(n, pa.string()))
        elif _is_text(col.type):
            categories.append(pc.cast(col, pa.string()) if col.type != pa.string() else col)
        else:
            raise ArrowMessageError("wrong_type", f"categorical column {name!r} must be text, got {col.type}")
    return ArrowColumns(table, keys, times, valid, values, values_valid, categories)


def row_bytes(table: pa.Table, index: int) -> bytes:
    """Row ``index`` of ``table`` alone, as a one-row IPC stream (a row's dead-letter copy)."""
    return encode_table(table.slice(index, 1))


def encode_table(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def encode_rows(rows: list[dict], schema: pa.Schema | None = None) -> bytes:
    """Events (dicts, ``None`` = null) as one Arrow IPC stream message; ``schema`` fixes the
    column types (else Arrow infers them from the values)."""
    return encode_table(pa.Table.from_pylist(rows, schema=schema))
