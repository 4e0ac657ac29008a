"""Per-key incremental features, defined once, evaluated per event (streaming) or over a table
(backfill) with the same code. See docs/features.md.

    from ember_models.features import FeatureEngine
    engine = FeatureEngine.from_config("ember.toml")
    frame = engine.transform(table)                 # backfill: FeatureFrame(values, names, ...)
    frame, blobs = engine.step(batch, stored_blobs) # streaming: per-key state as bytes
"""
from .base import Feature, RoundInputs, State
from .columns import EventColumns, read_columns, stable_hash
from .count import EventCount
from .cyclical_time import CyclicalTime
from .delta import Delta
from .engine import FeatureEngine, FeatureFrame
from .event_rate import EventRate
from .ewma import Ewma
from .hashed_categorical import HashedCategorical
from .impute import Impute
from .layout import RoundLayout
from .rate import Rate
from .registry import FEATURE_CLASSES, build_feature
from .rolling_count import RollingCountWindow
from .rolling_time import RollingTimeWindow
from .state_codec import StateCodec
from .time_since_last import TimeSinceLast
from .welford import WelfordStats
from .zscore import ZScore

__all__ = [
    "FeatureEngine", "FeatureFrame", "Feature", "RoundInputs", "State", "RoundLayout",
    "EventColumns", "read_columns", "stable_hash", "StateCodec", "FEATURE_CLASSES", "build_feature",
    "EventCount", "TimeSinceLast", "EventRate", "CyclicalTime", "Impute", "Delta", "Rate",
    "WelfordStats", "ZScore", "Ewma", "RollingCountWindow", "RollingTimeWindow", "HashedCategorical",
]
