"""Config spec -> feature instance: one entry per feature kind."""
from __future__ import annotations

from ..config import DataConfig
from .base import Feature
from .count import EventCount
from .cyclical_time import CyclicalTime
from .delta import Delta
from .event_rate import EventRate
from .ewma import Ewma
from .hashed_categorical import HashedCategorical
from .impute import Impute
from .rate import Rate
from .rolling_count import RollingCountWindow
from .rolling_time import RollingTimeWindow
from .time_since_last import TimeSinceLast
from .welford import WelfordStats
from .zscore import ZScore

FEATURE_CLASSES: dict[str, type[Feature]] = {
    cls.kind: cls for cls in (EventCount, TimeSinceLast, EventRate, CyclicalTime, Impute, Delta,
                              Rate, WelfordStats, ZScore, Ewma, RollingCountWindow,
                              RollingTimeWindow, HashedCategorical)
}


def build_feature(spec, data: DataConfig) -> Feature:
    cls = FEATURE_CLASSES[spec.kind]
    params = spec.model_dump(exclude={"kind", "name", "fields"})
    if cls.reads == "none":
        return cls(prefix=spec.id, **params)
    universe = list(data.categorical_fields if cls.reads == "categories" else data.value_fields)
    fields = list(spec.fields) if spec.fields is not None else universe
    columns = [universe.index(f) for f in fields]
    feature = cls(fields=fields, columns=columns, prefix=spec.id, **params)
    if cls.reads == "values":
        feature.bind_all_columns(len(universe))
    return feature
