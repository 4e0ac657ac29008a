"""Which columns a backfill reads, and which column types each role accepts.

A backfill needs the event key, the event time and the value columns the pipeline scores
(``pipe.config.key_field`` / ``time_field`` / ``value_fields``). Categorical value columns
(hashed by the feature engine) may be strings; every other value column must be numeric.
The same rules are checked against a BigQuery schema and an Arrow schema, before any data
is read, so a wrong type is reported once, clearly, and not as a failure deep in a shard.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from stream_app.backfill.errors import SourceError

# BigQuery legacy and standard names for the same types.
_BQ_ALIASES = {"INTEGER": "INT64", "FLOAT": "FLOAT64", "BOOLEAN": "BOOL"}
BQ_KEY_TYPES = {"STRING", "INT64", "BYTES"}
BQ_TIME_TYPES = {"TIMESTAMP", "DATETIME", "INT64", "FLOAT64", "NUMERIC"}
BQ_NUMERIC_TYPES = {"INT64", "FLOAT64", "NUMERIC", "BIGNUMERIC", "BOOL"}
BQ_CATEGORICAL_TYPES = BQ_NUMERIC_TYPES | {"STRING"}
# Seconds per unit of a numeric time column (``[data] time_unit``); the pipeline reads seconds.
TIME_SCALE = {"s": 1.0, "ms": 1e-3, "us": 1e-6, "ns": 1e-9}


@dataclass(frozen=True)
class EventFields:
    """The columns of one event: key, time (timestamp or float epoch seconds), values."""

    key: str
    time: str
    values: tuple[str, ...]
    categorical: tuple[str, ...] = field(default=())
    time_unit: str = "s"  # of a numeric time column; timestamp columns carry their own

    def __post_init__(self) -> None:
        if self.time_unit not in TIME_SCALE:
            raise ValueError(f"time_unit {self.time_unit!r}: use one of {', '.join(TIME_SCALE)}")
        names = self.columns
        if len(set(names)) != len(names):
            raise ValueError(f"event fields repeat a column: {names}")
        unknown = set(self.categorical) - set(self.values)
        if unknown:
            raise ValueError(f"categorical fields {sorted(unknown)} are not among the value fields {self.values}")

    @property
    def columns(self) -> tuple[str, ...]:
        return (self.key, self.time, *self.values)

    @classmethod
    def from_pipeline(cls, pipeline: Any) -> EventFields:
        return cls.from_config(pipeline.config)

    @classmethod
    def from_config(cls, config: Any) -> EventFields:
        """From an ember config (``config.data.key_field`` ...) or anything with the fields
        directly (contracts.md names ``pipe.config.key_field``)."""
        cfg = getattr(config, "data", config)
        categorical = tuple(getattr(cfg, "categorical_fields", ()) or ())
        values = tuple(cfg.value_fields)
        values += tuple(c for c in categorical if c not in values)
        return cls(key=cfg.key_field, time=cfg.time_field, values=values, categorical=categorical,
                   time_unit=getattr(cfg, "time_unit", "s") or "s")

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, "time": self.time, "values": list(self.values),
                "categorical": list(self.categorical), "time_unit": self.time_unit}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> EventFields:
        return cls(d["key"], d["time"], tuple(d["values"]), tuple(d.get("categorical", ())), d.get("time_unit", "s"))

    # -- numeric times ---------------------------------------------------------------------

    def numeric_time(self, when: Any) -> float:
        """A datetime as a number in the time column's unit (for range filters)."""
        return when.timestamp() / TIME_SCALE[self.time_unit]

    def time_in_seconds(self, table: pa.Table) -> pa.Table:
        """A numeric time column in another unit than seconds, as float64 epoch seconds: what
        the streaming driver hands the pipeline, so both drivers give it the same numbers."""
        col = table.column(self.time)
        if self.time_unit == "s" or pa.types.is_timestamp(col.type):
            return table
        import pyarrow.compute as pc

        seconds = pc.multiply(col.cast(pa.float64()), TIME_SCALE[self.time_unit])
        return table.set_column(table.schema.get_field_index(self.time), self.time, seconds)

    # -- BigQuery --------------------------------------------------------------------------

    def check_bigquery_schema(self, schema: Iterable[Any], where: str) -> dict[str, str]:
        """Check a BigQuery table schema; return {column: standard type name}."""
        types = {f.name: _BQ_ALIASES.get(f.field_type, f.field_type) for f in schema}
        modes = {f.name: f.mode for f in schema}
        self._check_missing(types, where)
        for name, allowed, what in self._roles(BQ_KEY_TYPES, BQ_TIME_TYPES, BQ_NUMERIC_TYPES, BQ_CATEGORICAL_TYPES):
            if types[name] not in allowed or modes[name] == "REPEATED":
                shown = f"ARRAY<{types[name]}>" if modes[name] == "REPEATED" else types[name]
                raise SourceError(
                    f"column {name!r} of {where} has type {shown}; the {what} must be one of {sorted(allowed)}"
                )
        return {name: types[name] for name in self.columns}

    # -- Arrow -----------------------------------------------------------------------------

    def check_arrow_schema(self, schema: pa.Schema, where: str) -> None:
        types = {f.name: f.type for f in schema}
        self._check_missing(types, where)
        checks = {
            "key": lambda t: pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_integer(t)
            or pa.types.is_binary(t) or pa.types.is_dictionary(t),
            "time": lambda t: pa.types.is_timestamp(t) or pa.types.is_integer(t) or pa.types.is_floating(t),
            "value": lambda t: pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t)
            or pa.types.is_decimal(t) or pa.types.is_null(t),
            "categorical": lambda t: pa.types.is_string(t) or pa.types.is_large_string(t)
            or pa.types.is_dictionary(t) or pa.types.is_integer(t) or pa.types.is_boolean(t),
        }
        expected = {
            "key": "a string, binary or integer",
            "time": "a timestamp or a number of epoch seconds",
            "value": "a number or a boolean",
            "categorical": "a string, integer or boolean",
        }
        for name, role in self._role_names():
            if not checks[role](types[name]):
                raise SourceError(
                    f"column {name!r} of {where} has type {types[name]}; the {role} column must be {expected[role]}"
                )

    # -- helpers ---------------------------------------------------------------------------

    def _check_missing(self, present: dict[str, Any], where: str) -> None:
        missing = [c for c in self.columns if c not in present]
        if missing:
            raise SourceError(
                f"{where} has no column {', '.join(repr(m) for m in missing)} "
                f"(it has: {', '.join(sorted(present))})"
            )

    def _role_names(self) -> list[tuple[str, str]]:
        roles = [(self.key, "key"), (self.time, "time")]
        roles += [(v, "categorical" if v in self.categorical else "value") for v in self.values]
        return roles

    def _roles(self, key_t: set, time_t: set, num_t: set, cat_t: set) -> list[tuple[str, set, str]]:
        allowed = {"key": (key_t, "key column"), "time": (time_t, "time column"),
                   "value": (num_t, "value column"), "categorical": (cat_t, "categorical column")}
        return [(name, *allowed[role]) for name, role in self._role_names()]
