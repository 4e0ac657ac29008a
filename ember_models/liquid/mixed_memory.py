"""Mixed memory (LSTM-gated) liquid cells: an LSTM memory cell runs before the liquid cell
at each step and hands it its hidden state (ncps' ``mixed_memory=True``, after Lechner &
Hasani 2020, "Learning long-term dependencies in irregularly-sampled time series").

State = ``[h, c]`` side by side: ``h`` the liquid cell's state (also the LSTM's output), ``c``
the LSTM's memory; (batch, 2 · cell.state_size).
"""
from __future__ import annotations

from .. import ops
from ..model_file import register
from ..nn import Module, Parameter
from . import init
from .cell import LiquidCell
from .plan_cache import tracked


@tracked("input_w", "input_b", "recurrent_w")
class LSTMMemory(Module):
    """ncps' LSTMCell: gates from ``x·Wi + bi + h·Wr``; forget gate biased by +1."""

    def __init__(self, input_size: int, units: int, seed: int | None = None):
        super().__init__()
        g = init.rng(seed)
        self.input_size, self.units = int(input_size), int(units)
        self.input_w = Parameter(init.param(init.xavier_uniform(g, input_size, 4 * units)))
        self.input_b = Parameter(init.param(init.uniform(g, -0.1, 0.1, (4 * units,))))
        self.recurrent_w = Parameter(init.param(init.orthogonal(g, units, 4 * units)))


@register
class MixedMemoryCell(LiquidCell):
    """Wraps any liquid cell with an LSTM memory of the cell's state size."""

    def __init__(self, cell, seed: int | None = None):
        super().__init__()
        from .sequence import build_cell
        self.cell = build_cell(cell)
        self.seed = seed
        n = self.cell.state_size
        self.lstm = LSTMMemory(self.cell.input_size, n, seed)
        self.input_size = self.cell.input_size
        self.state_size = 2 * n
        self.output_size = self.cell.output_size

    def get_config(self):
        from .sequence import cell_spec
        return {"cell": cell_spec(self.cell), "seed": self.seed}

    def output(self, state):
        return self.cell.output(state[:, :self.cell.state_size])

    def _build_plan(self):
        lstm = self.lstm
        w = ops.concatenate([lstm.input_w, lstm.recurrent_w], axis=0)
        # forget-gate +1 folded into the bias; sigmoid(z) = (1 + tanh(z/2)) / 2, so the
        # three gate blocks are pre-halved and one tanh serves all four blocks
        n = lstm.units
        half = ops.from_numpy(_gate_scale(n))
        bias = (lstm.input_b + ops.from_numpy(_forget_shift(n))) * half
        return (w * half, bias, self.cell._build_plan() if self.training else self.cell._plan())

    def _run(self, plan, x, state, ts):
        w, b, cell_plan = plan
        n = self.cell.state_size
        h, c = state[:, :n], state[:, n:]
        t = ops.tanh(ops.matmul(ops.concatenate([x, h], axis=1), w) + b)
        act, ig, fg, og = t[:, :n], t[:, n:2 * n], t[:, 2 * n:3 * n], t[:, 3 * n:]
        # gates: sigmoid = (1 + tanh(z/2)) / 2
        new_c = c * (0.5 + 0.5 * fg) + act * (0.5 + 0.5 * ig)
        h = ops.tanh(new_c) * (0.5 + 0.5 * og)
        y, h = self.cell._run(cell_plan, x, h, ts)
        return y, ops.concatenate([h, new_c], axis=1)


def _gate_scale(n):
    import numpy as np
    s = np.full((4 * n,), 0.5, np.float32)
    s[:n] = 1.0   # the input activation is a real tanh, not a gate
    return s


def _forget_shift(n):
    import numpy as np
    s = np.zeros((4 * n,), np.float32)
    s[2 * n:3 * n] = 1.0
    return s
