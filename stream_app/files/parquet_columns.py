"""Parquet files → the event fields' columns (as typed in the file) and each row's number."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from stream_app.event_fields import EventFields
from stream_app.files.formats import EventFileError, column_index


def parquet_columns(path: Path, fields: EventFields):
    try:
        schema = pq.read_schema(path)
    except Exception as err:  # noqa: BLE001 - pyarrow raises several types for a bad file
        raise EventFileError(f"{path}: not a readable Parquet file: {err}") from None
    column_index(path, schema.names, fields)
    table = pq.read_table(path, columns=list(fields.columns))
    columns = {name: table.column(name).combine_chunks() for name in fields.columns}
    return columns, np.arange(1, table.num_rows + 1, dtype=np.int64), []
