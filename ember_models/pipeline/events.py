"""Arrow event tables → the arrays the detector core loops over.

The core runs "batch = keys, loop over time": every key is a row of a [keys, steps] grid and
one time step advances every key that still has events. Keys are ordered by their number of
events, longest first, so the keys active at step t are always a prefix ``[:active[t]]`` and a
step is a slice, never a mask.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc


class EventTableError(ValueError):
    """An events table the pipeline cannot read: names the column and the problem."""


@dataclass
class KeyGrid:
    keys: list[str]            # key of grid row k (longest sequence first)
    lengths: np.ndarray        # [K] events per key
    active: np.ndarray         # [T] number of keys with an event at step t (non-increasing)
    rows: np.ndarray           # [K, T] input row index of (key k, step t); -1 = no event
    order: np.ndarray          # [N] input rows in grid order (key by key, time order inside)

    @property
    def steps(self) -> int:
        return self.rows.shape[1]


def column(table: pa.Table, name: str, role: str) -> pa.ChunkedArray:
    if name not in table.column_names:
        raise EventTableError(f"events table has no {role} column {name!r} "
                              f"(columns: {', '.join(table.column_names)})")
    return table.column(name)


def key_strings(table: pa.Table, key_field: str) -> np.ndarray:
    col = column(table, key_field, "key")
    if col.null_count:
        first = int(np.flatnonzero(col.is_null().to_numpy(zero_copy_only=False))[0])
        raise EventTableError(f"key column {key_field!r} has a null at row {first}")
    if not pa.types.is_string(col.type) and not pa.types.is_large_string(col.type):
        col = pc.cast(col, pa.string())
    return np.asarray(col.to_numpy(zero_copy_only=False), dtype=object)


def epoch_seconds(table: pa.Table, time_field: str) -> np.ndarray:
    """The time column as float64 epoch seconds (numbers are taken as seconds; Arrow
    timestamps of any unit and time zone are converted)."""
    col = column(table, time_field, "time")
    if col.null_count:
        first = int(np.flatnonzero(col.is_null().to_numpy(zero_copy_only=False))[0])
        raise EventTableError(f"time column {time_field!r} has a null at row {first}")
    t = col.type
    if pa.types.is_timestamp(t):
        per_second = {"s": 1.0, "ms": 1e3, "us": 1e6, "ns": 1e9}[t.unit]
        ints = pc.cast(col, pa.int64()).to_numpy(zero_copy_only=False)
        return ints.astype(np.float64) / per_second
    if pa.types.is_date(t):
        return pc.cast(pc.cast(col, pa.timestamp("s")), pa.int64()).to_numpy(
            zero_copy_only=False).astype(np.float64)
    if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t):
        return pc.cast(col, pa.float64()).to_numpy(zero_copy_only=False)
    raise EventTableError(f"time column {time_field!r} has type {t}: expected epoch seconds "
                          "(a number) or an Arrow timestamp")


def value_matrix(table: pa.Table, value_fields) -> np.ndarray:
    """[N, V] float64 of the value fields; nulls become NaN (imputed downstream)."""
    out = np.empty((table.num_rows, len(value_fields)), np.float64)
    for j, name in enumerate(value_fields):
        col = column(table, name, "value")
        if not (pa.types.is_integer(col.type) or pa.types.is_floating(col.type)
                or pa.types.is_decimal(col.type) or pa.types.is_boolean(col.type)):
            raise EventTableError(f"value column {name!r} has type {col.type}: expected numbers")
        out[:, j] = pc.cast(col, pa.float64()).to_numpy(zero_copy_only=False)
    return out


def key_grid(keys: np.ndarray, times: np.ndarray) -> KeyGrid:
    """Group rows by key (first-appearance order breaks ties), keeping each key's input order,
    and check that each key's times do not go backwards."""
    n = len(keys)
    if n == 0:
        return KeyGrid([], np.zeros(0, np.int64), np.zeros(0, np.int64),
                       np.zeros((0, 0), np.int64), np.zeros(0, np.int64))
    uniq, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    counts = np.bincount(inverse, minlength=len(uniq))
    # longest first; among equal lengths, the key seen first in the input
    rank = np.lexsort((first, -counts))
    new_code = np.empty_like(rank)
    new_code[rank] = np.arange(len(rank))
    code = new_code[inverse]
    order = np.lexsort((np.arange(n), code))           # stable: input order within a key
    lengths = counts[rank]
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    pos = np.arange(n) - np.repeat(starts, lengths)
    rows = np.full((len(rank), int(lengths[0])), -1, np.int64)
    rows[code[order], pos] = order
    t_sorted = times[order]
    back = np.flatnonzero((np.diff(t_sorted) < 0) & (code[order][1:] == code[order][:-1]))
    if len(back):
        r = int(order[back[0] + 1])
        raise EventTableError(f"time goes backwards for key {keys[r]!r} at row {r} "
                              f"({t_sorted[back[0]]!r} then {t_sorted[back[0] + 1]!r}): "
                              "each key's events must be in time order")
    active = np.searchsorted(-lengths, -np.arange(int(lengths[0])), side="left")
    return KeyGrid([str(k) for k in uniq[rank]], lengths, active, rows, order)
