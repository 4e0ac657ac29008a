"""Reading the configured fields out of an Arrow table into the NumPy arrays features use.

No Python work per row: keys and categorical values are dictionary-encoded by Arrow, and only the
distinct values are touched in Python (to hash them). Bad input raises `ValueError` naming the
field (and, for bad rows, the first offending row).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

_UNIT_SECONDS = {"s": 1.0, "ms": 1e-3, "us": 1e-6, "ns": 1e-9}


def stable_hash(values: Sequence) -> np.ndarray:
    """A 63-bit hash of each value's text (str(value), UTF-8) that is the same in every process
    and on every machine (unlike Python's salted hash()): BLAKE2b, 8 bytes, top bit cleared."""
    out = np.empty(len(values), dtype=np.int64)
    for i, v in enumerate(values):
        digest = hashlib.blake2b(str(v).encode("utf-8"), digest_size=8).digest()
        out[i] = int.from_bytes(digest, "little") >> 1
    return out


@dataclass
class EventColumns:
    """The configured fields of a table as arrays, rows in table order.

    keys:       the distinct keys, in order of first appearance (Python objects)
    key_index:  (N,) int64, row -> position in `keys`
    times:      (N,) float64 epoch seconds
    values:     (N, V) float64, NaN where missing
    categories: (N, C) int64 stable hashes, -1 where missing
    """
    keys: list
    key_index: np.ndarray
    times: np.ndarray
    values: np.ndarray
    categories: np.ndarray

    def __len__(self) -> int:
        return self.times.shape[0]


def _column(table: pa.Table, name: str, role: str) -> pa.ChunkedArray:
    if name not in table.column_names:
        raise ValueError(f"the events have no {role} {name!r} (columns: {table.column_names})")
    return table.column(name)


def _first_null_row(col: pa.ChunkedArray) -> int:
    return int(np.flatnonzero(col.is_null().to_numpy(zero_copy_only=False))[0])


def encode_keys(col: pa.ChunkedArray, field: str) -> tuple[list, np.ndarray]:
    """(the distinct keys in order of first appearance, row -> position in them)."""
    if col.null_count:
        raise ValueError(f"key field {field!r} is null at row {_first_null_row(col)}")
    if pa.types.is_dictionary(col.type):
        got = _dictionary_codes(col)
        if got is not None:
            return got
        col = col.cast(col.type.value_type)
    enc = pc.dictionary_encode(col.combine_chunks())
    return enc.dictionary.to_pylist(), enc.indices.to_numpy().astype(np.int64, copy=False)


def _dictionary_codes(col: pa.ChunkedArray) -> tuple[list, np.ndarray] | None:
    """encode_keys of a dictionary column from its codes, without materialising one string
    per row (a backfill shard's keys arrive dictionary-encoded); None when the dictionary
    repeats a value (then two codes would be one key)."""
    if col.num_chunks > 1:
        col = col.unify_dictionaries()
    chunks = col.chunks
    if not chunks:
        return [], np.zeros(0, np.int64)
    dictionary = chunks[0].dictionary
    if pc.count_distinct(dictionary).as_py() != len(dictionary):
        return None
    codes = np.concatenate([c.indices.to_numpy(zero_copy_only=False) for c in chunks])
    # codes in order of first appearance, from the runs of equal codes (one run per key when
    # the rows are grouped by key, as a backfill shard is)
    starts = np.flatnonzero(codes[1:] != codes[:-1]) + 1
    run_codes = codes[np.concatenate([[0], starts])] if len(codes) else codes
    _, first = np.unique(run_codes, return_index=True)
    present = run_codes[np.sort(first)]
    remap = np.empty(len(dictionary), np.int64)
    remap[present] = np.arange(len(present))
    return dictionary.take(pa.array(present)).to_pylist(), remap[codes]


def time_seconds(col: pa.ChunkedArray, field: str, unit: str = "s") -> np.ndarray:
    t = col.type
    if pa.types.is_timestamp(t):
        scale = _UNIT_SECONDS[t.unit]
        ints = col.cast(pa.int64()) if col.num_chunks else pa.array([], pa.int64())
        secs = np.asarray(ints.to_numpy(), dtype=np.float64) * scale if col.null_count == 0 else None
    elif pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t):
        secs = (np.asarray(col.cast(pa.float64()).to_numpy(), dtype=np.float64) * _UNIT_SECONDS[unit]
                if col.null_count == 0 else None)
    else:
        raise ValueError(f"time field {field!r} must be numeric (epoch {unit}) or an Arrow "
                         f"timestamp, not {t}")
    if secs is None:
        raise ValueError(f"time field {field!r} is null at row {_first_null_row(col)}")
    bad = ~np.isfinite(secs)
    if bad.any():
        raise ValueError(f"time field {field!r} is not finite at row {int(np.flatnonzero(bad)[0])}")
    return secs


def numeric_values(table: pa.Table, fields: Sequence[str]) -> np.ndarray:
    out = np.empty((table.num_rows, len(fields)), dtype=np.float64)
    for j, name in enumerate(fields):
        col = _column(table, name, "value field")
        t = col.type
        if not (pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t)
                or pa.types.is_decimal(t) or pa.types.is_null(t)):
            raise ValueError(f"value field {name!r} must be numeric, not {t}")
        out[:, j] = col.cast(pa.float64()).to_numpy()    # nulls become NaN
    return out


def hashed_categories(table: pa.Table, fields: Sequence[str]) -> np.ndarray:
    out = np.full((table.num_rows, len(fields)), -1, dtype=np.int64)
    for j, name in enumerate(fields):
        col = _column(table, name, "categorical field")
        if pa.types.is_dictionary(col.type):
            col = col.cast(col.type.value_type)
        if pa.types.is_floating(col.type):
            # Floats are rarely categories; 1.0 and 1 should not hash differently by accident.
            raise ValueError(f"categorical field {name!r} is {col.type}; use strings or integers")
        enc = pc.dictionary_encode(col.combine_chunks())
        codes = stable_hash(enc.dictionary.to_pylist())
        idx = enc.indices
        valid = ~idx.is_null().to_numpy(zero_copy_only=False)
        out[valid, j] = codes[idx.to_numpy(zero_copy_only=False)[valid].astype(np.int64)]
    return out


def read_columns(table: pa.Table, key_field: str, time_field: str, value_fields: Sequence[str],
                 categorical_fields: Sequence[str] = (), time_unit: str = "s") -> EventColumns:
    if isinstance(table, pa.RecordBatch):
        table = pa.Table.from_batches([table])
    keys, key_index = encode_keys(_column(table, key_field, "key field"), key_field)
    times = time_seconds(_column(table, time_field, "time field"), time_field, time_unit)
    return EventColumns(keys, key_index, times, numeric_values(table, value_fields),
                        hashed_categories(table, categorical_fields))
