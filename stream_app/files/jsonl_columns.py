"""JSON Lines files → the event fields' columns and each row's line number.

Arrow's JSON reader for clean files; Python's json, line by line, for the others.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa

from stream_app.event_fields import EventFields


def jsonl_columns_fast(path: Path, fields: EventFields):
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


def jsonl_columns(path: Path, fields: EventFields):
    """Line by line with Python's json: a line that is not a JSON object is reported and skipped;
    every value becomes JSON text, so one converter reads CSV and JSONL cells alike."""
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
