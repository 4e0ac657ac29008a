"""What every liquid cell offers, so the sequence wrapper, the mixed-memory and multi-stride
variants can drive any of them.

A cell maps (input ``x`` (B, input_size), state ``h`` (B, state_size), elapsed time ``dt``)
to (output ``y`` (B, output_size), new state). The state is always one float array per
sample, so a key's state stores as one row. Two ways to run the same math:

- ``forward(x, h, dt)``: from the parameters, differentiable (training on torch/mlx);
- ``step(x, h, dt)``: from a cached plan of fused weights (inference; the streaming hot path).

Both give the same numbers: ``forward`` builds the same plan from the parameters each call.
"""
from __future__ import annotations

from .. import ops
from ..nn import Module
from .plan_cache import Generation, PlanCache


class LiquidCell(PlanCache, Module):
    input_size: int
    state_size: int
    output_size: int

    def initial_state(self, batch: int):
        return ops.zeros((batch, self.state_size))

    def output(self, state):
        """The output the cell shows for ``state`` (e.g. its motor neurons)."""
        raise NotImplementedError

    def _run(self, plan, x, h, ts):
        """One step with a plan; ``ts`` is a (B, 1) array. Returns (y, new_state)."""
        raise NotImplementedError

    def forward(self, x, h, dt=1.0):
        return self._run(self._build_plan(), x, h, as_ts(dt, ops.shape(x)[0]))

    def step(self, x, h, dt=1.0):
        """Inference step from the cached plan (training mode falls back to ``forward``).
        No input checks here: this is the per-event hot path; the sequence wrapper checks."""
        if self.training:
            return self.forward(x, h, dt)
        if getattr(dt, "ndim", 0) != 2:
            dt = as_ts(dt, ops.shape(x)[0])
        cached = self.__dict__.get("_plan_cache")   # PlanCache._cached, inlined: per event
        if cached is None or cached[0] != Generation.value:
            cached = self._cached()
        return cached[2](x, h, dt)


def as_ts(dt, batch: int):
    """Elapsed time as a (B, 1) array (from a number, a (B,) or a (B, 1) array)."""
    if ops.is_array(dt):
        shape = ops.shape(dt)
        if len(shape) == 2:
            return dt
        if len(shape) == 1:
            return ops.reshape(dt, (shape[0], 1))
        if len(shape) == 0:
            return ops.full((batch, 1), ops.item(dt))
        raise ValueError(f"elapsed time must be a number, (batch,) or (batch, 1); got shape {shape}")
    return ops.full((batch, 1), float(dt))
