"""The epoch loop every trainer shares: losses per epoch, early stopping, the best epoch's
weights restored, the progress bar and the ``TrainResult``."""
from __future__ import annotations

import time
from typing import Callable

from ..nn import Module
from .result import EarlyStopping, TrainResult, progress_bar, snapshot


def run_epochs(model: Module, result: TrainResult, *, epochs: int,
               train_epoch: Callable[[int], float], val_loss: Callable[[], float] | None,
               patience: int | None, min_delta: float, restore_best: bool, desc: str,
               progress: bool | None) -> TrainResult:
    """Up to ``epochs`` rounds of ``train_epoch(epoch)`` (0-based; returns the epoch's training
    loss), each followed by ``val_loss()`` when given. The validation loss (else the training
    loss) drives early stopping (``patience`` epochs without an improvement larger than
    ``min_delta``) and picks the weights restored at the end (``restore_best``). Fills and
    returns ``result``."""
    stopper = EarlyStopping(patience, min_delta)
    best = None
    started = time.perf_counter()
    bar = progress_bar(int(epochs), desc, progress)
    try:
        for epoch in range(int(epochs)):
            result.train_loss.append(train_epoch(epoch))
            monitored = result.train_loss[-1]
            if val_loss is not None:
                result.val_loss.append(val_loss())
                monitored = result.val_loss[-1]
            result.epochs_run = epoch + 1
            if stopper.update(epoch, monitored) and restore_best:
                best = snapshot(model)
            bar.update(1)
            bar.set_postfix(train=f"{result.train_loss[-1]:.4g}",
                            **({"val": f"{result.val_loss[-1]:.4g}"} if val_loss is not None else {}))
            if stopper.should_stop:
                result.stopped_early = epoch + 1 < int(epochs)
                break
    finally:
        bar.close()
    if restore_best and best is not None:
        model.load_state_dict(best)
    result.best_epoch, result.best_loss = stopper.best_epoch, stopper.best_loss
    result.seconds = time.perf_counter() - started
    return result
