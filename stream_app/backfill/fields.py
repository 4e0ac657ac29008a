"""Which column types each role of an event accepts in a backfill source.

A backfill needs the event key, the event time and the value columns the pipeline scores
(``EventFields``, from ``pipe.config``). Categorical columns (hashed by the feature engine) may
be strings; every other value column must be numeric. The same rules are checked against a
BigQuery schema and an Arrow schema, before any data is read, so a wrong type is reported
once, clearly, and not as a failure deep in a shard.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pyarrow as pa

from stream_app.backfill.errors import SourceError
from stream_app.event_fields import EventFields

__all__ = ["EventFields", "check_arrow_schema", "check_bigquery_schema"]

# BigQuery legacy and standard names for the same types.
_BQ_ALIASES = {"INTEGER": "INT64", "FLOAT": "FLOAT64", "BOOLEAN": "BOOL"}
BQ_KEY_TYPES = {"STRING", "INT64", "BYTES"}
BQ_TIME_TYPES = {"TIMESTAMP", "DATETIME", "INT64", "FLOAT64", "NUMERIC"}
BQ_NUMERIC_TYPES = {"INT64", "FLOAT64", "NUMERIC", "BIGNUMERIC", "BOOL"}
BQ_CATEGORICAL_TYPES = BQ_NUMERIC_TYPES | {"STRING"}
_BQ_ALLOWED = {"key": BQ_KEY_TYPES, "time": BQ_TIME_TYPES, "value": BQ_NUMERIC_TYPES,
               "categorical": BQ_CATEGORICAL_TYPES}

_ARROW_CHECKS = {
    "key": lambda t: pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_integer(t)
    or pa.types.is_binary(t) or pa.types.is_dictionary(t),
    "time": lambda t: pa.types.is_timestamp(t) or pa.types.is_integer(t) or pa.types.is_floating(t),
    "value": lambda t: pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t)
    or pa.types.is_decimal(t) or pa.types.is_null(t),
    "categorical": lambda t: pa.types.is_string(t) or pa.types.is_large_string(t)
    or pa.types.is_dictionary(t) or pa.types.is_integer(t) or pa.types.is_boolean(t),
}
_ARROW_EXPECTED = {
    "key": "a string, binary or integer",
    "time": "a timestamp or a number of epoch seconds",
    "value": "a number or a boolean",
    "categorical": "a string, integer or boolean",
}


def check_bigquery_schema(fields: EventFields, schema: Iterable[Any], where: str) -> dict[str, str]:
    """Check a BigQuery table schema; return {column: standard type name}."""
    types = {f.name: _BQ_ALIASES.get(f.field_type, f.field_type) for f in schema}
    modes = {f.name: f.mode for f in schema}
    _check_missing(fields, types, where)
    for name, role in _roles(fields):
        allowed = _BQ_ALLOWED[role]
        if types[name] not in allowed or modes[name] == "REPEATED":
            shown = f"ARRAY<{types[name]}>" if modes[name] == "REPEATED" else types[name]
            raise SourceError(
                f"column {name!r} of {where} has type {shown}; the {role} column must be one of {sorted(allowed)}"
            )
    return {name: types[name] for name in fields.columns}


def check_arrow_schema(fields: EventFields, schema: pa.Schema, where: str) -> None:
    types = {f.name: f.type for f in schema}
    _check_missing(fields, types, where)
    for name, role in _roles(fields):
        if not _ARROW_CHECKS[role](types[name]):
            raise SourceError(
                f"column {name!r} of {where} has type {types[name]}; the {role} column must be {_ARROW_EXPECTED[role]}"
            )


def _check_missing(fields: EventFields, present: dict[str, Any], where: str) -> None:
    missing = [c for c in fields.columns if c not in present]
    if missing:
        raise SourceError(
            f"{where} has no column {', '.join(repr(m) for m in missing)} "
            f"(it has: {', '.join(sorted(present))})"
        )


def _roles(fields: EventFields) -> list[tuple[str, str]]:
    return [(fields.key_field, "key"), (fields.time_field, "time"),
            *[(v, "value") for v in fields.value_fields],
            *[(c, "categorical") for c in fields.categorical_fields]]
