"""A multi-stride CfC reservoir stepped keys-last over a working array, for batch loops.

``MultiStrideLiquid.next_state`` takes and returns batch-first states (one row per sample), as
a stored key state is one row. A loop over many steps of a large batch (the pipeline's
detector: ~1,000 keys per step) pays for that layout every step: the CfC runs keys-last
(units x keys: its gate's blocks are then contiguous rows), so each step transposed the input
and every layer's state in and the new state out (a transposed copy of 1,250 x 48 float32
costs ~30 us, seven elementwise passes), and concatenated each layer's ``[input, own state]``.

Here the whole reservoir state of a batch lives in one keys-last working array ``X`` (rows =
state variables, columns = samples), laid out so that every layer's ``[input, own state]`` is
a run of adjacent rows: the step input u, then branch 0's layers in order, then per further
branch its own input block (pooled or copied input) and its layers; the step bookkeeping
(steps and time since each branch's last update, summed skipped inputs) after them. A layer's
product is then ``W · X[a:b]`` on the rows as they lie, and its new state is written back into
its own rows, where the next layer reads it as its input. No transposes, no concatenations
per step: ``load`` and ``store`` convert from and to the batch-first rows once per batch.

Same arithmetic as the layered CfC runner (``cfc_plan._layered_runner``) and
``MultiStrideLiquid._run``: the states equal ``next_state``'s bit for bit (the products have
the same shapes and operand order). Gated CfC branches without a backbone only (``CfCCell``
with ``backbone_layers=0``, ``WiredCfCCell``); ``supports`` says whether a network qualifies.
"""
from __future__ import annotations

import numpy as np

from .. import ops
from ..column_bias import ColumnBias
from . import cfc_plan
from .plan_cache import Generation


def supports(net) -> bool:
    """Whether ``KeysLastReservoir`` can step ``net`` (a MultiStrideLiquid)."""
    from .cfc import CfCCell, WiredCfCCell
    for cell in net.branches:
        if isinstance(cell, WiredCfCCell):
            layers = list(cell.layers)
        elif isinstance(cell, CfCCell) and cell.backbone_layers == 0:
            layers = [cell]
        else:
            return False
        if any(c.mode not in ("default", "no_gate") for c in layers):
            return False
    return True


def _layers(cell):
    from .cfc import WiredCfCCell
    return list(cell.layers) if isinstance(cell, WiredCfCCell) else [cell]


class KeysLastReservoir:
    """Steps a ``MultiStrideLiquid`` keys-last. Build with ``for_network`` (cached per weight
    generation); per batch ``X = load(h)``, per step ``step(X, u, ts)``, ``store(X)`` at the
    end. ``X`` may be a column prefix ``X[:, :m]`` of the batch's array (the keys still
    running); writes go through it (where ``ops.slices_are_views`` is False, write the
    prefix back)."""

    @classmethod
    def for_network(cls, net) -> "KeysLastReservoir":
        cached = net.__dict__.get("_keys_last_cache")
        if cached is None or cached[0] != Generation.value:
            cached = (Generation.value, cls(net))
            object.__setattr__(net, "_keys_last_cache", cached)
        return cached[1]

    def __init__(self, net):
        if not supports(net):
            raise ValueError("KeysLastReservoir steps gated CfC branches without a backbone "
                             "(CfCCell(backbone_layers=0) or WiredCfCCell) only")
        f, k = net.input_size, len(net.branches)
        self.input_size, self.state_size = f, net.state_size
        offs, book = net._offsets, net._book
        # rows of X: u, then per branch [its input block (not for branch 0: u is its input),
        # its layers]; then count (k), elapsed (k), sums (k·f) as in the state row
        row, self.branches, self.moves = f, [], []      # moves: (state cols, X rows) pairs
        for i, (cell, stride) in enumerate(zip(net.branches, net.strides)):
            every = net._every_step[i]
            if i == 0 and every:
                in_rows = (0, f)
            else:
                in_rows = (row, row + f)
                row += f
            layers, col = [], offs[i]
            prev = in_rows
            for c in _layers(cell):
                w, b, n = cfc_plan.keys_last_layer(c)
                # the layer reads [previous layer's rows (or the input block), its own rows]
                own = (row, row + n)
                assert prev[1] == own[0]
                layers.append((w, (i, len(layers), b), n, (prev[0], own[1]), own,
                               c.mode == "default"))
                self.moves.append(((col, col + n), own))
                col += n
                prev, row = own, row + n
            # the branch's output: the first output_size neurons of its last layer (a wired
            # cell) or its whole state (a plain one), which start at its first layer's row
            first = layers[0][4][0] + getattr(cell, "_out_start", 0)
            out_rows = (first, first + cell.output_size)
            self.branches.append({"every": every, "stride": float(stride), "in": in_rows,
                                  "layers": layers, "out": out_rows})
        self.count0, self.elapsed0, self.sums0 = row, row + k, row + 2 * k
        self.moves.append(((book, book + 2 * k + k * f), (row, row + 2 * k + k * f)))
        self.rows = row + 2 * k + k * f
        self.by_steps, self.mean_pool = net.stride_unit == "steps", net.pool == "mean"
        # motor readout keys-last: W' · outs + b
        # (a contiguous copy: this product with the transposed view is ~1.6x slower)
        self.motor_w = ops.from_numpy(np.ascontiguousarray(ops.to_numpy(net.motor_w).T))
        self.motor_b = ops.reshape(net.motor_b, (-1, 1))
        spans = [b["out"] for b in self.branches]
        self.out_spans = spans
        self.out_joined = all(a[1] == b[0] for a, b in zip(spans, spans[1:]))
        # the layers' and the motor's biases as [r, n] arrays (column_bias.py: the same sums,
        # ~3x cheaper than adding a broadcast column in NumPy)
        self._bias = ColumnBias()
        self._plan_arrays: dict | None = None     # run_rounds' compiled-loop tables, built once

    # ---- per batch ------------------------------------------------------------------------
    def load(self, h):
        """The working array of batch-first states ``h`` [n, state_size] (float32)."""
        n = ops.shape(h)[0]
        ht = ops.transpose(h)
        X = ops.zeros((self.rows, n), ops.float32)
        for (c0, c1), (r0, r1) in self.moves:
            X[r0:r1] = ht[c0:c1]
        return X

    def store(self, X):
        """The batch-first states [n, state_size] held in ``X``."""
        parts = [X[r0:r1] for _, (r0, r1) in self.moves]
        return ops.transpose(ops.concatenate(parts, axis=0))

    # ---- per step -------------------------------------------------------------------------
    def outputs(self, X):
        """The branches' outputs keys-last [n_out, n] (what the motor layer reads)."""
        spans = self.out_spans
        if self.out_joined:
            return X[spans[0][0]:spans[-1][1]]
        return ops.concatenate([X[a:b] for a, b in spans], axis=0)

    def motor(self, outs):
        """The motor layer keys-last: [motor_size, n]."""
        z = ops.matmul(self.motor_w, outs)
        z += self._bias.get("motor", self.motor_b, ops.shape(z)[1])
        return z

    def step(self, X, u, ts):
        """Advance every sample (column) of ``X`` by input ``u`` [f, n] with elapsed time
        ``ts`` [1, n] (float32), in place."""
        f, k = self.input_size, len(self.branches)
        X[0:f] = u
        c0, e0, s0 = self.count0, self.elapsed0, self.sums0
        count = X[c0:c0 + k] + 1.0
        elapsed = X[e0:e0 + k] + ts
        n = ops.shape(X)[1]
        for i, br in enumerate(self.branches):
            if br["every"]:
                if br["in"][0] != 0:
                    X[br["in"][0]:br["in"][1]] = u
                self._chain(X, br["layers"], ts, n)
                count[i:i + 1] = 0.0 * count[i:i + 1]
                elapsed[i:i + 1] = 0.0 * elapsed[i:i + 1]
                continue
            sums = (s0 + i * f, s0 + (i + 1) * f)
            if self.mean_pool:      # the running sum, updated where it lies
                X[sums[0]:sums[1]] += u
                pooled = X[sums[0]:sums[1]]
            c_i, e_i = count[i:i + 1], elapsed[i:i + 1]
            due = (c_i if self.by_steps else e_i) >= br["stride"]
            # none or all of the samples due (aligned streams: the usual case) skip the selects
            any_due = n > 0 and bool(ops.item(ops.max(due)))
            all_due = any_due and bool(ops.item(ops.min(due)))
            if any_due:
                a, b = br["in"]
                X[a:b] = pooled / c_i if self.mean_pool else u
                rows = (br["layers"][0][4][0], br["layers"][-1][4][1])
                old = None if all_due else ops.copy(X[rows[0]:rows[1]])
                self._chain(X, br["layers"], e_i, n)
                if not all_due:
                    X[rows[0]:rows[1]] = ops.where(due, X[rows[0]:rows[1]], old)
                if self.mean_pool:
                    X[sums[0]:sums[1]] = (0.0 * pooled if all_due
                                          else ops.where(due, 0.0 * pooled, pooled))
                count[i:i + 1] = (0.0 * c_i if all_due else ops.where(due, 0.0 * c_i, c_i))
                elapsed[i:i + 1] = (0.0 * e_i if all_due else ops.where(due, 0.0 * e_i, e_i))
        X[c0:c0 + k] = count
        X[e0:e0 + k] = elapsed
        return X

    # ---- a chunk of rounds -----------------------------------------------------------------
    def run_rounds(self, X, starts, u, ts, outs, after=None):
        """Advance the keys of X by the rounds ``starts`` [R + 1] (round r: the columns
        ``starts[r]:starts[r + 1]`` of u [f, c] and ts [1, c], the i-th of them an event of
        X's i-th key, the round's keys a prefix of X's), in place; write the branches' outputs
        before each event into outs [n_out, c] and, given ``after``, after it. On the NumPy
        backend one compiled call (keys_last_kernel.py); elsewhere ``step`` per round."""
        if ops.arrays_are_numpy:
            from ..kernels import kernels
            p = self._compiled()
            n = X.shape[1]
            kernels("ember_models.liquid.keys_last_kernel").reservoir_rounds(
                X, starts, u, ts.reshape(-1), outs,
                after if after is not None else np.empty((0, 0), np.float32),
                self.input_size, p["branches"], p["strides"], p["layers"], p["w"], p["b"],
                p["spans"], self.count0, self.by_steps, self.mean_pool,
                np.empty(self.rows * n, np.float32), np.empty(n, np.int64),
                np.empty(n, np.float32))
            return
        n_keys = ops.shape(X)[1]
        for a, b in zip(starts[:-1].tolist(), starts[1:].tolist()):
            m = b - a
            Xm = X if m == n_keys else X[:, :m]
            outs[:, a:b] = self.outputs(Xm)
            self.step(Xm, u[:, a:b], ts[:, a:b])          # in place
            if after is not None:
                after[:, a:b] = self.outputs(Xm)
            if m < n_keys and not ops.slices_are_views:   # (the prefix was a copy)
                X[:, :m] = Xm

    def _compiled(self) -> dict:
        """The layers and branches as the compiled loop takes them: flat weights, index
        tables (keys_last_kernel.reservoir_rounds' docstring)."""
        if self._plan_arrays is None:
            ws, bs, layers, branches = [], [], [], []
            w_off = b_off = 0
            for br in self.branches:
                first = len(layers)
                for w, (_, _, bias), n, (a, e), (o0, _), default in br["layers"]:
                    w = np.ascontiguousarray(ops.to_numpy(w), np.float32)
                    layers.append((w_off, b_off, n, a, e, o0, int(default)))
                    ws.append(w.ravel())
                    bs.append(np.asarray(ops.to_numpy(bias), np.float32).ravel())
                    w_off += w.size
                    b_off += 4 * n
                rows = (br["layers"][0][4][0], br["layers"][-1][4][1])
                branches.append((int(br["every"]), br["in"][0], br["in"][1], first,
                                 len(layers), rows[0], rows[1]))
            self._plan_arrays = {
                "w": np.concatenate(ws), "b": np.concatenate(bs),
                "layers": np.asarray(layers, np.int64),
                "branches": np.asarray(branches, np.int64),
                "strides": np.asarray([br["stride"] for br in self.branches], np.float64),
                "spans": np.asarray(self.out_spans, np.int64).reshape(-1, 2)}
        return self._plan_arrays

    def _chain(self, X, layers, ts, n_cols: int):
        matmul, update, bias = ops.matmul, cfc_plan.keys_last_update, self._bias.get
        for w, (i, j, b), n, (a, e), (o0, o1), default in layers:
            z = matmul(w, X[a:e])
            z += bias((i, j), b, n_cols)
            X[o0:o1] = update(z, ts, n, default)
