"""JSON event messages decoded straight into typed records (msgspec), for the column path.

A message is one event (a JSON object) or a JSON array of them. ``EventDecoder`` decodes a
message against the event schema in one pass: the key text or an integer, the time a number,
each value field a number (or null or absent, where missing values are imputed), each
categorical field text or null or absent, other fields skipped. Anything else — another type,
a missing key or time, NaN/Infinity tokens, integers beyond 64 bits, malformed text — raises,
and the batch takes the per-event path (stream_app.processor), which is the definition of every
rule and writes the dead letters. What it accepts it returns as the JSON text says, so the
columns equal what ``json.loads`` and the per-event path read (tests/kafka/test_batch_decode.py).

The column path's JSON decode (``batch_decode._json_chunk``) on the benchmark's 100-event
messages, against ``orjson.loads`` with ``dict.get`` per column and a type set per column before
it (2-core VM, best of 7, three alternated pairs): 0.88-0.97 against 1.25-1.35 µs per event.
"""

from __future__ import annotations

from operator import attrgetter
from typing import Annotated, Any, Callable, Union

import msgspec

from .schemas import EventSchema

# integers that fit int64 (larger ones, rare in events, take the per-event path)
_INT64 = Annotated[int, msgspec.Meta(ge=-(2 ** 63), le=2 ** 63 - 1)]
_NUMBER = Union[_INT64, float]

DecodeError = msgspec.DecodeError  # (ValidationError is one)


class EventDecoder:
    """``decode(raw)`` → a list of records (one per event; an event's own message: a list of
    one, ``single`` True); ``column(records, field)`` → that field's values, in order."""

    def __init__(self, schema: EventSchema):
        impute = schema.missing_values == "impute"
        fields: list[tuple[str, Any] | tuple[str, Any, Any]] = [
            ("key", Union[str, _INT64]), ("time", _NUMBER)]
        names = {"key": schema.key_field, "time": schema.time_field}
        for i, name in enumerate(schema.value_fields):
            fields.append((f"v{i}", Union[_NUMBER, None], None) if impute else (f"v{i}", _NUMBER))
            names[f"v{i}"] = name
        for i, name in enumerate(schema.categorical_fields):
            fields.append((f"c{i}", Union[str, None], None))
            names[f"c{i}"] = name
        # (attributes named by position, encoded under the schema's names: a field name need
        # not be a Python identifier; gc=False: the records hold no reference cycles)
        record = msgspec.defstruct("EventRecord", fields, rename=names, gc=False)
        self._decoder = msgspec.json.Decoder(Union[list[record], record])
        self._record = record
        self._get: dict[str, Callable[[Any], Any]] = {name: attrgetter(attr)
                                                       for attr, name in names.items()}

    def decode(self, raw: bytes) -> tuple[list, bool]:
        got = self._decoder.decode(raw)
        if type(got) is self._record:
            return [got], True
        return got, False

    def column(self, records: list, field: str) -> list:
        return list(map(self._get[field], records))


_decoders: dict[tuple, EventDecoder] = {}


def decoder_for(schema: EventSchema) -> EventDecoder:
    """The schema's decoder, built once (a dict lookup per batch after that). (An EventSchema
    names each field once: event_fields.py refuses a repeated one.)"""
    key = (schema.key_field, schema.time_field, tuple(schema.value_fields),
           tuple(schema.categorical_fields), schema.missing_values)
    found = _decoders.get(key)
    if found is None:
        found = _decoders[key] = EventDecoder(schema)
    return found
