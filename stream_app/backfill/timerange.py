"""The half-open time range [since, until) a backfill covers.

Times are given as timezone-aware datetimes, ISO 8601 strings or epoch seconds; a naive
datetime or a string without an offset means UTC. A numeric time column holds epoch seconds
(the pipeline contract), a timestamp column is compared as a timestamp.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Union

TimeLike = Union[datetime, str, float, int, None]


def to_utc(value: TimeLike, name: str = "time") -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    if isinstance(value, (int, float)):
        return datetime.fromtimestamp(float(value), tz=timezone.utc)
    if isinstance(value, str):
        text = value.strip()
        try:
            parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError as exc:
            raise ValueError(f"{name}: {value!r} is not an ISO 8601 date/time (e.g. 2024-03-01 or 2024-03-01T12:00:00Z)") from exc
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)
    raise TypeError(f"{name}: expected a datetime, ISO string or epoch seconds, got {type(value).__name__}")


@dataclass(frozen=True)
class TimeRange:
    since: datetime | None = None
    until: datetime | None = None

    @classmethod
    def of(cls, since: TimeLike = None, until: TimeLike = None) -> TimeRange:
        s, u = to_utc(since, "since"), to_utc(until, "until")
        if s is not None and u is not None and s >= u:
            raise ValueError(f"empty time range: since {s.isoformat()} is not before until {u.isoformat()}")
        return cls(s, u)

    @property
    def since_epoch(self) -> float | None:
        return None if self.since is None else self.since.timestamp()

    @property
    def until_epoch(self) -> float | None:
        return None if self.until is None else self.until.timestamp()

    def to_dict(self) -> dict[str, str | None]:
        return {"since": self.since.isoformat() if self.since else None,
                "until": self.until.isoformat() if self.until else None}

    @classmethod
    def from_dict(cls, d: dict) -> TimeRange:
        return cls.of(d.get("since"), d.get("until"))

    def describe(self) -> str:
        return f"[{self.since.isoformat() if self.since else '-inf'}, {self.until.isoformat() if self.until else '+inf'})"
