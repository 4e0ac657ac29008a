"""Event files in and out: CSV, Parquet and JSON Lines.

``read_events(path, fields)`` returns an Arrow table the pipeline can take — the key as a string,
the time as float64 epoch seconds, the value fields as float64, the categorical fields as
strings — and a ``ReadReport``. A malformed row is skipped and reported with the file name and
its line number (CSV, JSONL) or row number (Parquet); every other row is kept. Malformed means:

- a ragged CSV line (more or fewer fields than the header) or a JSONL line that is not a JSON object;
- no key (absent, empty or null);
- no time, or a time that is neither ISO 8601 (``2024-03-04T05:06:07.123Z``, ``2024-03-04 05:06:07``,
  ``+02:00`` offsets; no offset = UTC) nor a finite epoch number (unit: ``time_unit``);
- a value field holding something that is not a number (``abc``, ``12,5``, ``true``) or ±inf.

A *missing* value (empty CSV cell, JSON null or absent, NaN) is not malformed: the pipeline
imputes missing values, so the row is kept with NaN and the report counts it per field — unless
``missing_values="skip"``, where such a row is skipped and reported like a malformed one.
Missing categorical values are kept as null. Columns the fields do not name are not read.

The pieces: ``reader`` (``read_events``, ``events_from_table``) takes each format's columns
(``csv_columns``, ``jsonl_columns``, ``parquet_columns``) through one ``convert`` (with ``cells``
for numbers and ``times`` for event times) into a table and a ``report``; ``ordering`` puts the
rows in the order the pipeline needs, ``writing`` writes tables back out.
"""

from stream_app.event_fields import EventFields
from stream_app.files.formats import FORMATS, EventFileError, file_format
from stream_app.files.ordering import in_key_time_order, time_ordered
from stream_app.files.reader import events_from_table, read_events
from stream_app.files.report import BadRow, ReadReport
from stream_app.files.writing import epoch_to_iso, write_events

__all__ = ["FORMATS", "BadRow", "EventFields", "EventFileError", "ReadReport", "epoch_to_iso",
           "events_from_table", "file_format", "in_key_time_order", "read_events", "time_ordered",
           "write_events"]
