"""Running a liquid cell over sequences: ``LiquidSequence`` and the ready-made ``CfC``/``LTC``.

``model(x, dt, state) -> (y, state)`` with

- ``x``      (batch, time, features);
- ``dt``     elapsed time before each step, (batch, time) or (batch, time, 1); a number
             applies to every step; ``None`` means 1.0 (regular sampling). Irregular event
             streams are the normal case: pass the time since each key's previous event;
- ``state``  (batch, state_size) from a previous call, or ``None`` for zeros;
- ``mask``   optional (batch, time) booleans: where False the step is skipped, the state is
             held and the output repeats the previous one (padding of ragged per-key
             sequences in one batch; a liquid cell changes its state even at dt = 0);
- ``y``      (batch, time, outputs) with ``return_sequences`` (default), else (batch, outputs).

Running a sequence in pieces, each call given the state the previous one returned, gives
exactly the numbers of running it whole (the same step code runs in both cases).
"""
from __future__ import annotations

from .. import ops
from ..model_file import register, registered_classes
from ..nn import Module
from .cell import LiquidCell
from .cfc import CfCCell, Dense, WiredCfCCell


def build_cell(spec) -> LiquidCell:
    """A cell from a cell, or from ``{"class": name, "config": {...}}`` (model files)."""
    if isinstance(spec, LiquidCell):
        return spec
    if isinstance(spec, dict) and "class" in spec:
        cls = registered_classes().get(spec["class"])
        if cls is None or not issubclass(cls, LiquidCell):
            raise ValueError(f"unknown liquid cell class {spec['class']!r}")
        return cls(**spec.get("config", {}))
    raise TypeError(f"expected a liquid cell or a cell spec dict, got {type(spec).__name__}")


def cell_spec(cell: LiquidCell) -> dict:
    return {"class": type(cell).__name__, "config": cell.get_config()}


@register
class LiquidSequence(Module):
    """Steps ``cell`` over (batch, time, features) with per-step elapsed times; optional
    linear projection of the outputs (``proj_size``, as ncps' ``proj_size``)."""

    def __init__(self, cell, return_sequences: bool = True, proj_size: int | None = None,
                 seed: int | None = None):
        super().__init__()
        self.cell = build_cell(cell)
        self.return_sequences = bool(return_sequences)
        self.proj_size = None if proj_size is None else int(proj_size)
        from . import init
        if self.proj_size is not None:
            self.proj = Dense(self.cell.output_size, self.proj_size, init.rng(seed))
        self._proj_seed = seed

    # ---- shape facts ---------------------------------------------------------------------
    @property
    def input_size(self) -> int:
        return self.cell.input_size

    @property
    def state_size(self) -> int:
        return self.cell.state_size

    @property
    def output_size(self) -> int:
        return self.proj_size if self.proj_size is not None else self.cell.output_size

    def initial_state(self, batch: int):
        return self.cell.initial_state(batch)

    def get_config(self):
        return {"cell": cell_spec(self.cell), "return_sequences": self.return_sequences,
                "proj_size": self.proj_size, "seed": self._proj_seed}

    # ---- running ---------------------------------------------------------------------------
    def forward(self, x, dt=None, state=None, mask=None):
        batch, steps, dt3, state = self._check(x, dt, state)
        cell = self.cell
        # training: a plan built from the parameters now (differentiable, once per call);
        # inference: the cached plan
        plan = cell._build_plan() if cell.training else cell._plan()
        run = cell._run
        h = state
        outs = []
        y = None
        if mask is not None:
            if tuple(ops.shape(mask)) != (batch, steps):
                raise ValueError(f"{type(self).__name__}: mask must be (batch, time) = "
                                 f"{(batch, steps)}, got {ops.shape(mask)}")
            m3 = ops.reshape(ops.astype(mask, "bool"), (batch, steps, 1))
            y = cell.output(h)
        for t in range(steps):
            if mask is None:
                y, h = run(plan, x[:, t], h, dt3[:, t])
            else:
                y_new, h_new = run(plan, x[:, t], h, dt3[:, t])
                keep = m3[:, t]
                y, h = ops.where(keep, y_new, y), ops.where(keep, h_new, h)
            if self.return_sequences:
                outs.append(y)
        if self.return_sequences:
            y = ops.stack(outs, axis=1) if steps else ops.zeros((batch, 0, cell.output_size))
        elif y is None:
            y = cell.output(h)
        if self.proj_size is not None:
            y = self.proj(y)
        return y, h

    def _check(self, x, dt, state):
        name = type(self).__name__
        shape = ops.shape(x)
        if len(shape) != 3:
            raise ValueError(f"{name}: x must be (batch, time, features), got shape {shape}")
        batch, steps, feats = shape
        if feats != self.input_size:
            raise ValueError(f"{name}: x has {feats} features, the model takes {self.input_size}")
        if dt is None:
            dt3 = ops.ones((batch, steps, 1), dtype=ops.dtype_name(x))
        elif not ops.is_array(dt):
            dt3 = ops.full((batch, steps, 1), float(dt), dtype=ops.dtype_name(x))
        else:
            dshape = ops.shape(dt)
            if dshape == (batch, steps):
                dt3 = ops.reshape(dt, (batch, steps, 1))
            elif dshape == (batch, steps, 1):
                dt3 = dt
            else:
                raise ValueError(f"{name}: dt must be (batch, time) = {(batch, steps)} or a "
                                 f"number, got shape {dshape}")
            if steps and batch:
                bad = ops.item(ops.sum(ops.astype(ops.logical_not(ops.isfinite(dt3)), "int32")))
                if bad or ops.item(ops.min(dt3)) < 0:
                    raise ValueError(f"{name}: elapsed times must be finite and >= 0")
        if state is None:
            state = self.cell.initial_state(batch)
        elif ops.shape(state) != (batch, self.state_size):
            raise ValueError(f"{name}: state must be (batch, state_size) = "
                             f"{(batch, self.state_size)}, got {ops.shape(state)}")
        return batch, steps, dt3, state


@register
class CfC(LiquidSequence):
    """A CfC network over sequences (ncps' ``CfC``): ``units`` is a number of neurons (fully
    connected, with a backbone) or a wiring (``AutoNCP(...)``, a wiring config dict)."""

    def __init__(self, input_size: int, units, mode: str = "default", mixed_memory: bool = False,
                 return_sequences: bool = True, proj_size: int | None = None,
                 backbone_activation: str = "lecun_tanh", backbone_units: int | None = None,
                 backbone_layers: int | None = None, backbone_dropout: float | None = None,
                 seed: int | None = None):
        wired = not isinstance(units, int)
        if wired:
            if any(v is not None for v in (backbone_units, backbone_layers, backbone_dropout)):
                raise ValueError("CfC: backbone_* options do not apply to a wired CfC")
            cell = WiredCfCCell(input_size, units, mode, seed=seed)
        else:
            cell = CfCCell(input_size, units, mode, backbone_activation,
                           128 if backbone_units is None else backbone_units,
                           1 if backbone_layers is None else backbone_layers,
                           0.0 if backbone_dropout is None else backbone_dropout, seed=seed)
        if mixed_memory:
            from .mixed_memory import MixedMemoryCell
            cell = MixedMemoryCell(cell, seed=seed)
        super().__init__(cell, return_sequences, proj_size, seed)
        self._config = {"input_size": int(input_size),
                        "units": cell_units_config(units), "mode": mode,
                        "mixed_memory": bool(mixed_memory), "return_sequences": bool(return_sequences),
                        "proj_size": proj_size, "backbone_activation": backbone_activation,
                        "backbone_units": backbone_units, "backbone_layers": backbone_layers,
                        "backbone_dropout": backbone_dropout, "seed": seed}

    def get_config(self):
        return dict(self._config)


def cell_units_config(units):
    from ..wiring import Wiring
    return units.get_config() if isinstance(units, Wiring) else units


@register
class LTC(LiquidSequence):
    """An LTC network over sequences (ncps' ``LTC``): ``units`` is a number of fully
    connected neurons or a wiring."""

    def __init__(self, input_size: int, units, return_sequences: bool = True,
                 mixed_memory: bool = False, input_mapping: str | None = "affine",
                 output_mapping: str | None = "affine", ode_unfolds: int = 6,
                 epsilon: float = 1e-8, implicit_param_constraints: bool = True,
                 seed: int | None = None):
        from .ltc import LTCCell
        cell = LTCCell(input_size, units, input_mapping, output_mapping, ode_unfolds, epsilon,
                       implicit_param_constraints, seed)
        if mixed_memory:
            from .mixed_memory import MixedMemoryCell
            cell = MixedMemoryCell(cell, seed=seed)
        super().__init__(cell, return_sequences, None, seed)
        self._config = {"input_size": int(input_size), "units": cell_units_config(units),
                        "return_sequences": bool(return_sequences),
                        "mixed_memory": bool(mixed_memory), "input_mapping": input_mapping,
                        "output_mapping": output_mapping, "ode_unfolds": int(ode_unfolds),
                        "epsilon": float(epsilon),
                        "implicit_param_constraints": bool(implicit_param_constraints),
                        "seed": seed}

    def get_config(self):
        return dict(self._config)
