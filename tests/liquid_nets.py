"""Networks the keys-last reservoir tests share (tests/test_liquid_multi_stride.py,
tests/test_liquid_keys_last_kernel.py): mixed branches (wired and plain CfC), strides in steps
or seconds, a pooling mode and a gate mode."""
from __future__ import annotations

from ember_models.liquid import CfCCell, MultiStrideLiquid, WiredCfCCell
from ember_models.wiring import AutoNCP

# (unit, pool, mode): the combinations both tests run
KEYS_LAST_CASES = [("steps", "mean", "default"), ("seconds", "mean", "default"),
                   ("steps", "last", "no_gate")]


def mixed_reservoir(unit: str, pool: str, mode: str, every_step_branch: bool = False
                    ) -> MultiStrideLiquid:
    """Three branches on 5 inputs: wired (stride 1), plain (3), wired (4) — in seconds 0.5,
    2, 3. ``every_step_branch`` adds a fourth, plain, stepped at every event (stride 1; 1 s),
    whose input block is a copy of the input rather than the input's own rows."""
    cells = [WiredCfCCell(5, AutoNCP(10, 2, seed=1), mode=mode, seed=1),
             CfCCell(5, 6, mode=mode, backbone_layers=0, seed=2),
             WiredCfCCell(5, AutoNCP(9, 3, seed=3), mode=mode, seed=3)]
    strides = [1, 3, 4] if unit == "steps" else [0.5, 2.0, 3.0]
    if every_step_branch:
        cells.append(CfCCell(5, 4, mode=mode, backbone_layers=0, seed=4))
        strides.append(1 if unit == "steps" else 1.0)
    return MultiStrideLiquid(cells, strides, unit, pool=pool).eval()
