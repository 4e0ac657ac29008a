"""Event tables in the order the pipeline needs: each key's rows in time order."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from stream_app.event_fields import EventFields


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
