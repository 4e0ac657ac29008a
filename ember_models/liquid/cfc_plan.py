"""The CfC update, written once on fused weights (a *plan*), for one layer or a wired stack.

ncps' CfC layer (Hasani et al. 2022, closed-form continuous-time), per layer, with
``v = [layer input, own hidden]`` (or the backbone's output when there is one)::

    ff1 = tanh(v·W1 + b1)   ff2 = tanh(v·W2 + b2)          (W1, W2 masked when wired)
    σ   = sigmoid((v·Wa + ba)·ts + v·Wb + bb)              (time gate, ts = elapsed time)
    default: h' = ff1·(1−σ) + σ·ff2      no_gate: h' = ff1 + σ·ff2
    pure:    h' = A − A·exp(−ts·(|w_tau| + |v·W1 + b1|))·(v·W1 + b1)

The plan rewrites that into as few array calls as possible, because a batch-1 step is bound
by per-call overhead, not arithmetic:

- one matmul of ``[x, h, x·ts, h·ts, ts]`` gives every layer's contribution from the input, its
  own old state, the biases and the ts-scaled gate terms at once (block-structured weights);
  layers after the first add ``[u, u·ts]·W_in`` of the previous layer's new output ``u``;
- the gate preactivation is pre-halved so one ``tanh`` over ``[ff1, ff2, gate/2]`` gives
  ff1, ff2 and g = tanh(gate/2) = 2σ−1;
- ``[p, q, g] = [ff1, ff2, g]·P`` with a fixed 0/±½/1 matrix, then ``h' = p + g·q``
  (default: p = (ff1+ff2)/2, q = (ff2−ff1)/2; no_gate: p = ff1 + ff2/2, q = ff2/2).

Building the plan is itself ``ops`` code on the parameters, so ``forward`` (plan built from
the parameters each call) is differentiable and ``step`` (cached plan) gives the same numbers.
"""
from __future__ import annotations

import numpy as np

from .. import ops
from . import activations


LARGE_BATCH = 48   # from about this many rows up the layered runner is faster (measured here)


class CfCPlan:
    """Fused weights of a CfC stack. ``layers`` holds per layer:
    (first column, last column, units, W_in or None, P or pure-mode (A, |w_tau|))."""

    __slots__ = ("mode", "w0", "b0", "layers", "backbone", "head_w", "head_b", "run", "dense")


def _zeros(rows, cols):
    return ops.zeros((rows, cols))


def _heads(cell, masked=True):
    """One layer's head matrices (rows = the layer's ``v``): the gated heads fused as
    ``[W1, W2, Wb/2]`` and ``[0, 0, Wa/2]`` with biases; pure: ``W1`` and ``b1``."""
    w1 = cell.ff1_w
    if masked and cell.mask is not None:
        w1 = w1 * cell.mask
    if cell.mode == "pure":
        return w1, None, None, cell.ff1_b
    w2 = cell.ff2_w if cell.mask is None or not masked else cell.ff2_w * cell.mask
    rows, units = ops.shape(w1)
    plain = ops.concatenate([w1, w2, 0.5 * cell.tb_w], axis=1)
    timed = ops.concatenate([_zeros(rows, 2 * units), 0.5 * cell.ta_w], axis=1)
    trow = ops.reshape(ops.concatenate([ops.zeros((2 * units,)), 0.5 * cell.ta_b]), (1, 3 * units))
    bias = ops.concatenate([cell.ff1_b, cell.ff2_b, 0.5 * cell.tb_b])
    return plain, timed, trow, bias


def _mixer(mode: str, units: int):
    """(3u, 3u) matrix taking ``[ff1, ff2, g]`` to ``[p, q, g]`` (g passes through exactly)."""
    eye = np.eye(units, dtype=np.float32)
    z = np.zeros_like(eye)
    if mode == "default":   # p = (f1+f2)/2, q = (f2-f1)/2
        m = np.block([[0.5 * eye, -0.5 * eye, z], [0.5 * eye, 0.5 * eye, z], [z, z, eye]])
    else:                   # no_gate: p = f1 + f2/2, q = f2/2
        m = np.block([[eye, z, z], [0.5 * eye, 0.5 * eye, z], [z, z, eye]])
    return ops.from_numpy(m.astype(np.float32))


def _layer_tail(mode, cell):
    if mode == "pure":
        return (cell.A, ops.abs(cell.w_tau))
    return _mixer(mode, cell.units)


def build_stack_plan(cells, input_size: int) -> CfCPlan:
    """Plan of a stack of backbone-less CfC layers (a wired CfC, or one plain layer).
    Layer l reads the previous layer's new output (layer 0 reads x) and its own old state."""
    mode = cells[0].mode
    sizes = [c.units for c in cells]
    total = sum(sizes)
    width = 1 if mode == "pure" else 3
    col_blocks_plain, col_blocks_timed, trows, biases, layers = [], [], [], [], []
    col = 0
    for l, cell in enumerate(cells):
        plain, timed, trow, bias = _heads(cell)
        n_in = cell.input_size
        # rows of the global input [x (input_size), h_0..h_L-1 (total)] for this layer's columns
        parts = [plain[:n_in] if l == 0 else _zeros(input_size, width * cell.units)]
        for k, size in enumerate(sizes):
            parts.append(plain[n_in:] if k == l else _zeros(size, width * cell.units))
        col_blocks_plain.append(ops.concatenate(parts, axis=0))
        if mode != "pure":
            tparts = [timed[:n_in] if l == 0 else _zeros(input_size, 3 * cell.units)]
            for k, size in enumerate(sizes):
                tparts.append(timed[n_in:] if k == l else _zeros(size, 3 * cell.units))
            col_blocks_timed.append(ops.concatenate(tparts, axis=0))
            trows.append(trow)
        biases.append(bias)
        w_in = None
        if l > 0:
            w_in = plain[:n_in] if mode == "pure" else \
                ops.concatenate([plain[:n_in], timed[:n_in]], axis=0)
        layers.append((col, col + width * cell.units, cell.units, w_in, _layer_tail(mode, cell)))
        col += width * cell.units
    plan = CfCPlan()
    plan.mode, plan.layers, plan.backbone = mode, layers, None
    w_plain = ops.concatenate(col_blocks_plain, axis=1)
    if mode == "pure":
        plan.w0 = w_plain
    else:
        plan.w0 = ops.concatenate([w_plain, ops.concatenate(col_blocks_timed, axis=1),
                                   ops.concatenate(trows, axis=1)], axis=0)
    plan.b0 = ops.concatenate(biases)
    plan.head_w = plan.head_b = None
    plan.dense = [_dense_layer(c) for c in cells] if mode != "pure" else None
    plan.run = runner(plan)
    return plan


def _dense_layer(cell):
    """Per-layer weights for large batches: ``[in, h]·W + b = [ff1, ff2, ta/2, tb/2]``."""
    w1, w2 = cell.ff1_w, cell.ff2_w
    if cell.mask is not None:
        w1, w2 = w1 * cell.mask, w2 * cell.mask
    w = ops.concatenate([w1, w2, 0.5 * cell.ta_w, 0.5 * cell.tb_w], axis=1)
    b = ops.concatenate([cell.ff1_b, cell.ff2_b, 0.5 * cell.ta_b, 0.5 * cell.tb_b])
    return w, b, cell.units


def build_backbone_plan(cell) -> CfCPlan:
    """Plan of one CfC layer with a backbone (the fully connected ncps CfC)."""
    inner, outer = activations.FOLDABLE.get(cell.backbone_activation, (1.0, 1.0))
    backbone, scale = [], 1.0
    for i in range(cell.backbone_layers):
        w, b = getattr(cell, f"bb_w{i}"), getattr(cell, f"bb_b{i}")
        # fold the previous layer's outer scale and this layer's inner scale into w, b
        backbone.append((w * (scale * inner) if scale * inner != 1.0 else w,
                         b * inner if inner != 1.0 else b,
                         activations.core(cell.backbone_activation)))
        scale = outer
    plain, timed, trow, bias = _heads(cell)
    if scale != 1.0:
        plain = plain * scale
        timed = None if timed is None else timed * scale
    plan = CfCPlan()
    plan.mode, plan.backbone, plan.b0, plan.w0 = cell.mode, backbone, None, None
    plan.head_w = plain if cell.mode == "pure" else ops.concatenate([plain, timed, trow], axis=0)
    plan.head_b = bias
    plan.dense = None
    plan.layers = [(0, (1 if cell.mode == "pure" else 3) * cell.units, cell.units, None,
                    _layer_tail(cell.mode, cell))]
    plan.run = runner(plan)
    return plan


def runner(plan: CfCPlan):
    """The step function of a plan: ``run(x, h, ts) -> (last layer's output, new state)``.
    The common case (gated modes, no backbone: every wired CfC) is a closure with every
    weight and op bound locally, because at batch 1 attribute lookups cost as much as math."""
    if plan.mode == "pure" or plan.backbone is not None:
        return lambda x, h, ts: run(plan, x, h, ts)
    concat, matmul, tanh = ops.concatenate, ops.matmul, ops.tanh
    w0, b0 = plan.w0, plan.b0
    (a0, a1, n0, _, p0), rest = plan.layers[0], [(c0, c1, n, w, p) for c0, c1, n, w, p
                                                  in plan.layers[1:]]
    m0 = 2 * n0
    run_large = _layered_runner(plan)

    def run_gated(x, h, ts):
        if x.shape[0] >= LARGE_BATCH:
            return run_large(x, h, ts)
        u = concat([x, h], axis=1)
        z = matmul(concat([u, u * ts, ts], axis=1), w0) + b0
        pqg = matmul(tanh(z[:, a0:a1]), p0)
        out = pqg[:, :n0] + pqg[:, m0:] * pqg[:, n0:m0]
        if not rest:
            return out, out
        outs = [out]
        for c0, c1, n, w_in, p in rest:
            pqg = matmul(tanh(z[:, c0:c1] + matmul(concat([out, out * ts], axis=1), w_in)), p)
            out = pqg[:, :n] + pqg[:, n + n:] * pqg[:, n:n + n]
            outs.append(out)
        return out, concat(outs, axis=1)
    return run_gated


def _layered_runner(plan: CfCPlan):
    """Large batches: one dense matmul per layer over ``[input, own state]`` and the gate
    mixed elementwise. Fewer FLOPs than the fused global matmul (which multiplies the zero
    blocks of its block structure too), more array calls: the better choice from
    ``LARGE_BATCH`` rows up. Same function; rounding differs by ~1e-7."""
    concat, matmul, tanh = ops.concatenate, ops.matmul, ops.tanh
    default = plan.mode == "default"
    layers = [(w, b, n, 2 * n, 3 * n) for w, b, n in plan.dense]
    sizes = [n for _, _, n in plan.dense]
    bounds = [(sum(sizes[:i]), sum(sizes[:i + 1])) for i in range(len(sizes))]

    def run_layered(x, h, ts):
        out, outs = x, []
        for (w, b, n, n2, n3), (s0, s1) in zip(layers, bounds):
            z = matmul(concat([out, h[:, s0:s1]], axis=1), w) + b
            f = tanh(z[:, :n2])
            g = tanh(z[:, n2:n3] * ts + z[:, n3:])
            f1, f2 = f[:, :n], f[:, n:]
            if default:      # f1 + σ·(f2 − f1) with σ = (1 + g)/2
                d = f2 - f1
                out = 0.5 * ((f1 + f2) + g * d)
            else:            # f1 + σ·f2
                out = f1 + 0.5 * (f2 + g * f2)
            outs.append(out)
        return out, (outs[0] if len(outs) == 1 else concat(outs, axis=1))
    return run_layered


def run(plan: CfCPlan, x, h, ts, dropout=None):
    """One CfC step with a plan, any mode: (last layer's output, new state).
    ``dropout(v, i)`` (training only) is applied after backbone layer i."""
    if plan.backbone is not None:
        v = ops.concatenate([x, h], axis=1)
        for i, (w, b, act) in enumerate(plan.backbone):
            v = act(ops.matmul(v, w) + b)
            if dropout is not None:
                v = dropout(v, i)
        if plan.mode == "pure":
            z = ops.matmul(v, plan.head_w) + plan.head_b
        else:
            z = ops.matmul(ops.concatenate([v, v * ts, ts], axis=1), plan.head_w) + plan.head_b
    else:
        u = ops.concatenate([x, h], axis=1)
        if plan.mode == "pure":
            z = ops.matmul(u, plan.w0) + plan.b0
        else:
            z = ops.matmul(ops.concatenate([u, u * ts, ts], axis=1), plan.w0) + plan.b0
    outs = []
    inp = None
    if plan.mode == "pure":
        nts = -ts
        for c0, c1, units, w_in, (a, wt) in plan.layers:
            ff1 = z[:, c0:c1]
            if w_in is not None:
                ff1 = ff1 + ops.matmul(inp, w_in)
            inp = a - (a * ops.exp((wt + ops.abs(ff1)) * nts)) * ff1
            outs.append(inp)
    else:
        for c0, c1, units, w_in, mixer in plan.layers:
            pre = z[:, c0:c1]
            if w_in is not None:
                pre = pre + ops.matmul(ops.concatenate([inp, inp * ts], axis=1), w_in)
            pqg = ops.matmul(ops.tanh(pre), mixer)
            inp = pqg[:, :units] + pqg[:, 2 * units:] * pqg[:, units:2 * units]
            outs.append(inp)
    return inp, (outs[0] if len(outs) == 1 else ops.concatenate(outs, axis=1))
