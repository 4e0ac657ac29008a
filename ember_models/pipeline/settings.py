"""The pipeline's own settings: the ``[model]`` section of the ember TOML file.

Everything has a default that works unsupervised on streams never seen before (NAB-like
metrics at any scale and rate); see docs/detection.md for what each knob does to detection.
"""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class PipelineSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    seed: int = 0
    # calibration (anomaly likelihood): short and long windows, in events
    short_window: float = Field(1.0, ge=1.0)
    long_window: float = Field(2000.0, ge=10.0)
    warmup_events: int = Field(150, ge=1)
    half_log10_p: float = Field(5.0, gt=0.0, description="-log10 p that scores 0.5")
    # alerting
    alert_threshold: float = Field(0.5, gt=0.0, lt=1.0)
    refractory_events: int = Field(0, ge=0, description="events after an alert with no new alert")
    reasons: int = Field(3, ge=1, description="top deviating features named in each alert")
