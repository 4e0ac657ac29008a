"""Which columns of an event mean what, and numeric event times as epoch seconds.

``EventFields`` is the ``[data]`` section of ember.toml as the readers need it: the key, the
time, the numeric value fields and the categorical fields (disjoint, as the config requires),
and ``time_unit``, the unit of a numeric time column. The event-file reader
(``stream_app.files``) and the backfill sources (``stream_app.backfill``) both take it.

``epoch_seconds`` is the one conversion of epoch numbers in ``time_unit`` (s, ms, us, ns) to
float seconds, the number the pipeline reads: ``number * SECONDS_PER_UNIT[unit]``. The streaming
driver (``stream_app/schemas.py``) and the feature engine scale the same way, so one number
reaches the pipeline as the same float whichever driver read it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

# Ticks per second of each unit (exact integers: Arrow timestamp units use the same names).
UNITS_PER_SECOND = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}
# Seconds per unit: 1 / 1000 is the same double as the literal 1e-3, and so on.
SECONDS_PER_UNIT = {unit: 1 / n for unit, n in UNITS_PER_SECOND.items()}
TIME_UNITS = tuple(UNITS_PER_SECOND)


def _scale(time_unit: str) -> float:
    try:
        return SECONDS_PER_UNIT[time_unit]
    except KeyError:
        raise ValueError(f"time_unit {time_unit!r}: use one of {', '.join(TIME_UNITS)}") from None


def epoch_seconds(numbers, time_unit: str):
    """Epoch numbers in ``time_unit`` as float64 epoch seconds.

    ``numbers``: an Arrow array (returns an Arrow float64 array, nulls kept), a NumPy array or a
    Python number (returns the same kind, as float64)."""
    scale = _scale(time_unit)
    if isinstance(numbers, (pa.Array, pa.ChunkedArray)):
        return pc.multiply(pc.cast(numbers, pa.float64()), scale)
    if isinstance(numbers, np.ndarray):
        return numbers.astype(np.float64, copy=False) * scale
    return float(numbers) * scale


@dataclass(frozen=True)
class EventFields:
    """The columns of one event: key, time (a timestamp, ISO text or an epoch number in
    ``time_unit``), numeric values and categorical values."""

    key_field: str
    time_field: str
    value_fields: tuple[str, ...]
    categorical_fields: tuple[str, ...] = ()
    time_unit: str = "s"     # of a numeric time column; timestamp columns carry their own

    def __post_init__(self) -> None:
        _scale(self.time_unit)
        names = self.columns
        if len(set(names)) != len(names):
            raise ValueError(f"event fields repeat a column: {names}")

    @property
    def columns(self) -> tuple[str, ...]:
        return (self.key_field, self.time_field, *self.value_fields, *self.categorical_fields)

    @classmethod
    def from_config(cls, config: Any) -> EventFields:
        """From an ``EmberConfig`` (its ``data`` section) or anything with that section's
        attributes (contracts.md names ``pipe.config.key_field``)."""
        data = getattr(config, "data", config)
        return cls(data.key_field, data.time_field, tuple(data.value_fields),
                   tuple(getattr(data, "categorical_fields", ()) or ()),
                   getattr(data, "time_unit", "s") or "s")

    @classmethod
    def from_pipeline(cls, pipeline: Any) -> EventFields:
        return cls.from_config(pipeline.config)

    # The dict form travels in backfill task specs (Kafka messages, manifests): its keys and its
    # "values" holding the categorical fields too stay as they were, so old specs still read.
    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key_field, "time": self.time_field,
                "values": [*self.value_fields, *self.categorical_fields],
                "categorical": list(self.categorical_fields), "time_unit": self.time_unit}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> EventFields:
        categorical = tuple(d.get("categorical", ()))
        values = tuple(v for v in d["values"] if v not in categorical)
        return cls(d["key"], d["time"], values, categorical, d.get("time_unit", "s"))

    # -- numeric times ---------------------------------------------------------------------

    def numeric_time(self, when: Any) -> float:
        """A datetime as a number in the time column's unit (for range filters)."""
        return when.timestamp() / SECONDS_PER_UNIT[self.time_unit]

    def time_in_seconds(self, table: pa.Table) -> pa.Table:
        """``table`` with a numeric time column in another unit than seconds as float64 epoch
        seconds (timestamp columns and seconds are left as they are)."""
        col = table.column(self.time_field)
        if self.time_unit == "s" or pa.types.is_timestamp(col.type):
            return table
        secs = epoch_seconds(col.cast(pa.float64()).to_numpy(), self.time_unit)
        return table.set_column(table.schema.get_field_index(self.time_field), self.time_field,
                                self.model_time_column(secs))

    def model_time_column(self, secs) -> pa.Array:
        """Float epoch seconds as the time column the model reads: float64 seconds when the
        config's ``time_unit`` is ``s``; otherwise a UTC timestamp, because the model reads a
        numeric time column in ``time_unit`` and would scale seconds a second time (the
        streaming driver hands over the same)."""
        secs = np.asarray(secs, dtype=np.float64)
        if self.time_unit == "s":
            return pa.array(secs, pa.float64())
        return pa.array(np.round(secs * 1e6).astype(np.int64), pa.timestamp("us", "UTC"))
