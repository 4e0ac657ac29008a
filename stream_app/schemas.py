"""Event validation, dead-letter records and alert records of the streaming driver.

Messages on the events topic are decoded here from raw bytes (never by Faust: a value that fails
Faust's own decoding stops the agent while the worker stays up). A message carries one JSON
event (an object) or many (a JSON array of objects, or an Arrow IPC stream of rows:
``stream_app.arrow_messages``; "batch messages", for throughput). Every
event that cannot be used becomes a :class:`DeadLetter` with a machine-readable ``reason``, a
human ``detail`` naming the field and the value, and the original bytes (base64), and the
events around it go on. Reasons:

``too_large``        the message is longer than ``max_payload_bytes`` (an Arrow message: or holds
                     more rows than that, or decodes to more than 64 times that)
``bad_json``         not UTF-8 JSON
``bad_arrow``        starts like an Arrow IPC stream (``FF FF FF FF``) but is not one
``not_an_object``    the message (or an element of a batch) is not a JSON object
``empty``            an empty message or an empty batch
``missing_field``    the key or the time is absent or null (for an Arrow message: the key or
                     time column is absent: the whole message); a value field too when
                     ``missing_values = "dead_letter"`` (by default an absent or null value
                     is *missing*, passed to the pipeline as NaN and imputed there, as the
                     event-file reader and the backfill do)
``wrong_type``       a field has the wrong JSON type (numbers as strings, booleans, ...); a
                     column of an Arrow message has the wrong Arrow type (the whole message)
``not_finite``       a value or the time is NaN or infinite
``in_future``        the event time lies more than ``max_future_s`` past the wall clock
``out_of_order``     the event time lies more than ``max_out_of_order_s`` before the latest
                     event time already seen for its key (checked by the driver)
``wrong_partition``  the key belongs to another partition (the producer did not key the message
                     by the event's key), so its per-key state would split (checked by the driver)

For an element of a JSON batch message the "original bytes" are that element re-encoded as
JSON (``index`` gives its position); for a row of an Arrow message, that row alone as a one-row
Arrow IPC stream (``index`` = its row); for a message that cannot be read at all (or an Arrow
message with a missing or mistyped column), the message itself.
"""

from __future__ import annotations

import base64
import json
import math
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from . import arrow_messages
from .event_fields import SECONDS_PER_UNIT, EventFields

DEAD_LETTER_SCHEMA_VERSION = 1
ALERT_SCHEMA_VERSION = 1

# Seconds per unit of a numeric event time: the same table the file reader and the backfill use.
_TIME_SCALE = SECONDS_PER_UNIT


class EventError(ValueError):
    """One event that cannot be used: ``reason`` (a code listed above) and ``detail``."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class EventSchema(EventFields):
    """The fields an event must have (the model's ``[data]`` section, as the file reader and
    the backfill read it) and what the stream does with an absent or null value field."""

    missing_values: str = "impute"  # "impute" (NaN, imputed by the model) or "dead_letter"

    @classmethod
    def from_config(cls, config: Any, missing_values: str = "impute") -> "EventSchema":
        """From a pipeline's ``config`` (its ``data`` section)."""
        f = EventFields.from_config(config)
        return cls(f.key_field, f.time_field, f.value_fields, f.categorical_fields, f.time_unit,
                   missing_values=missing_values)


@dataclass
class Event:
    """A validated event: the columns the pipeline needs, plus where it came from."""

    key: str
    time: float
    values: tuple[float, ...]
    categories: tuple[str | None, ...]
    partition: int
    offset: int
    index: int | None  # position inside a batch message, None for a one-event message


@dataclass
class DeadLetter:
    reason: str
    detail: str
    original: bytes
    topic: str
    partition: int
    offset: int
    index: int | None = None
    received_at: float = field(default_factory=time.time)

    def to_record(self) -> dict[str, Any]:
        return {
            "schema_version": DEAD_LETTER_SCHEMA_VERSION,
            "reason": self.reason,
            "detail": self.detail,
            "topic": self.topic,
            "partition": self.partition,
            "offset": self.offset,
            "index": self.index,
            "received_at": self.received_at,
            "original_b64": base64.b64encode(self.original).decode("ascii"),
        }

    def to_bytes(self) -> bytes:
        return json.dumps(self.to_record(), separators=(",", ":")).encode()


def _describe(v: Any) -> str:
    text = json.dumps(v) if isinstance(v, (str, bool)) or v is None else repr(v)
    return text if len(text) <= 60 else text[:57] + "..."


def parse_time(raw: Any, schema: EventSchema) -> float:
    """Event time as float epoch seconds, from a JSON number (in ``time_unit``) or ISO-8601 text."""
    name = schema.time_field
    if raw is None:
        raise EventError("missing_field", f"time field {name!r} is missing or null")
    if isinstance(raw, bool):
        raise EventError("wrong_type", f"time field {name!r} is a boolean ({_describe(raw)})")
    if isinstance(raw, (int, float)):
        try:
            t = float(raw) * _TIME_SCALE[schema.time_unit]
        except OverflowError:  # an integer beyond float64
            t = math.inf
        if not math.isfinite(t):
            raise EventError("not_finite", f"time field {name!r} is {raw!r}")
        return t
    if isinstance(raw, str):
        try:
            dt = datetime.fromisoformat(raw)
        except ValueError:
            raise EventError(
                "wrong_type", f"time field {name!r} is text that is not ISO-8601 ({_describe(raw)})"
            ) from None
        if dt.tzinfo is None:
            raise EventError("wrong_type", f"time field {name!r} has no time zone ({_describe(raw)})")
        return dt.timestamp()
    raise EventError(
        "wrong_type", f"time field {name!r} must be a number or ISO-8601 text, got {_describe(raw)}"
    )


def check_key(key: Any, schema: EventSchema) -> str:
    """The key as text: a non-empty string not starting with NUL, or an integer."""
    if key is None:
        raise EventError("missing_field", f"key field {schema.key_field!r} is missing or null")
    if isinstance(key, str):
        if not key or key[0] == "\x00":  # NUL-prefixed table keys are the driver's own
            raise EventError("wrong_type", f"key field {schema.key_field!r} is empty or starts with NUL")
        return key
    if isinstance(key, int) and not isinstance(key, bool):
        return str(key)
    raise EventError(
        "wrong_type", f"key field {schema.key_field!r} must be text or an integer, got {_describe(key)}"
    )


def check_not_future(t: float, schema: EventSchema, now: float, max_future_s: float) -> float:
    if t > now + max_future_s:
        raise EventError(
            "in_future",
            f"time field {schema.time_field!r} = {t:.3f} lies {t - now:.0f} s past the wall clock "
            f"(limit {max_future_s:.0f} s)",
        )
    return t


def missing_value(name: str, schema: EventSchema) -> float:
    """An absent or null value field: NaN (imputed by the pipeline) or a dead letter."""
    if schema.missing_values == "impute":
        return math.nan
    raise EventError("missing_field", f"value field {name!r} is missing or null")


def check_finite(name: str, v: float) -> float:
    if not math.isfinite(v):
        raise EventError("not_finite", f"value field {name!r} is {v!r}")
    return v


def validate_event(
    obj: Any, schema: EventSchema, now: float, max_future_s: float
) -> tuple[str, float, tuple[float, ...], tuple[str | None, ...]]:
    """Check one decoded JSON value; return (key, time, values, categories) or raise EventError."""
    if not isinstance(obj, dict):
        raise EventError("not_an_object", f"an event must be a JSON object, got {type(obj).__name__}")
    key = check_key(obj.get(schema.key_field), schema)
    t = check_not_future(parse_time(obj.get(schema.time_field), schema), schema, now, max_future_s)
    values = []
    for name in schema.value_fields:
        v = obj.get(name)
        if v is None:
            values.append(missing_value(name, schema))
            continue
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise EventError("wrong_type", f"value field {name!r} must be a number, got {_describe(v)}")
        try:
            v = float(v)
        except OverflowError:  # an integer beyond float64
            v = math.inf
        values.append(check_finite(name, v))
    cats = []
    for name in schema.categorical_fields:
        c = obj.get(name)
        if c is not None and not isinstance(c, str):
            raise EventError("wrong_type", f"categorical field {name!r} must be text, got {_describe(c)}")
        cats.append(c)
    return key, t, tuple(values), tuple(cats)


def decode_message(
    raw: bytes | None,
    schema: EventSchema,
    *,
    topic: str,
    partition: int,
    offset: int,
    max_payload_bytes: int,
    max_future_s: float,
    now: float | None = None,
) -> tuple[list[Event], list[DeadLetter]]:
    """All events of one message (one object or an array of objects), and its dead letters."""
    now = time.time() if now is None else now
    raw = raw or b""

    def dead(reason: str, detail: str, original: bytes, index: int | None = None) -> DeadLetter:
        return DeadLetter(reason, detail, original, topic, partition, offset, index, now)

    if len(raw) > max_payload_bytes:
        return [], [dead("too_large", f"message is {len(raw)} bytes, limit {max_payload_bytes}", raw)]
    if not raw.strip():
        return [], [dead("empty", "message is empty", raw)]
    if arrow_messages.is_arrow(raw):
        return _decode_arrow(raw, schema, now, max_future_s, max_payload_bytes, dead, partition, offset)
    try:
        decoded = json.loads(raw)
    except (UnicodeDecodeError, ValueError) as exc:
        return [], [dead("bad_json", f"not JSON: {exc}", raw)]
    if isinstance(decoded, list):
        if not decoded:
            return [], [dead("empty", "batch message is an empty array", raw)]
        items: list[tuple[int | None, Any]] = list(enumerate(decoded))
    else:
        items = [(None, decoded)]
    events: list[Event] = []
    letters: list[DeadLetter] = []
    for index, obj in items:
        try:
            key, t, values, cats = validate_event(obj, schema, now, max_future_s)
        except EventError as exc:
            original = raw if index is None else json.dumps(obj, allow_nan=True).encode()
            detail = exc.detail if index is None else f"element {index}: {exc.detail}"
            letters.append(dead(exc.reason, detail, original, index))
            continue
        events.append(Event(key, t, values, cats, partition, offset, index))
    return events, letters


def _decode_arrow(raw: bytes, schema: EventSchema, now: float, max_future_s: float, max_bytes: int,
                  dead: Any, partition: int, offset: int) -> tuple[list[Event], list[DeadLetter]]:
    """The rows of an Arrow IPC message, each checked as a JSON event is; a missing or mistyped
    column is the whole message's dead letter, a bad value only its row's."""
    try:
        table = arrow_messages.read_message(raw, max_bytes)
        cols = arrow_messages.columns(table, schema, schema.missing_values)
    except arrow_messages.ArrowMessageError as exc:
        return [], [dead(exc.reason, exc.detail, raw)]
    keys = cols.keys.to_pylist()
    times = cols.times.tolist()
    t_ok = cols.times_valid.tolist()
    values = [v.tolist() for v in cols.values]
    v_ok = [v.tolist() for v in cols.values_valid]
    cats = [c.to_pylist() for c in cols.categories]
    events: list[Event] = []
    letters: list[DeadLetter] = []
    for i, key in enumerate(keys):
        try:
            key = check_key(key, schema)
            if not t_ok[i]:
                raise EventError("missing_field", f"time field {schema.time_field!r} is missing or null")
            if not math.isfinite(times[i]):
                raise EventError("not_finite", f"time field {schema.time_field!r} is {times[i]!r}")
            t = check_not_future(times[i], schema, now, max_future_s)
            row = tuple(check_finite(name, col[i]) if ok[i] else missing_value(name, schema)
                        for name, col, ok in zip(schema.value_fields, values, v_ok))
        except EventError as exc:
            letters.append(dead(exc.reason, f"row {i}: {exc.detail}", arrow_messages.row_bytes(table, i), i))
            continue
        events.append(Event(key, t, row, tuple(c[i] for c in cats), partition, offset, i))
    return events, letters


def event_to_json(row: dict[str, Any]) -> bytes:
    """Encode one event (a dict) the way producers should: compact JSON, NaN refused."""
    return json.dumps(row, separators=(",", ":"), allow_nan=False).encode()


# ----------------------------------------------------------------------------- alerts


def alert_id(key: str, event_time: float, model_version: str) -> str:
    """The identity of an alert: the same event scored by the same model gives the same id,
    so a consumer can drop the duplicates that at-least-once delivery allows."""
    return f"{key}|{event_time!r}|{model_version}"


def alert_record(alert: dict[str, Any], *, partition: int, offset: int, detected_at: float) -> dict[str, Any]:
    """The alert as published (docs/alerts.md): the pipeline's record plus the driver's fields."""
    for name in ("key", "time", "score", "threshold", "model_version"):
        if name not in alert:
            raise KeyError(f"the pipeline's alert record has no {name!r} (see docs/alerts.md): {alert}")
    record = {
        "schema_version": ALERT_SCHEMA_VERSION,
        "alert_id": alert_id(str(alert["key"]), float(alert["time"]), str(alert["model_version"])),
        "key": str(alert["key"]),
        "time": float(alert["time"]),
        "score": float(alert["score"]),
        "threshold": float(alert["threshold"]),
        "top_features": list(alert.get("top_features") or []),
        "model_version": str(alert["model_version"]),
    }
    for name, value in alert.items():  # anything else the pipeline adds travels along
        record.setdefault(name, value)
    record["source"] = {"partition": partition, "offset": offset}
    record["detected_at"] = detected_at
    return record


def _json_default(v: Any) -> Any:
    # NumPy scalars and arrays that a pipeline's records may carry.
    if hasattr(v, "item") and getattr(v, "ndim", 1) == 0:
        return v.item()
    if hasattr(v, "tolist"):
        return v.tolist()
    raise TypeError(f"{type(v).__name__} is not JSON serialisable")


def to_json_bytes(record: dict[str, Any]) -> bytes:
    return json.dumps(record, separators=(",", ":"), default=_json_default).encode()
