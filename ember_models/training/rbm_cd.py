"""Contrastive-divergence training of an RBM with a loss history and early stopping.

The CD / persistent-CD update itself is the RBM's (``RBM.fit_epoch``, the same step that
``fit`` and ``partial_fit`` use); this adds epochs, a validation set, early stopping, the
best weights restored, and a progress bar. The loss is the mean squared reconstruction error
per unit (``RBM.reconstruction_error``): on the training batches as they are trained, and
on the validation set after each epoch.
"""
from __future__ import annotations

from .. import ops
from ..batches import as_batch_source
from ..rbm import RBM
from .epochs import run_epochs
from .result import TrainResult


def rbm_loss(rbm: RBM, x, batch_size: int = 4096) -> float:
    """Mean reconstruction error per unit of ``rbm`` over the rows of ``x``."""
    x = ops.asarray(x, dtype=rbm.dtype)
    n = ops.shape(x)[0]
    if n == 0:
        raise ValueError("rbm_loss: the validation set has no rows")
    total = 0.0
    for s in range(0, n, batch_size):
        total += float(ops.item(ops.sum(rbm.reconstruction_error(x[s:s + batch_size]))))
    return total / n


def train_rbm(rbm: RBM, data, *, epochs: int = 50, val=None, patience: int | None = 5,
              min_delta: float = 0.0, shuffle: bool = True, restore_best: bool = True,
              progress: bool | None = None) -> TrainResult:
    """Train ``rbm`` by CD for up to ``epochs`` passes over ``data`` (an array, a callable
    returning batches, or a re-iterable of batches; see ``ember_models.batches``).

    ``val``: rows held out; its reconstruction error drives early stopping (``patience``
    epochs without an improvement larger than ``min_delta``) and picks the weights restored at
    the end (``restore_best``). Without ``val`` the training loss does. Randomness is the RBM's
    own (its ``seed``), so a run repeats exactly.
    """
    if int(epochs) < 1:
        raise ValueError(f"train_rbm needs epochs >= 1, got {epochs}")
    source = as_batch_source(data, rbm.batch_size, shuffle, "train_rbm data", rbm.dtype)
    if val is not None:
        val = ops.asarray(val, dtype=rbm.dtype)
    result = TrainResult(seed=rbm.seed, loss_name="reconstruction_error")
    return run_epochs(rbm, result, epochs=epochs, train_epoch=lambda epoch: rbm.fit_epoch(source, epoch),
                      val_loss=None if val is None else lambda: rbm_loss(rbm, val), patience=patience,
                      min_delta=min_delta, restore_best=restore_best, desc="RBM (CD)", progress=progress)
