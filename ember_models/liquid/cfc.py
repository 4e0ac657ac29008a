"""Closed-form continuous-time (CfC) cells: ``CfCCell`` (fully connected, optional backbone)
and ``WiredCfCCell`` (a stack of masked CfC layers following a wiring, as ncps' WiredCfCCell).

The math lives in ``cfc_plan``; these classes own the parameters, their initialisation (the
same schemes as ncps) and the configuration saved in model files.
"""
from __future__ import annotations

import numpy as np

from .. import ops
from ..model_file import register
from ..nn import Module, ModuleList, Parameter
from ..wiring import as_wiring
from . import activations, cfc_plan, init
from .cell import LiquidCell
from .plan_cache import tracked

MODES = ("default", "no_gate", "pure")


@tracked("w", "b")
class Dense(Module):
    """``y = x·w + b`` with ``w`` (in, out); a building block, not a model of its own."""

    def __init__(self, n_in: int, n_out: int, g: np.random.Generator | None = None,
                 weight=None, bias=None, use_bias: bool = True):
        super().__init__()
        g = g if g is not None else init.rng(None)
        self.w = Parameter(init.param(weight if weight is not None
                                      else init.xavier_uniform(g, n_in, n_out)))
        if use_bias:
            self.b = Parameter(init.param(bias if bias is not None
                                          else init.linear_bias(g, n_in, n_out)))
        else:
            self.register_buffer("b", None)

    def forward(self, x):
        y = ops.matmul(x, self.w)
        return y if self.b is None else y + self.b


@register
@tracked("ff1_w", "ff1_b", "ff2_w", "ff2_b", "ta_w", "ta_b", "tb_w", "tb_b", "w_tau", "A", "mask")
class CfCCell(LiquidCell):
    """One CfC layer over ``[x, h]`` (through an optional backbone MLP), ``units`` neurons.

    mode: 'default' (gated interpolation), 'no_gate', or 'pure' (direct ODE solution).
    sparsity_mask: optional (input_size + units, units) 0/1 mask on the ff1/ff2 heads (as ncps).
    Output = the whole new state.
    """

    def __init__(self, input_size: int, units: int, mode: str = "default",
                 backbone_activation: str = "lecun_tanh", backbone_units: int = 128,
                 backbone_layers: int = 1, backbone_dropout: float = 0.0,
                 sparsity_mask=None, masked: bool = False, seed: int | None = None):
        super().__init__()
        if mode not in MODES:
            raise ValueError(f"unknown CfC mode {mode!r}; choose one of {', '.join(MODES)}")
        if int(input_size) < 1 or int(units) < 1:
            raise ValueError(f"CfCCell needs input_size >= 1 and units >= 1, got "
                             f"{input_size} and {units}")
        activations.core(backbone_activation)  # validates the name
        if not 0.0 <= backbone_dropout < 1.0:
            raise ValueError(f"backbone_dropout must be in [0, 1), got {backbone_dropout}")
        self.input_size, self.units = int(input_size), int(units)
        self.state_size = self.output_size = self.units
        self.mode, self.backbone_activation = mode, backbone_activation
        self.backbone_units = int(backbone_units) if backbone_layers > 0 else 0
        self.backbone_layers, self.backbone_dropout = int(backbone_layers), float(backbone_dropout)
        self.seed = seed
        g = init.rng(seed)
        cat = self.input_size + self.units
        self.backbone = ModuleList(
            [Dense(cat if i == 0 else self.backbone_units, self.backbone_units, g)
             for i in range(self.backbone_layers)])
        head_in = self.backbone_units if self.backbone_layers > 0 else cat
        self.ff1_w = Parameter(init.param(init.xavier_uniform(g, head_in, units)))
        self.ff1_b = Parameter(init.param(init.linear_bias(g, head_in, units)))
        if mode == "pure":
            # ncps applies xavier_uniform to every 2-D parameter, these (1, units) ones included
            self.w_tau = Parameter(init.param(init.xavier_uniform(g, units, 1, (1, units))))
            self.A = Parameter(init.param(init.xavier_uniform(g, units, 1, (1, units))))
        else:
            for head in ("ff2", "ta", "tb"):
                setattr(self, f"{head}_w", Parameter(init.param(init.xavier_uniform(g, head_in, units))))
                setattr(self, f"{head}_b", Parameter(init.param(init.linear_bias(g, head_in, units))))
        if sparsity_mask is not None or masked:
            if self.backbone_layers > 0:
                raise ValueError("a sparsity mask needs backbone_layers=0 (the mask applies to "
                                 "the [input, hidden] rows of the heads)")
            m = np.ones((cat, units), np.float32) if sparsity_mask is None \
                else np.abs(np.asarray(sparsity_mask, dtype=np.float32))
            if m.shape != (cat, units):
                raise ValueError(f"sparsity_mask must have shape {(cat, units)}, got {m.shape}")
            self.register_buffer("mask", init.param(m))
        else:
            self.register_buffer("mask", None)

    def get_config(self):
        return {"input_size": self.input_size, "units": self.units, "mode": self.mode,
                "backbone_activation": self.backbone_activation,
                "backbone_units": self.backbone_units, "backbone_layers": self.backbone_layers,
                "backbone_dropout": self.backbone_dropout, "masked": self.mask is not None,
                "seed": self.seed}

    def output(self, state):
        return state

    def _build_plan(self):
        if self.backbone_layers > 0:
            plan = cfc_plan.build_backbone_plan(_BackboneView(self))
        else:
            plan = cfc_plan.build_stack_plan([self], self.input_size)
        return plan

    def _stepper(self, plan):
        return plan.run     # inference: no dropout, the output is the whole state

    def _run(self, plan, x, h, ts):
        if self.training and self.backbone_dropout > 0:
            return cfc_plan.run(plan, x, h, ts, self._dropout)
        return plan.run(x, h, ts)

    def _dropout(self, v, i):
        # ncps puts dropout after backbone layers 2.. only (not after the first); we follow
        if i == 0:
            return v
        g = self.__dict__.get("_dropout_gen")
        if g is None:
            g = ops.generator(self.seed)
            object.__setattr__(self, "_dropout_gen", g)
        keep = g.bernoulli(ops.full(ops.shape(v), 1.0 - self.backbone_dropout))
        return v * keep * (1.0 / (1.0 - self.backbone_dropout))


class _BackboneView:
    """The cell as ``build_backbone_plan`` reads it (backbone weights by index)."""

    def __init__(self, cell):
        self._cell = cell

    def __getattr__(self, name):
        if name.startswith("bb_w") or name.startswith("bb_b"):
            layer = self._cell.backbone[int(name[4:])]
            return layer.w if name[3] == "w" else layer.b
        return getattr(self._cell, name)


@register
class WiredCfCCell(LiquidCell):
    """A CfC following a wiring: one CfC layer per wiring layer (NCP: inter, command, motor),
    each masked by the wiring's synapses into it and fully recurrent within itself (ncps'
    WiredCfCCell). State = the layers' neurons side by side in layer order; output = the motor
    neurons (the first ``output_dim`` neurons of the last layer)."""

    def __init__(self, input_size: int, wiring, mode: str = "default", seed: int | None = None):
        super().__init__()
        wiring = as_wiring(wiring, input_size)
        self.wiring = wiring
        self.input_size, self.mode, self.seed = int(input_size), mode, seed
        layers = []
        in_features = self.input_size
        g_seed = init.rng(seed)
        for l in range(wiring.num_layers):
            neurons = wiring.get_neurons_of_layer(l)
            if l == 0:
                into = wiring.sensory_adjacency_matrix[:, neurons]
            else:
                prev = wiring.get_neurons_of_layer(l - 1)
                into = wiring.adjacency_matrix[np.ix_(prev, neurons)]
            mask = np.concatenate([into, np.ones((len(neurons), len(neurons)))], axis=0)
            layers.append(CfCCell(in_features, len(neurons), mode, backbone_layers=0,
                                  sparsity_mask=mask, seed=int(g_seed.integers(2**31))))
            in_features = len(neurons)
        self.layers = ModuleList(layers)
        self.layer_sizes = [c.units for c in layers]
        self.state_size = sum(self.layer_sizes)
        self.output_size = min(wiring.output_dim, self.layer_sizes[-1])
        self._out_start = self.state_size - self.layer_sizes[-1]
        self._slice_output = self.output_size < self.layer_sizes[-1]

    def get_config(self):
        return {"input_size": self.input_size, "wiring": self.wiring.get_config(),
                "mode": self.mode, "seed": self.seed}

    def output(self, state):
        return state[:, self._out_start:self._out_start + self.output_size]

    def _build_plan(self):
        return cfc_plan.build_stack_plan(list(self.layers), self.input_size)

    def _stepper(self, plan):
        return super()._stepper(plan) if self._slice_output else plan.run

    def _run(self, plan, x, h, ts):
        if self._slice_output:    # single-layer wirings: the motor neurons are the first ones
            y, new_h = plan.run(x, h, ts)
            return y[:, :self.output_size], new_h
        return plan.run(x, h, ts)
