"""Event times → float64 epoch seconds: Arrow timestamps and dates, epoch numbers in
``time_unit``, and ISO 8601 text (no offset = UTC)."""

from __future__ import annotations

import math
from datetime import datetime, timezone

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from stream_app.event_fields import UNITS_PER_SECOND, epoch_seconds
from stream_app.files.cells import float_or_nan, null_or_blank, parse_in_blocks


def to_epoch_seconds(col: pa.Array, time_unit: str) -> tuple[np.ndarray, np.ndarray]:
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
    blank = null_or_blank(text)
    first = next((v for v in text.to_pylist()[:1000] if v), "")
    numbers_first = not math.isnan(float_or_nan(first))

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

    secs = parse_in_blocks(text, blank, all_at_once, lambda cell: _one_time(cell, time_unit))
    return secs, blank | ~np.isfinite(secs)


def _int_ticks_to_seconds(ticks: np.ndarray, unit: str) -> np.ndarray:
    """Integer ticks → float seconds, whole seconds and fraction apart: ns counts exceed 2**53,
    so ``ticks / 1e9`` would land an ulp away from the decimal the file wrote (…249.2649999)."""
    per = UNITS_PER_SECOND[unit]
    ticks = np.asarray(ticks, np.int64)
    whole, frac = np.divmod(ticks, per)
    return whole.astype(np.float64) + frac.astype(np.float64) / per


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
