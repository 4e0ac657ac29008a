"""Training, kept apart from the model definitions.

- ``train_bptt``: truncated backpropagation through time with Adam, for liquid networks
  (torch or mlx autodiff; NumPy raises a clear error);
- ``train_rbm``: contrastive divergence for ``ember_models.rbm.RBM`` with a loss history;
- both, through one epoch loop (``epochs.run_epochs``): early stopping on a validation set,
  the best weights restored, seeds, a tqdm progress bar, and a ``TrainResult`` (train/val loss
  per epoch, best epoch, stopped early).
"""
from .bptt import sequence_loss, train_bptt
from .rbm_cd import rbm_loss, train_rbm
from .result import EarlyStopping, TrainResult

__all__ = ["EarlyStopping", "TrainResult", "rbm_loss", "sequence_loss", "train_bptt", "train_rbm"]
