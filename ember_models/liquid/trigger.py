"""The motor trigger: fires when a motor output crosses an adaptive threshold.

For each sample of a batch (each key) and each motor output, the trigger keeps exponential
moving estimates of the output's recent mean and variance. It fires when the output leaves
``mean ± k·std`` (``direction`` 'above', 'below' or 'both'), judged against the estimates from
*before* the current output, so a spike cannot hide itself. With ``edge=True`` it fires on the
crossing only, not again while the output stays beyond the threshold.

Adaptation rate: per event (``halflife`` in events) or per elapsed time (``time_constant``
in seconds: the weight of the past decays as exp(−dt/τ), so irregular streams adapt by time).
During the first ``warmup`` events of a key the estimates are plain running means
(weight ≥ 1/n) and the trigger stays silent.

State per sample: one float row ``[mean (M), var (M), count (M), beyond (M)]``; it
serialises with the rest of a key's state.
"""
from __future__ import annotations

from .. import ops
from ..model_file import register
from ..nn import Module

DIRECTIONS = ("above", "below", "both")


@register
class AdaptiveTrigger(Module):
    def __init__(self, size: int, k: float = 3.0, halflife: float = 100.0,
                 time_constant: float | None = None, warmup: int = 20,
                 direction: str = "above", edge: bool = True, min_std: float = 1e-6,
                 adapt_on_fire: bool = True):
        super().__init__()
        if int(size) < 1:
            raise ValueError(f"AdaptiveTrigger size must be >= 1, got {size}")
        if direction not in DIRECTIONS:
            raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
        if halflife <= 0 or (time_constant is not None and time_constant <= 0):
            raise ValueError("halflife and time_constant must be > 0")
        if k <= 0 or warmup < 0 or min_std < 0:
            raise ValueError(f"need k > 0, warmup >= 0, min_std >= 0 (got {k}, {warmup}, {min_std})")
        self.size, self.k, self.halflife = int(size), float(k), float(halflife)
        self.time_constant = None if time_constant is None else float(time_constant)
        self.warmup, self.direction, self.edge = int(warmup), direction, bool(edge)
        self.min_std, self.adapt_on_fire = float(min_std), bool(adapt_on_fire)
        self.state_size = 4 * self.size
        self._alpha = 1.0 - 0.5 ** (1.0 / self.halflife)

    def get_config(self):
        return {"size": self.size, "k": self.k, "halflife": self.halflife,
                "time_constant": self.time_constant, "warmup": self.warmup,
                "direction": self.direction, "edge": self.edge, "min_std": self.min_std,
                "adapt_on_fire": self.adapt_on_fire}

    def initial_state(self, batch: int):
        return ops.zeros((batch, self.state_size))

    def thresholds(self, state):
        """(lower, upper) thresholds the next output is judged against, (B, M) each."""
        m = self.size
        mean, var = state[:, :m], state[:, m:2 * m]
        band = self.k * ops.maximum(ops.sqrt(ops.maximum(var, 0.0)), self.min_std)
        return mean - band, mean + band

    def step(self, y, state, dt=None):
        """Judge outputs ``y`` (B, M), then adapt. Returns (fired (B, M) bool,
        upper threshold (B, M) used, new state)."""
        m = self.size
        if ops.shape(y)[1:] != (m,) or ops.shape(state) != (ops.shape(y)[0], self.state_size):
            raise ValueError(f"AdaptiveTrigger: y must be (batch, {m}) and state "
                             f"(batch, {self.state_size}); got {ops.shape(y)}, {ops.shape(state)}")
        mean, var = state[:, :m], state[:, m:2 * m]
        count, was_beyond = state[:, 2 * m:3 * m], state[:, 3 * m:]
        lower, upper = self.thresholds(state)
        if self.direction == "above":
            beyond = ops.greater(y, upper)
        elif self.direction == "below":
            beyond = ops.less(y, lower)
        else:
            beyond = ops.logical_or(ops.greater(y, upper), ops.less(y, lower))
        fired = ops.logical_and(beyond, ops.greater_equal(count, float(self.warmup)))
        if self.edge:
            fired = ops.logical_and(fired, ops.less(was_beyond, 0.5))
        # adaptation weight: per event, or from elapsed time; at least 1/n while warming up
        n = count + 1.0
        if self.time_constant is None:
            alpha = ops.maximum(1.0 / n, self._alpha)
        else:
            if dt is None:
                raise ValueError("AdaptiveTrigger with time_constant needs dt")
            dt = ops.reshape(dt, (-1, 1)) if ops.is_array(dt) else dt
            alpha = ops.maximum(1.0 / n, 1.0 - ops.exp(-ops.maximum(dt, 0.0) *
                                                       (1.0 / self.time_constant)))
        if not self.adapt_on_fire:
            alpha = ops.where(fired, 0.0 * alpha, alpha)
        dev = y - mean
        new_mean = mean + alpha * dev
        new_var = (1.0 - alpha) * (var + alpha * dev * dev)
        beyond_f = ops.astype(beyond, ops.dtype_name(y))
        new_state = ops.concatenate([new_mean, new_var, n, beyond_f], axis=1)
        return fired, upper, new_state

    def forward(self, ys, state=None, dt=None):
        """Over a sequence: ys (B, T, M), dt (B, T) or None. Returns (fired (B, T, M),
        upper thresholds (B, T, M), final state)."""
        shape = ops.shape(ys)
        if len(shape) != 3:
            raise ValueError(f"AdaptiveTrigger: ys must be (batch, time, {self.size}), got {shape}")
        state = self.initial_state(shape[0]) if state is None else state
        fired, uppers = [], []
        for t in range(shape[1]):
            f, u, state = self.step(ys[:, t], state, None if dt is None else dt[:, t])
            fired.append(f)
            uppers.append(u)
        if not fired:
            return (ops.zeros((shape[0], 0, self.size), "bool"),
                    ops.zeros((shape[0], 0, self.size)), state)
        return ops.stack(fired, axis=1), ops.stack(uppers, axis=1), state


def halflife_to_alpha(halflife: float) -> float:
    """The per-event EMA weight whose influence halves after ``halflife`` events."""
    return 1.0 - 0.5 ** (1.0 / halflife)

