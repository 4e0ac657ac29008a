"""The ember configuration file (TOML): which fields the events have and which features to build.

    [data]
    key_field = "host"              # one state per distinct key
    time_field = "timestamp"        # float epoch seconds, or an Arrow timestamp column
    value_fields = ["cpu", "latency_ms"]
    categorical_fields = ["region"]

    [[features]]                    # optional: leave out every [[features]] for the default set
    kind = "ewma"
    half_lives_s = [600, 3600]

    [model]                         # free-form here; the pipeline validates it (validate_section)

`load_config(path)` parses with tomllib and validates with pydantic. Any error — bad TOML, an
unknown feature kind, a missing or mistyped field, a feature naming a field that is not declared —
raises `ConfigError`, whose message names the file and the dotted field path
(e.g. ``ember.toml: features[2].half_lives_s[0]: Input should be greater than 0 (got -5)``).
"""
from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar, Union

from pydantic import BaseModel, ConfigDict, Field, PositiveFloat, PrivateAttr, ValidationError, model_validator

__all__ = [
    "ConfigError", "DataConfig", "EmberConfig", "FeatureSpec", "load_config", "parse_config",
    "default_features", "format_validation_error",
    "CountSpec", "EventRateSpec", "TimeSinceLastSpec", "WelfordSpec", "EwmaSpec", "RollingCountSpec",
    "RollingTimeSpec", "DeltaSpec", "RateSpec", "CyclicalTimeSpec", "HashedCategoricalSpec",
    "ImputeSpec", "ZScoreSpec",
]


class ConfigError(ValueError):
    """A configuration problem; the message names the file (``source``) and the field (``field``)."""

    def __init__(self, message: str, *, source: str | None = None, field: str | None = None):
        self.source = source
        self.field = field
        where = ": ".join(p for p in (source, field) if p)
        super().__init__(f"{where}: {message}" if where else message)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# ---- data ---------------------------------------------------------------------------------------

class DataConfig(_Strict):
    key_field: str = Field(min_length=1)
    time_field: str = Field(min_length=1)
    value_fields: list[Annotated[str, Field(min_length=1)]] = Field(min_length=1)
    categorical_fields: list[Annotated[str, Field(min_length=1)]] = []
    # Unit of a numeric time column (Arrow timestamp columns carry their own unit).
    time_unit: Literal["s", "ms", "us", "ns"] = "s"

    @model_validator(mode="after")
    def _distinct(self) -> "DataConfig":
        seen: dict[str, str] = {}
        for role, names in (("key_field", [self.key_field]), ("time_field", [self.time_field]),
                            ("value_fields", self.value_fields),
                            ("categorical_fields", self.categorical_fields)):
            for name in names:
                if name in seen:
                    raise _FieldError(role, f"field {name!r} is already used as {seen[name]}")
                seen[name] = role
        return self


# ---- features -----------------------------------------------------------------------------------
# One spec per feature kind. `name` distinguishes two features of the same kind (output columns
# and state are prefixed with it); `fields` restricts a per-field feature to some value fields
# (default: all value fields; for hashed_categorical: all categorical fields).

class _FeatureSpecBase(_Strict):
    name: str | None = None

    @property
    def id(self) -> str:
        return self.name or self.kind  # type: ignore[attr-defined]


class _PerField(_FeatureSpecBase):
    fields: list[str] | None = None


HalfLives = Annotated[list[Annotated[float, Field(ge=0.001)]], Field(min_length=1)]


class CountSpec(_FeatureSpecBase):
    """Number of events seen for the key (log1p by default, so it stays in a sane range)."""
    kind: Literal["count"] = "count"
    log1p: bool = True


class EventRateSpec(_FeatureSpecBase):
    """Events per second for the key, from time-decayed counts at several half-lives."""
    kind: Literal["event_rate"] = "event_rate"
    half_lives_s: HalfLives = [600.0, 3600.0]


class TimeSinceLastSpec(_FeatureSpecBase):
    """Seconds since the key's previous event (log1p by default)."""
    kind: Literal["time_since_last"] = "time_since_last"
    log1p: bool = True


class WelfordSpec(_PerField):
    """Running mean and standard deviation of every observation so far (Welford)."""
    kind: Literal["welford"] = "welford"


class EwmaSpec(_PerField):
    """Time-decayed mean (and std) at several half-lives; correct for irregular time steps."""
    kind: Literal["ewma"] = "ewma"
    half_lives_s: HalfLives = [600.0, 3600.0, 21600.0]
    std: bool = True


class RollingCountSpec(_PerField):
    """Mean and std over the last n observations, for several n (exact sliding windows)."""
    kind: Literal["rolling_count"] = "rolling_count"
    sizes: Annotated[list[Annotated[int, Field(ge=2, le=4096)]], Field(min_length=1)] = [8, 64]


class RollingTimeSpec(_PerField):
    """Count, mean and std over the last w seconds, for several w (bucketed sliding windows)."""
    kind: Literal["rolling_time"] = "rolling_time"
    windows_s: HalfLives = [3600.0]
    buckets: Annotated[int, Field(ge=1, le=256)] = 6


class DeltaSpec(_PerField):
    """Change since the previous observation of the field."""
    kind: Literal["delta"] = "delta"


class RateSpec(_PerField):
    """Change per second since the previous observation of the field."""
    kind: Literal["rate"] = "rate"


class CyclicalTimeSpec(_FeatureSpecBase):
    """sin/cos of the time of day (period 24 h) and of the week (period 7 days)."""
    kind: Literal["cyclical_time"] = "cyclical_time"
    periods: Annotated[list[Literal["day", "week"]], Field(min_length=1)] = ["day", "week"]
    utc_offset_hours: float = Field(default=0.0, ge=-24, le=24)


class HashedCategoricalSpec(_PerField):
    """One-hot of a stable hash of each categorical field, plus how new the value is for the key."""
    kind: Literal["hashed_categorical"] = "hashed_categorical"
    buckets: Annotated[int, Field(ge=2, le=4096)] = 16
    novelty: bool = True


class ImputeSpec(_PerField):
    """The value with missing ones filled (last value or running mean), plus a missing flag."""
    kind: Literal["impute"] = "impute"
    strategy: Literal["last", "mean"] = "last"


class ZScoreSpec(_PerField):
    """(x - running mean) / running std of the key's earlier observations, clipped."""
    kind: Literal["zscore"] = "zscore"
    clip: PositiveFloat = 5.0


FeatureSpec = Annotated[
    Union[CountSpec, EventRateSpec, TimeSinceLastSpec, WelfordSpec, EwmaSpec, RollingCountSpec,
          RollingTimeSpec, DeltaSpec, RateSpec, CyclicalTimeSpec, HashedCategoricalSpec, ImputeSpec,
          ZScoreSpec],
    Field(discriminator="kind"),
]


def default_features(data: DataConfig | None = None) -> list:
    """The feature set used when the file has no [[features]] (hashed_categorical only when the
    data declares categorical fields): every kind, with its default parameters."""
    specs: list = [
        CountSpec(), TimeSinceLastSpec(), EventRateSpec(), CyclicalTimeSpec(), ImputeSpec(),
        DeltaSpec(), RateSpec(), WelfordSpec(), ZScoreSpec(), EwmaSpec(), RollingCountSpec(),
        RollingTimeSpec(),
    ]
    if data is not None and data.categorical_fields:
        specs.append(HashedCategoricalSpec())
    return specs


# ---- the whole file -----------------------------------------------------------------------------

class EmberConfig(_Strict):
    data: DataConfig
    features: list[FeatureSpec] | None = None   # None: default_features(data)
    # Sections owned by other parts (the pipeline's model settings): validated there, with
    # `validate_section`, so their errors also name this file.
    model: dict[str, Any] = {}
    _source: str | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _check_features(self) -> "EmberConfig":
        if self.features is None:
            object.__setattr__(self, "features", default_features(self.data))
            return self
        ids: dict[str, int] = {}
        for i, spec in enumerate(self.features):
            if spec.id in ids:
                raise _FieldError(f"features[{i}].name",
                                  f"duplicate feature name {spec.id!r} (features[{ids[spec.id]}] has it "
                                  f"too); give one of them a distinct `name`")
            ids[spec.id] = i
            fields = getattr(spec, "fields", None)
            if fields is None:
                continue
            allowed = (self.data.categorical_fields if spec.kind == "hashed_categorical"
                       else self.data.value_fields)
            role = "categorical_fields" if spec.kind == "hashed_categorical" else "value_fields"
            for j, f in enumerate(fields):
                if f not in allowed:
                    raise _FieldError(f"features[{i}].fields[{j}]",
                                      f"{f!r} is not one of data.{role} {allowed}")
        for i, spec in enumerate(self.features):
            if spec.kind == "hashed_categorical" and not self.data.categorical_fields:
                raise _FieldError(f"features[{i}].kind",
                                  "hashed_categorical needs data.categorical_fields")
        return self

    # Convenience for drivers: cfg.key_field etc.
    @property
    def key_field(self) -> str:
        return self.data.key_field

    @property
    def time_field(self) -> str:
        return self.data.time_field

    @property
    def value_fields(self) -> list[str]:
        return list(self.data.value_fields)

    @property
    def categorical_fields(self) -> list[str]:
        return list(self.data.categorical_fields)

    @property
    def source(self) -> str | None:
        """The file this configuration was read from (None when built in code)."""
        return self._source

    def validate_section(self, name: str, model: type[_M]) -> _M:
        """Validate the free-form section `name` (e.g. "model") with a pydantic model; errors
        name this config's file and the dotted field path."""
        raw = getattr(self, name)
        try:
            return model.model_validate(raw)
        except ValidationError as err:
            raise format_validation_error(err, self._source, prefix=name) from None


_M = TypeVar("_M", bound=BaseModel)


class _FieldError(ValueError):
    """Raised inside validators to report a precise dotted field path."""

    def __init__(self, field: str, message: str):
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}")


def _dotted(loc: tuple, prefix: str | None) -> str:
    out = prefix or ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in _FEATURE_KINDS and out.endswith("]"):
            # pydantic puts the discriminator tag ('ewma') in the path of a union member; it is
            # not a field name, so leave it out.
            continue
        else:
            out += f".{part}" if out else str(part)
    return out


_FEATURE_KINDS = {"count", "event_rate", "time_since_last", "welford", "ewma", "rolling_count",
                  "rolling_time", "delta", "rate", "cyclical_time", "hashed_categorical", "impute",
                  "zscore"}


def format_validation_error(err: ValidationError, source: str | None, prefix: str | None = None
                            ) -> ConfigError:
    """Turn a pydantic error into a ConfigError naming the file and every offending field."""
    lines = []
    first_field = None
    for e in err.errors():
        ctx_err = (e.get("ctx") or {}).get("error")
        if isinstance(ctx_err, _FieldError):
            field = ".".join(p for p in (_dotted(e["loc"], prefix), ctx_err.field) if p)
            msg = ctx_err.message
        else:
            field = _dotted(e["loc"], prefix)
            msg = e["msg"]
            if e["type"] == "union_tag_invalid":
                msg = (f"unknown feature kind {e['ctx']['tag']!r}; known kinds: "
                       f"{', '.join(sorted(_FEATURE_KINDS))}")
                field = f"{field}.kind"
            elif e["type"] == "union_tag_not_found":
                field = f"{field}.kind"
                msg = f"missing `kind` (one of {', '.join(sorted(_FEATURE_KINDS))})"
            elif e["type"] not in ("missing",) and "input" in e and not isinstance(e["input"], dict):
                msg = f"{msg} (got {e['input']!r})"
        first_field = first_field or field
        lines.append(f"{field}: {msg}" if field else msg)
    where = source or "<config>"
    if len(lines) == 1:
        return ConfigError(lines[0].split(": ", 1)[1] if first_field else lines[0],
                           source=where, field=first_field or None)
    return ConfigError("invalid configuration:\n  " + "\n  ".join(lines), source=where,
                       field=first_field)


def parse_config(data: dict[str, Any] | str, source: str | None = None) -> EmberConfig:
    """Validate a configuration given as a dict or as TOML text; `source` names it in errors."""
    where = source or "<config>"
    if isinstance(data, str):
        try:
            data = tomllib.loads(data)
        except tomllib.TOMLDecodeError as err:
            raise ConfigError(f"invalid TOML: {err}", source=where) from None
    try:
        cfg = EmberConfig.model_validate(data)
    except ValidationError as err:
        raise format_validation_error(err, where) from None
    cfg._source = source
    return cfg


def load_config(path: str | Path) -> EmberConfig:
    """Read and validate an ember TOML file; every error names the file and the field."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise ConfigError(f"cannot read the config file: {err.strerror or err}", source=str(path)) from None
    return parse_config(text, source=str(path))
