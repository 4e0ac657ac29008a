"""Liquid (continuous-time) recurrent networks on ``ops``: CfC and LTC cells, wired or fully
connected, a sequence wrapper with resumable state, mixed memory (LSTM-gated), multi-stride
networks, the motor trigger, and ``from_ncps`` to import ncps models. See docs/liquid.md."""
from .cell import LiquidCell
from .cfc import CfCCell, WiredCfCCell
from .ltc import LTCCell
from .mixed_memory import MixedMemoryCell
from .multi_stride import MultiStrideLiquid
from .trigger import AdaptiveTrigger
from .sequence import CfC, LiquidSequence, LTC, build_cell
from .from_ncps import from_ncps

__all__ = ["LiquidCell", "CfCCell", "WiredCfCCell", "LTCCell", "MixedMemoryCell",
           "LiquidSequence", "CfC", "LTC", "build_cell", "from_ncps", "MultiStrideLiquid",
           "AdaptiveTrigger"]
