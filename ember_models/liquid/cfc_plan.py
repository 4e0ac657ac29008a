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


LARGE_BATCH = 8    # from about this many rows up the layered (keys-last) runner is faster:
                   # measured 25.5 vs 25.9 µs at 8 rows, 34 vs 49 at 48 (AutoNCP(32, 4), 2-core VM)


class CfCPlan:
    """Fused weights of a CfC stack. ``layers`` holds per layer:
    (first column, last column, units, W_in or None, P or pure-mode (A, |w_tau|))."""

    __slots__ = ("mode", "w0", "b0", "layers", "backbone", "head_w", "head_b", "run", "dense",
                 "ts_w", "ts_b", "bias_col")


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


def _mixer(mode: str, units: int, copies: int = 1):
    """(3u, 3·copies·u) matrix taking ``[ff1, ff2, g]`` to ``[p, g, q]``, each part repeated
    ``copies`` times, so that ``h' = p + g·q`` is three slices, a product and a sum. Two
    copies give ``[h', h']``: the layer's output and the copy the next layer scales by ts."""
    eye = np.eye(units, dtype=np.float32)
    z = np.zeros_like(eye)
    if mode == "default":   # p = (f1+f2)/2, q = (f2-f1)/2
        p, g, q = [0.5 * eye, 0.5 * eye, z], [z, z, eye], [-0.5 * eye, 0.5 * eye, z]
    else:                   # no_gate: p = f1 + f2/2, q = f2/2
        p, g, q = [eye, 0.5 * eye, z], [z, z, eye], [z, 0.5 * eye, z]
    cols = [np.concatenate(part, axis=0) for part in (p, g, q) for _ in range(copies)]
    return ops.from_numpy(np.concatenate(cols, axis=1).astype(np.float32))


def _layer_tail(mode, cell):
    if mode == "pure":
        return (cell.A, ops.abs(cell.w_tau))
    return _mixer(mode, cell.units)


def _block_columns(cells, input_size, sizes, part, width_of):
    """Block-structured weights over the rows ``[x, h_0..h_L-1]``: layer l's columns hold
    ``part(l)``'s input rows (layer 0 only: the others read the previous layer's output) and
    its own-state rows; every other block is zero."""
    cols = []
    for l, cell in enumerate(cells):
        w, n_in, width = part(l), cell.input_size, width_of(cell)
        rows = [w[:n_in] if l == 0 else _zeros(input_size, width)]
        rows += [w[n_in:] if k == l else _zeros(size, width) for k, size in enumerate(sizes)]
        cols.append(ops.concatenate(rows, axis=0))
    return ops.concatenate(cols, axis=1)


def build_stack_plan(cells, input_size: int) -> CfCPlan:
    """Plan of a stack of backbone-less CfC layers (a wired CfC, or one plain layer).
    Layer l reads the previous layer's new output (layer 0 reads x) and its own old state."""
    if cells[0].mode == "pure":
        return _pure_stack_plan(cells, input_size)
    return _gated_stack_plan(cells, input_size)


def _gated_stack_plan(cells, input_size: int) -> CfCPlan:
    """Gated modes. Per step, one small product ``e = ts·C + D`` (constants C, D) gives
    every ts-dependent scale at once: ``[1…1, ts…ts]`` for each layer's input and ``[1, ts]``
    for the biases. Then ``z = ([x, h, x, h, 1, ts]·e₀)·W0`` holds every layer's contribution
    from x, its own old state, its bias and its ts-scaled gate terms; layers after the first
    add ``([u, u]·e_l)·W_in`` of the previous layer's output ``u``, which the previous
    layer's mixer emits twice. So every elementwise op meets operands of one shape: at batch
    1, NumPy's broadcasting costs more than the arithmetic."""
    mode = cells[0].mode
    sizes = [c.units for c in cells]
    m = input_size + sum(sizes)
    heads = [_heads(c) for c in cells]
    three = lambda c: 3 * c.units   # noqa: E731
    w0 = ops.concatenate([
        _block_columns(cells, input_size, sizes, lambda l: heads[l][0], three),   # [x, h]
        _block_columns(cells, input_size, sizes, lambda l: heads[l][1], three),   # [x, h]·ts
        ops.reshape(ops.concatenate([bias for _, _, _, bias in heads]), (1, -1)),  # 1
        ops.concatenate([trow for _, _, trow, _ in heads], axis=1)], axis=0)      # ts
    # e's columns: layer 0's input scales [1 (m), ts (m), 1, ts], the constant pair [1, 1]
    # that becomes the 1, ts columns of layer 0's input, then [1 (n), ts (n)] for each later
    # layer's input (n = the previous layer's units)
    scale_c = [np.zeros(m), np.ones(m), [0.0, 1.0], [0.0, 0.0]]
    scale_d = [np.ones(m), np.zeros(m), [1.0, 0.0], [1.0, 1.0]]
    layers, col, offset = [], 0, 2 * m + 4
    for l, (cell, (plain, timed, _, _)) in enumerate(zip(cells, heads)):
        n, copies = cell.units, 1 if l == len(cells) - 1 else 2
        if l == 0:
            w_in, s0, s1 = None, 0, 2 * m + 2
        else:
            n_in = cell.input_size
            w_in = ops.concatenate([plain[:n_in], timed[:n_in]], axis=0)
            s0, s1 = offset, offset + 2 * n_in
            scale_c += [np.zeros(n_in), np.ones(n_in)]
            scale_d += [np.ones(n_in), np.zeros(n_in)]
            offset = s1
        layers.append((col, col + 3 * n, n, w_in, _mixer(mode, n, copies), s0, s1,
                       copies * n, 2 * copies * n))
        col += 3 * n
    plan = CfCPlan()
    plan.mode, plan.layers, plan.backbone, plan.w0, plan.b0 = mode, layers, None, w0, None
    plan.ts_w = ops.from_numpy(np.concatenate(scale_c).astype(np.float32).reshape(1, -1))
    plan.ts_b = ops.from_numpy(np.concatenate(scale_d).astype(np.float32))
    plan.bias_col = 2 * m + 2   # e[bias_col:bias_col + 2] = [1, 1]
    plan.head_w = plan.head_b = None
    plan.dense = [_dense_layer(c) for c in cells]
    plan.run = runner(plan)
    return plan


def _pure_stack_plan(cells, input_size: int) -> CfCPlan:
    """Pure mode: one matmul of ``[x, h]`` gives every layer's ``v·W1 + b1`` from x and its
    own old state; layers after the first add ``u·W1_in`` of the previous layer's output."""
    sizes = [c.units for c in cells]
    heads = [_heads(c) for c in cells]
    layers, col = [], 0
    for l, (cell, (plain, _, _, _)) in enumerate(zip(cells, heads)):
        w_in = plain[:cell.input_size] if l > 0 else None
        layers.append((col, col + cell.units, cell.units, w_in, _layer_tail("pure", cell)))
        col += cell.units
    plan = CfCPlan()
    plan.mode, plan.layers, plan.backbone = "pure", layers, None
    plan.w0 = _block_columns(cells, input_size, sizes, lambda l: heads[l][0], lambda c: c.units)
    plan.b0 = ops.concatenate([bias for _, _, _, bias in heads])
    plan.head_w = plan.head_b = plan.dense = plan.ts_w = plan.ts_b = plan.bias_col = None
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
    plan.dense = plan.ts_w = plan.ts_b = plan.bias_col = None
    plan.layers = [(0, (1 if cell.mode == "pure" else 3) * cell.units, cell.units, None,
                    _layer_tail(cell.mode, cell))]
    plan.run = runner(plan)
    return plan


def runner(plan: CfCPlan):
    """The step function of a plan: ``run(x, h, ts) -> (last layer's output, new state)``.
    The common case (gated modes, no backbone: every wired CfC) is a closure with every
    weight and op bound locally, because at batch 1 attribute lookups cost as much as math.
    One row runs as 1-D vectors (fewer dimensions for NumPy to walk: ~1 µs of ~14 per step),
    from ``LARGE_BATCH`` rows up the layered runner takes over."""
    if plan.mode == "pure" or plan.backbone is not None:
        return lambda x, h, ts: run(plan, x, h, ts)
    # ops.dot: every right operand here is 2-D (on NumPy np.dot, no rank check: ~0.07 µs
    # of each of 7 products per step)
    concat, matmul, tanh = ops.concatenate, ops.dot, ops.tanh
    ts_w, ts_b, w0 = plan.ts_w, plan.ts_b, plan.w0
    # index tuples built once: (..., slice) serves (B, ·) rows and 1-D vectors alike, and
    # a prebuilt tuple indexes as fast as a plain slice (building it per call costs ~30%)
    ones = _ix(plan.bias_col, plan.bias_col + 2)
    (_, a1, n0, _, p0, _, m2, k1, k2), rest = plan.layers[0], plan.layers[1:]
    z0, e0, p_, g_, q_, h0 = _ix(None, a1), _ix(None, m2), _ix(None, k1), _ix(k1, k2), \
        _ix(k2, None), _ix(None, n0)
    later = [(_ix(c0, c1), _ix(s0, s1), w_in, p, _ix(None, j1), _ix(j1, j2), _ix(j2, None),
              _ix(None, n)) for c0, c1, n, w_in, p, s0, s1, j1, j2 in rest]
    run_large = _layered_runner(plan)

    def run_gated(x, h, ts):
        b = x.shape[0]
        if b >= LARGE_BATCH:
            return run_large(x, h, ts)
        if b == 1:   # one row: 1-D vectors
            x, h, ts = x[0], h[0], ts[0]
        e = matmul(ts, ts_w) + ts_b
        z = matmul(concat([x, h, x, h, e[ones]], axis=-1) * e[e0], w0)
        pgq = matmul(tanh(z[z0]), p0)
        out = pgq[p_] + pgq[g_] * pgq[q_]            # [h0', h0'] when a layer follows
        state = [out[h0]]
        for zl, el, w_in, p, pl, gl, ql, hl in later:
            pgq = matmul(tanh(z[zl] + matmul(out * e[el], w_in)), p)
            out = pgq[pl] + pgq[gl] * pgq[ql]
            state.append(out[hl])
        new = concat(state, axis=-1) if later else out
        if b == 1:
            return out[None], new[None]
        return out, new
    return run_gated


def _ix(start, stop):
    return (Ellipsis, slice(start, stop))


def _layered_runner(plan: CfCPlan):
    """Large batches: one dense matmul per layer over ``[input, own state]`` and the gate
    mixed elementwise. Fewer FLOPs than the fused global matmul (which multiplies the zero
    blocks of its block structure too), more array calls: the better choice from
    ``LARGE_BATCH`` rows up. Same function; rounding differs by ~1e-7.
    It computes keys-last (units x batch, transposed in and out): the gate's column blocks
    are then contiguous rows, where batch-first they are strided column slices of a few
    units that NumPy walks one row at a time (1.4x faster at 1,250 rows, 2.2x at 10,000)."""
    concat, matmul, tr = ops.concatenate, ops.matmul, ops.transpose
    default = plan.mode == "default"
    layers = [(tr(w), ops.reshape(b, (-1, 1)), n, 2 * n, 3 * n) for w, b, n in plan.dense]
    sizes = [n for _, _, n in plan.dense]
    bounds = [(sum(sizes[:i]), sum(sizes[:i + 1])) for i in range(len(sizes))]

    def run_layered(x, h, ts):
        out, outs, ts = tr(x), [], tr(ts)
        for (w, b, n, n2, n3), (s0, s1) in zip(layers, bounds):
            out = keys_last_update(matmul(w, concat([out, tr(h[:, s0:s1])], axis=0)) + b, ts,
                                   n, default)
            outs.append(out)
        return tr(out), tr(outs[0] if len(outs) == 1 else concat(outs, axis=0))
    return run_layered


def keys_last_layer(cell):
    """A gated layer's keys-last weights: (W' [4u, in + u], b [4u, 1], u), so that
    ``W'·[input, own state] + b`` (columns = samples) gives ``[ff1, ff2, ta/2, tb/2]``."""
    w, b, n = _dense_layer(cell)
    return ops.transpose(w), ops.reshape(b, (-1, 1)), n


def keys_last_update(z, ts, n: int, default: bool):
    """A gated layer's new state, keys-last: z = ``[ff1, ff2, ta/2, tb/2]`` pre-activations
    [4n, B], ts [1, B]."""
    f = ops.tanh(z[:2 * n])
    g = ops.tanh(z[2 * n:3 * n] * ts + z[3 * n:])
    f1, f2 = f[:n], f[n:]
    if default:      # f1 + σ·(f2 − f1) with σ = (1 + g)/2
        return 0.5 * ((f1 + f2) + g * (f2 - f1))
    return f1 + 0.5 * (f2 + g * f2)      # no_gate: f1 + σ·f2


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
    elif plan.mode == "pure":
        z = ops.matmul(ops.concatenate([x, h], axis=1), plan.w0) + plan.b0
    else:
        return plan.run(x, h, ts)   # a gated stack (no backbone, so nothing to drop out)
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
            pgq = ops.matmul(ops.tanh(pre), mixer)
            inp = pgq[:, :units] + pgq[:, units:2 * units] * pgq[:, 2 * units:]
            outs.append(inp)
    return inp, (outs[0] if len(outs) == 1 else ops.concatenate(outs, axis=1))
