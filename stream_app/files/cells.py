"""Columns of text cells → numbers: Arrow parses a whole column at once, and only the blocks
holding a cell it cannot parse go cell by cell through Python."""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc


def null_or_blank(text: pa.Array) -> np.ndarray:
    blank = pc.equal(pc.utf8_length(pc.utf8_trim_whitespace(text)), 0)
    return pc.fill_null(blank, True).to_numpy(zero_copy_only=False).astype(bool)


def float_or_nan(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return math.nan


def to_float(col: pa.Array) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
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
    missing = null_or_blank(text)

    def all_at_once(block: pa.Array, blank: np.ndarray) -> np.ndarray:
        return pc.cast(pc.if_else(pa.array(blank), pa.scalar("nan"), block), pa.float64()
                       ).to_numpy(zero_copy_only=False).astype(np.float64)

    values = parse_in_blocks(text, missing, all_at_once, float_or_nan)
    bad = np.isinf(values) | (np.isnan(values) & ~missing & ~_is_nan_text(text))
    missing = missing | (np.isnan(values) & ~bad)
    return values, missing, bad


def _is_nan_text(text: pa.Array) -> np.ndarray:
    """Cells that spell NaN (a missing value, as pandas and others write it), not garbage."""
    spelled = pc.is_in(pc.utf8_lower(text), value_set=pa.array(["nan", "-nan", "+nan"]))
    return pc.fill_null(spelled, False).to_numpy(zero_copy_only=False).astype(bool)


def parse_in_blocks(text: pa.Array, blank: np.ndarray, all_at_once, one, block: int = 1024) -> np.ndarray:
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
