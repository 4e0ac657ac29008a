"""``from_ncps(module)``: bring a trained ncps (torch) model into ember.

Supported: ``ncps.torch.CfC`` (fully connected or wired, mixed memory, ``proj_size``),
``ncps.torch.LTC`` (any wiring, mixed memory), and the cells ``CfCCell``, ``WiredCfCCell``,
``LTCCell``. The ember model is built with the same configuration, then every weight is copied
(transposed to ember's ``x·W`` layout). Outputs then match ncps within float32 rounding, and
the states too: ember keeps ncps' state layout (wired CfC: layers side by side; LTC: neuron ids;
mixed memory: ``[h, c]``).

Differences that remain by design: ncps returns the whole last layer of a single-layer wiring
as the output, ember returns its motor neurons (the first ``output_dim``); ncps' sequence
wrappers need batch 1 (or a timespans shape that happens to broadcast) for per-sample elapsed
times, ember takes (batch, time) elapsed times for any batch.
"""
from __future__ import annotations

import numpy as np

from ..wiring import Wiring


def _np(t) -> np.ndarray:
    return t.detach().cpu().numpy().astype(np.float32)


def _wiring_of(ncps_wiring) -> Wiring:
    """An ember wiring with exactly the ncps wiring's matrices and layers."""
    layers = [list(ncps_wiring.get_neurons_of_layer(l)) for l in range(ncps_wiring.num_layers)]
    return Wiring(ncps_wiring.units, ncps_wiring.output_dim,
                  adjacency=np.asarray(ncps_wiring.adjacency_matrix),
                  sensory_adjacency=np.asarray(ncps_wiring.sensory_adjacency_matrix),
                  layers=layers if len(layers) > 1 else None)


def _load(module, arrays: dict) -> None:
    module.load_state_dict(arrays, strict=True)


def _cfc_cell_arrays(ncell, prefix="") -> dict:
    out = {}
    linears = [m for m in (ncell.backbone or []) if hasattr(m, "weight")]
    for i, lin in enumerate(linears):
        out[f"{prefix}backbone.{i}.w"] = _np(lin.weight).T
        out[f"{prefix}backbone.{i}.b"] = _np(lin.bias)
    out[f"{prefix}ff1_w"], out[f"{prefix}ff1_b"] = _np(ncell.ff1.weight).T, _np(ncell.ff1.bias)
    if ncell.mode == "pure":
        out[f"{prefix}w_tau"], out[f"{prefix}A"] = _np(ncell.w_tau), _np(ncell.A)
    else:
        for ours, theirs in (("ff2", ncell.ff2), ("ta", ncell.time_a), ("tb", ncell.time_b)):
            out[f"{prefix}{ours}_w"], out[f"{prefix}{ours}_b"] = _np(theirs.weight).T, _np(theirs.bias)
    out[f"{prefix}mask"] = None if ncell.sparsity_mask is None else _np(ncell.sparsity_mask).T
    return out


def _cfc_cell(ncell):
    from .cfc import CfCCell
    linears = [m for m in (ncell.backbone or []) if hasattr(m, "weight")]
    act = _activation_name(ncell)
    cell = CfCCell(ncell.input_size, ncell.hidden_size, ncell.mode,
                   backbone_activation=act,
                   backbone_units=linears[0].out_features if linears else 0,
                   backbone_layers=len(linears), backbone_dropout=_dropout_of(ncell),
                   masked=ncell.sparsity_mask is not None)
    _load(cell, _cfc_cell_arrays(ncell))
    return cell


def _activation_name(ncell) -> str:
    if not ncell.backbone:
        return "lecun_tanh"
    act = type(ncell.backbone[1]).__name__
    return {"LeCun": "lecun_tanh", "Tanh": "tanh", "ReLU": "relu", "SiLU": "silu",
            "GELU": "gelu"}[act]


def _dropout_of(ncell) -> float:
    for m in (ncell.backbone or []):
        if type(m).__name__ == "Dropout":
            return float(m.p)
    return 0.0


def _wired_cfc_cell(ncell):
    from .cfc import WiredCfCCell
    cell = WiredCfCCell(ncell.sensory_size, _wiring_of(ncell._wiring), ncell._layers[0].mode)
    arrays = {}
    for l, layer in enumerate(ncell._layers):
        arrays.update(_cfc_cell_arrays(layer, f"layers.{l}."))
    _load(cell, arrays)
    return cell


def _ltc_cell(ncell):
    from .ltc import LTCCell
    cell = LTCCell(ncell.sensory_size, _wiring_of(ncell._wiring),
                   input_mapping=ncell._input_mapping, output_mapping=ncell._output_mapping,
                   ode_unfolds=ncell._ode_unfolds, epsilon=ncell._epsilon,
                   implicit_param_constraints=ncell._implicit_param_constraints)
    arrays = {name: _np(p) for name, p in ncell.named_parameters()}
    _load(cell, {k: v for k, v in arrays.items() if k in dict(cell.state_dict())})
    return cell


def _lstm_arrays(nlstm) -> dict:
    return {"lstm.input_w": _np(nlstm.input_map.weight).T, "lstm.input_b": _np(nlstm.input_map.bias),
            "lstm.recurrent_w": _np(nlstm.recurrent_map.weight).T}


def from_ncps(module):
    """An ember model equal to the ncps (torch) ``module``: sequence models give an ember
    ``LiquidSequence`` (``CfC``/``LTC``), cells give the matching ember cell."""
    try:
        import ncps.torch as nt
    except ImportError as exc:  # pragma: no cover - ncps is a test/benchmark dependency
        raise ImportError("from_ncps needs the ncps package (pip install ncps)") from exc
    if isinstance(module, nt.CfCCell):
        return _cfc_cell(module)
    if isinstance(module, nt.WiredCfCCell):
        return _wired_cfc_cell(module)
    if isinstance(module, nt.LTCCell):
        return _ltc_cell(module)
    if isinstance(module, (nt.CfC, nt.LTC)):
        from .mixed_memory import MixedMemoryCell
        from .sequence import LiquidSequence
        ncell = module.rnn_cell
        cell = {nt.CfCCell: _cfc_cell, nt.WiredCfCCell: _wired_cfc_cell,
                nt.LTCCell: _ltc_cell}[type(ncell)](ncell)
        if not getattr(module, "batch_first", True):
            raise ValueError("from_ncps: only batch_first=True ncps models are supported")
        if module.use_mixed:
            mixed = MixedMemoryCell(cell)
            _load(mixed, {**{f"cell.{k}": v for k, v in cell.state_dict().items()},
                          **_lstm_arrays(module.lstm)})
            cell = mixed
        fc = getattr(module, "fc", None)
        proj = getattr(fc, "out_features", None)
        seq = LiquidSequence(cell, return_sequences=module.return_sequences, proj_size=proj)
        if proj is not None:
            _load(seq, {**{f"cell.{k}": v for k, v in cell.state_dict().items()},
                        "proj.w": _np(fc.weight).T, "proj.b": _np(fc.bias)})
        return seq
    raise TypeError(f"from_ncps: unsupported module {type(module).__name__}; expected an "
                    "ncps.torch CfC, LTC, CfCCell, WiredCfCCell or LTCCell")
