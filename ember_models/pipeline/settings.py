"""The pipeline's own settings: the ``[model]`` section of the ember TOML file.

Every default works unsupervised on streams never seen before, at any scale and rate; none was
tuned on a particular stream. docs/detection.md says what each knob does.
"""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class PipelineSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    seed: int = 0
    # per-key standardisation of the feature vector (events of exponential forgetting)
    standardize_halflife: float = Field(2000.0, gt=1.0)
    clip: float = Field(6.0, gt=0.0, description="standardised inputs are clipped to ±clip")
    # the liquid reservoir (random, fixed CfC weights) and its motor readout
    wiring: Literal["autoncp", "full"] = "autoncp"
    units: int = Field(24, ge=4, description="neurons per branch")
    motor_neurons: int = Field(8, ge=1, description="motor neurons per branch (autoncp)")
    strides: list[int] = Field([1, 8], min_length=1, description="branch strides, in events")
    ridge: float = Field(1.0, gt=0.0, description="L2 penalty of the motor readout fit")
    readout_halflife: float = Field(50000.0, gt=0.0,
                                    description="events after which old data weighs half")
    # the RBM over the standardised features
    rbm_hidden: int = Field(16, ge=1)
    rbm_epochs: int = Field(3, ge=1)
    # calibration: tail evidence → score in [0, 1)
    tail_size: int = Field(32, ge=2)
    tail_memory: float = Field(20000.0, ge=10.0)
    warmup_events: int = Field(150, ge=1, description="events of a key before it can score")
    half_evidence: float = Field(5.0, gt=0.0, description="-log10 p that scores 0.5")
    model_weight: float = Field(1.0, ge=0.0,
                                description="weight of the learnt models' evidence against "
                                            "the values' own tail evidence")
    # alerting
    alert_threshold: float = Field(0.5, gt=0.0, lt=1.0)
    refractory_events: int = Field(0, ge=0, description="events after an alert with no new alert")
    reasons: int = Field(3, ge=1, description="top deviating features named in each alert")
