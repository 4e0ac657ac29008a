"""Truncated backpropagation through time with Adam, for liquid (or any recurrent) networks.

Each mini-batch of sequences is cut along time into chunks of ``bptt`` steps. The model runs
chunk after chunk carrying its state; gradients flow within a chunk only (the carried state is
cut from the graph), so memory is bounded by the chunk, not the sequence, and a long event
stream trains like a short one. One Adam step per chunk.

Autodiff comes from the backend (``ops.value_and_grad``, torch or mlx); the model's own arrays
are swapped for the differentiated leaves with ``Module.substituted``, so model code needs no
training hooks. NumPy has no autodiff: training there raises a clear error up front.

The model contract (a liquid sequence model, or anything shaped like it)::

    pred, new_state = forward(model, x, dt, state)
    # x (B, T, F) inputs, dt (B, T) elapsed time before each step, state None at the start;
    # pred (B, T, O) outputs per step

``forward`` defaults to ``model(x, dt, state)``; pass your own for other signatures.
"""
from __future__ import annotations

from typing import Callable

from .. import ops
from ..nn import Module
from ..optim import Adam
from .epochs import run_epochs
from .result import TrainResult


def mse(pred, target):
    return ops.mean(ops.square(pred - target))


LOSSES = {"mse": mse}


def default_forward(model, x, dt, state):
    return model(x, dt, state)


def _detach(state):
    """Cut a carried state (an array, or a tuple/list/dict of arrays) from the graph."""
    if state is None:
        return None
    if isinstance(state, (tuple, list)):
        return type(state)(_detach(s) for s in state)
    if isinstance(state, dict):
        return {k: _detach(v) for k, v in state.items()}
    return ops.stop_gradient(state)


def _as_sequences(x, dt, y, where: str):
    x, dt, y = (ops.asarray(a, dtype="float32") for a in (x, dt, y))
    xs, ds, ys = ops.shape(x), ops.shape(dt), ops.shape(y)
    if len(xs) != 3:
        raise ValueError(f"{where}: x must be (batch, time, features), got shape {xs}")
    if tuple(ds) != tuple(xs[:2]):
        raise ValueError(f"{where}: dt must be (batch, time) = {tuple(xs[:2])}, got {ds}")
    if len(ys) == 3 and tuple(ys[:2]) != tuple(xs[:2]):
        raise ValueError(f"{where}: y must be (batch, time, outputs) matching x's {tuple(xs[:2])}, "
                         f"or (batch, outputs) for a last-step target; got {ys}")
    if len(ys) not in (2, 3) or ys[0] != xs[0]:
        raise ValueError(f"{where}: y must be (batch, time, outputs) or (batch, outputs) with "
                         f"batch {xs[0]}, got {ys}")
    return x, dt, y


def sequence_loss(model, x, dt, y, *, loss: str | Callable = "mse", forward=default_forward,
                  batch_size: int = 256) -> float:
    """The loss of ``model`` over whole sequences, no gradients (validation)."""
    loss_fn = LOSSES[loss] if isinstance(loss, str) else loss
    x, dt, y = _as_sequences(x, dt, y, "sequence_loss")
    n = ops.shape(x)[0]
    last_only = len(ops.shape(y)) == 2
    total = 0.0
    for s in range(0, n, batch_size):
        pred, _ = forward(model, x[s:s + batch_size], dt[s:s + batch_size], None)
        pred = pred[:, -1] if last_only else pred
        rows = ops.shape(pred)[0]
        total += float(ops.item(loss_fn(ops.stop_gradient(pred), y[s:s + batch_size]))) * rows
    return total / n


def train_bptt(model: Module, x, dt, y, *, epochs: int = 20, batch_size: int = 32,
               bptt: int | None = 32, lr: float = 1e-2, clip_norm: float | None = 1.0,
               weight_decay: float = 0.0, loss: str | Callable = "mse", val=None,
               patience: int | None = 5, min_delta: float = 0.0, restore_best: bool = True,
               forward: Callable = default_forward, seed: int | None = 0,
               progress: bool | None = None) -> TrainResult:
    """Train ``model`` on sequences ``x`` (B, T, F) with elapsed times ``dt`` (B, T) to
    predict ``y`` (B, T, O) at every step, or (B, O) at the last step.

    ``bptt``: truncation length in steps (None: whole sequences). ``val``: an optional
    ``(x, dt, y)`` validation set, whose loss drives early stopping (``patience`` epochs
    without an improvement larger than ``min_delta``; without ``val`` the training loss does)
    and whose best epoch's weights are restored (``restore_best``). ``seed`` drives the
    shuffling of sequences into mini-batches. The model's parameters are moved to the current
    backend first (which must be torch or mlx).
    """
    if not ops.has_autodiff:
        raise RuntimeError(
            f"train_bptt needs automatic differentiation, which the {ops.backend_name!r} backend "
            "does not have: train on torch or mlx (set_backend('torch'), "
            "using_backend('mlx') or EMBER_BACKEND=torch), then use the model on any backend.")
    if int(epochs) < 1 or int(batch_size) < 1 or (bptt is not None and int(bptt) < 1):
        raise ValueError(f"train_bptt needs epochs, batch_size and bptt >= 1; got "
                         f"{epochs}, {batch_size}, {bptt}")
    loss_fn = LOSSES[loss] if isinstance(loss, str) else loss
    x, dt, y = _as_sequences(x, dt, y, "train_bptt")
    if val is not None:
        val = _as_sequences(*val, "train_bptt val")
    model.to_backend()
    model.train()
    optimizer = Adam(model, lr=lr, weight_decay=weight_decay, clip_norm=clip_norm)
    rng = ops.generator(seed)
    n, steps = ops.shape(x)[:2]
    chunk = steps if bptt is None else int(bptt)
    last_only = len(ops.shape(y)) == 2
    carried = {}

    def chunk_loss(params, xc, dc, yc, state):
        with model.substituted(params):
            pred, new_state = forward(model, xc, dc, state)
        carried["state"] = new_state        # read back after the gradient call
        return loss_fn(pred[:, -1] if last_only else pred, yc)

    value_and_grad = ops.value_and_grad(chunk_loss)

    def train_epoch(epoch: int) -> float:
        order = rng.permutation(n)
        total, count = 0.0, 0
        for s in range(0, n, batch_size):
            idx = order[s:s + batch_size]
            xb, db, yb = ops.take(x, idx), ops.take(dt, idx), ops.take(y, idx)
            state = None
            for t0 in range(0, steps, chunk):
                xc, dc = xb[:, t0:t0 + chunk], db[:, t0:t0 + chunk]
                if last_only and t0 + chunk < steps:   # no target here: just advance
                    _, state = forward(model, xc, dc, state)
                    state = _detach(state)
                    continue
                yc = yb if last_only else yb[:, t0:t0 + chunk]
                value, grads = value_and_grad(dict(model.named_parameters()), xc, dc, yc, state)
                optimizer.step(grads)
                state = _detach(carried.pop("state"))
                total += float(ops.item(value))
                count += 1
        return total / count

    def val_loss() -> float:
        model.eval()
        try:
            return sequence_loss(model, *val, loss=loss_fn, forward=forward,
                                 batch_size=max(batch_size, 256))
        finally:
            model.train()

    result = TrainResult(seed=seed, loss_name=loss if isinstance(loss, str) else
                         getattr(loss, "__name__", "loss"))
    return run_epochs(model, result, epochs=epochs, train_epoch=train_epoch,
                      val_loss=None if val is None else val_loss, patience=patience,
                      min_delta=min_delta, restore_best=restore_best,
                      desc=f"BPTT {type(model).__name__}", progress=progress)
