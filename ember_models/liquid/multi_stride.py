"""Multi-stride liquid network: branches that see the stream at different time scales,
combined at the motor layer.

Branch k updates every ``strides[k]``-th step (``stride_unit="steps"``) or once ``strides[k]``
seconds of elapsed time have accumulated (``"seconds"``). Between its updates a branch holds
its state; when it updates it is driven by the *whole* elapsed time since its last update
(liquid cells are continuous-time, so a slow branch sees real time) and by the mean of the
inputs it skipped (``pool="mean"``) or the latest input (``pool="last"``). Strides are per
sample: each key of a batch keeps its own phase.

Motor layer: ``y = [out_0, ..., out_K-1]·W + b``; when every branch has ``motor_size``
outputs it starts as the mean of the branches (so an untrained network is usable as a
reservoir) and is trainable like any parameter.

State per sample, one float row: ``[state_0, ..., state_K-1, steps since update (K),
elapsed since update (K), summed skipped inputs (K·input_size)]``, so a stream resumes exactly
where it was, mid-stride included.
"""
from __future__ import annotations

import numpy as np

from .. import ops
from ..model_file import register
from ..nn import ModuleList, Parameter
from . import init
from .cell import LiquidCell, as_ts
from .plan_cache import tracked

UNITS = ("steps", "seconds")
POOLS = ("mean", "last")


@register
@tracked("motor_w", "motor_b")
class MultiStrideLiquid(LiquidCell):
    """Branches (any liquid cells over the same inputs) at several strides + a motor layer."""

    def __init__(self, cells, strides, stride_unit: str = "steps", motor_size: int | None = None,
                 pool: str = "mean", seed: int | None = None):
        super().__init__()
        from .sequence import build_cell
        cells = [build_cell(c) for c in cells]
        strides = [float(s) for s in strides]
        if not cells or len(cells) != len(strides):
            raise ValueError(f"MultiStrideLiquid needs one stride per branch, got {len(cells)} "
                             f"branches and {len(strides)} strides")
        if stride_unit not in UNITS:
            raise ValueError(f"stride_unit must be one of {UNITS}, got {stride_unit!r}")
        if pool not in POOLS:
            raise ValueError(f"pool must be one of {POOLS}, got {pool!r}")
        if any(s <= 0 for s in strides) or (stride_unit == "steps" and
                                             any(s != int(s) for s in strides)):
            raise ValueError(f"strides must be > 0 (whole numbers for steps), got {strides}")
        sizes = {c.input_size for c in cells}
        if len(sizes) != 1:
            raise ValueError(f"every branch must take the same inputs, got input sizes {sizes}")
        self.branches = ModuleList(cells)
        self.strides, self.stride_unit, self.pool, self.seed = strides, stride_unit, pool, seed
        self.input_size = cells[0].input_size
        outs = [c.output_size for c in cells]
        self.motor_size = int(motor_size) if motor_size is not None else outs[0]
        total_out = sum(outs)
        if all(o == self.motor_size for o in outs):
            w = np.tile(np.eye(self.motor_size, dtype=np.float32), (len(cells), 1)) / len(cells)
        else:
            w = init.xavier_uniform(init.rng(seed), total_out, self.motor_size)
        self.motor_w = Parameter(init.param(w))
        self.motor_b = Parameter(init.param(np.zeros((self.motor_size,), np.float32)))
        self.output_size = self.motor_size
        k, f = len(cells), self.input_size
        self._offsets = np.cumsum([0] + [c.state_size for c in cells]).tolist()
        self._book = self._offsets[-1]
        self.state_size = self._book + 2 * k + k * f
        self._every_step = [stride_unit == "steps" and st == 1 for st in strides]

    @classmethod
    def build(cls, input_size: int, units, strides, kind: str = "cfc", stride_unit="steps",
              mode: str = "default", motor_size=None, pool="mean", seed: int | None = 0):
        """Branches of one kind ('cfc' or 'ltc') with the same wiring/units, seeded apart."""
        from .cfc import CfCCell, WiredCfCCell
        from .ltc import LTCCell
        cells = []
        for i, _ in enumerate(strides):
            s = None if seed is None else seed + 1000 * i
            if kind == "ltc":
                cells.append(LTCCell(input_size, units, seed=s))
            elif isinstance(units, int):
                cells.append(CfCCell(input_size, units, mode, seed=s))
            else:
                cells.append(WiredCfCCell(input_size, units, mode, seed=s))
        return cls(cells, strides, stride_unit, motor_size, pool, seed)

    def get_config(self):
        from .sequence import cell_spec
        return {"cells": [cell_spec(c) for c in self.branches], "strides": self.strides,
                "stride_unit": self.stride_unit, "motor_size": self.motor_size,
                "pool": self.pool, "seed": self.seed}

    # ---- state views ---------------------------------------------------------------------------
    def branch_states(self, state) -> list:
        return [state[:, a:b] for a, b in zip(self._offsets[:-1], self._offsets[1:])]

    def hidden(self, state):
        """All branches' neuron states side by side (a feature vector for readouts)."""
        return state[:, :self._book]

    def output(self, state):
        outs = [c.output(s) for c, s in zip(self.branches, self.branch_states(state))]
        return ops.matmul(ops.concatenate(outs, axis=1), self.motor_w) + self.motor_b

    # ---- step ----------------------------------------------------------------------------------
    def _build_plan(self):
        plans = [c._build_plan() if self.training else c._plan() for c in self.branches]
        return plans, self.motor_w, self.motor_b, ops.from_numpy(
            np.asarray(self.strides, np.float32).reshape(1, -1))

    def next_state(self, x, h, dt=1.0, in_place: bool = False):
        """``step`` without the motor layer: the new state alone, for callers that read the
        branches' outputs themselves (the pipeline's readout) and would discard ``y``.
        ``in_place``: write the new state into ``h`` (and return it) instead of a new array,
        for callers that own ``h`` and drop the old state (the pipeline's batch loop): only
        the parts that change are written, no copy of the whole state per step."""
        plan = self._build_plan() if self.training else self._plan()
        if getattr(dt, "ndim", 0) != 2:
            dt = as_ts(dt, ops.shape(x)[0])
        return self._run(plan, x, h, dt, motor=False, in_place=in_place)[1]

    def _run(self, plan, x, h, ts, motor: bool = True, in_place: bool = False):
        plans, motor_w, motor_b, strides = plan
        k, f, book, offs = len(plans), self.input_size, self._book, self._offsets
        mean_pool = self.pool == "mean"
        count = h[:, book:book + k] + 1.0
        elapsed = h[:, book + k:book + 2 * k] + ts
        due = (count if self.stride_unit == "steps" else elapsed) >= strides
        n = ops.shape(h)[0]
        # per branch, its new state and its new sums of skipped inputs, or None where they are
        # unchanged (``h``'s own columns: left where they are in place, re-used otherwise)
        pieces, outs = [], []
        for i, (cell, p) in enumerate(zip(self.branches, plans)):
            s = h[:, offs[i]:offs[i + 1]]
            s0 = book + 2 * k + i * f
            new_sum = None                                  # None: the sums stay as they are
            if self._every_step[i]:
                # stride 1 in steps: due at every step for every sample; nothing to pool (the
                # sums stay zero)
                _, s = cell._run(p, x, s, ts)
                pieces.append(s)
            else:
                d = due[:, i:i + 1]
                pooled = None
                if mean_pool and in_place:     # the running sum, updated where it lies
                    h[:, s0:s0 + f] += x
                    pooled = h[:, s0:s0 + f]
                elif mean_pool:
                    pooled = h[:, s0:s0 + f] + x
                # none or all of the samples due (aligned streams: the usual case) skip the
                # selects, which would pick one side everywhere
                any_due = n > 0 and bool(ops.item(ops.max(d)))
                all_due = any_due and bool(ops.item(ops.min(d)))
                if any_due:
                    xi = pooled / count[:, i:i + 1] if mean_pool else x
                    _, new = cell._run(p, xi, s, elapsed[:, i:i + 1])
                    s = new if all_due else ops.where(d, new, s)
                    pieces.append(s)
                else:
                    pieces.append(None)                     # the branch holds its state
                if mean_pool and (any_due or not in_place):
                    new_sum = (pooled if not any_due else
                               0.0 * pooled if all_due else
                               ops.where(d, 0.0 * pooled, pooled))
            pieces.append(new_sum)
            if motor:
                outs.append(cell.output(s))
        zero_k = 0.0 * count
        count = ops.where(due, zero_k, count)
        elapsed = ops.where(due, zero_k, elapsed)
        y = ops.matmul(ops.concatenate(outs, axis=1), motor_w) + motor_b if motor else None
        # columns of each piece: branch states, then the sums, in state order
        cols = [(offs[i], offs[i + 1]) for i in range(k)]
        sum_cols = [(book + 2 * k + i * f, book + 2 * k + (i + 1) * f) for i in range(k)]
        states, sums = pieces[0::2], pieces[1::2]
        if in_place:
            for (a, b), piece in zip(cols + sum_cols, states + sums):
                if piece is not None:
                    h[:, a:b] = piece
            h[:, book:book + k] = count
            h[:, book + k:book + 2 * k] = elapsed
            return y, h
        parts = [h[:, a:b] if piece is None else piece
                 for (a, b), piece in zip(cols, states)]
        parts += [count, elapsed]
        parts += [h[:, a:b] if piece is None else piece for (a, b), piece in zip(sum_cols, sums)]
        return y, ops.concatenate(parts, axis=1)
