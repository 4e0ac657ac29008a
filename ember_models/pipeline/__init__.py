"""The anomaly pipeline both drivers call: see pipeline.Pipeline and docs/contracts.md."""
from .key_state import KeyStateError
from .pipeline import Pipeline, StepResult
from .settings import PipelineSettings

__all__ = ["Pipeline", "StepResult", "PipelineSettings", "KeyStateError"]
