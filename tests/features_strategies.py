"""Hypothesis strategies and helpers shared by the feature tests: random multi-key event tables
with irregular timestamps, gaps, repeated timestamps and missing values."""
from __future__ import annotations

import numpy as np
import pyarrow as pa
from hypothesis import strategies as st

from ember_models.config import DataConfig

DATA = DataConfig(key_field="key", time_field="time", value_fields=["x", "y"],
                  categorical_fields=["cat"])
T0 = 1_700_000_000.0

# Gaps between a key's events: repeats (0), sub-second, regular, long outages.
_gap = st.one_of(st.just(0.0), st.floats(0.001, 2.0), st.sampled_from([60.0, 300.0]),
                 st.floats(1.0, 5000.0), st.floats(1e4, 1e6))
_value = st.one_of(st.floats(-1e4, 1e4, allow_nan=False, allow_infinity=False),
                   st.just(float("nan")), st.sampled_from([0.0, 1.0, 1e4 + 0.5]))
# For the finiteness contract: values far beyond any sane range, and infinities.
extreme_value = st.one_of(_value, st.sampled_from([1e15, -1e15, 3e38, -1e300, 1e300,
                                                   float("inf"), float("-inf")]))
_cat = st.one_of(st.none(), st.sampled_from(["a", "b", "c", "dd", "é"]))


@st.composite
def event_tables(draw, max_keys: int = 4, max_events: int = 40, values=_value) -> pa.Table:
    """A table of events of 1..max_keys keys, each key's rows in time order, keys interleaved in
    global time order (as a stream would deliver them)."""
    n_keys = draw(st.integers(1, max_keys))
    rows = []
    for k in range(n_keys):
        n = draw(st.integers(0 if k else 1, max_events))
        t = T0 + draw(st.floats(0, 1e5))
        for _ in range(n):
            t += draw(_gap)
            rows.append((t, f"k{k}", draw(values), draw(values), draw(_cat)))
    rows.sort(key=lambda r: r[0])   # stable: a key's equal timestamps keep their order
    return pa.table({
        "key": pa.array([r[1] for r in rows], pa.string()),
        "time": pa.array([r[0] for r in rows], pa.float64()),
        "x": pa.array([r[2] for r in rows], pa.float64()),
        "y": pa.array([r[3] for r in rows], pa.float64()),
        "cat": pa.array([r[4] for r in rows], pa.string()),
    })


def sort_by_key(table: pa.Table) -> pa.Table:
    """(key, time)-sorted copy, a key's equal timestamps in their original order (backfill)."""
    idx = np.lexsort((np.arange(table.num_rows), table.column("time").to_numpy(),
                      np.asarray(table.column("key").to_pylist(), dtype=object).astype(str)))
    return table.take(pa.array(idx))
