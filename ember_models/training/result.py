"""What a training run reports, early stopping, best-weight snapshots and the progress bar:
the pieces every trainer in ``ember_models.training`` shares."""
from __future__ import annotations

import math
import sys
from dataclasses import asdict, dataclass, field

from .. import ops
from ..nn import Module


@dataclass
class TrainResult:
    """The history of one training run.

    ``train_loss[i]`` / ``val_loss[i]``: the losses after epoch ``i`` (0-based; ``val_loss`` is
    empty without a validation set). ``best_epoch`` indexes those lists: the epoch with the
    lowest monitored loss (validation if given, else training), whose weights the model holds
    afterwards when the trainer restores the best weights. ``stopped_early``: patience ran out
    before ``epochs``.
    """
    train_loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    best_epoch: int | None = None
    best_loss: float | None = None
    stopped_early: bool = False
    epochs_run: int = 0
    seconds: float = 0.0
    seed: int | None = None
    loss_name: str = "loss"

    def as_dict(self) -> dict:
        return asdict(self)


class EarlyStopping:
    """Stop when the monitored loss has not improved by more than ``min_delta`` for
    ``patience`` epochs in a row (``patience=None``: never stop early)."""

    def __init__(self, patience: int | None = 5, min_delta: float = 0.0):
        if patience is not None and patience < 1:
            raise ValueError(f"patience must be >= 1 or None, got {patience}")
        if min_delta < 0:
            raise ValueError(f"min_delta must be >= 0, got {min_delta}")
        self.patience, self.min_delta = patience, float(min_delta)
        self.best_loss, self.best_epoch, self.bad_epochs = math.inf, None, 0

    def update(self, epoch: int, loss: float) -> bool:
        """Record epoch ``epoch``'s loss; True when it is the new best."""
        if not math.isfinite(loss):
            raise FloatingPointError(f"epoch {epoch + 1}: the monitored loss is {loss} "
                                     "(diverged: lower the learning rate or clip gradients)")
        if loss < self.best_loss - self.min_delta or self.best_epoch is None:
            self.best_loss, self.best_epoch, self.bad_epochs = loss, epoch, 0
            return True
        self.bad_epochs += 1
        return False

    @property
    def should_stop(self) -> bool:
        return self.patience is not None and self.bad_epochs >= self.patience


def snapshot(module: Module) -> dict:
    """Copies of every parameter and buffer, to restore the best epoch's weights later."""
    return {k: (None if v is None else ops.copy(v)) for k, v in module.state_dict().items()}


def progress_bar(total: int, desc: str, enabled: bool | None):
    """A tqdm bar over epochs; ``enabled=None`` shows it only when stderr is a terminal."""
    from tqdm.auto import tqdm
    if enabled is None:
        enabled = sys.stderr.isatty()
    return tqdm(total=total, desc=desc, unit="epoch", disable=not enabled, leave=False)
