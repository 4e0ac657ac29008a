"""Restricted Boltzmann machine: Bernoulli or Gaussian visible units, Bernoulli hidden units,
trained by contrastive divergence (CD-k) or persistent CD, scoring how unusual an input is.

Energy (``b`` visible bias, ``c`` hidden bias, ``W`` weights of shape (n_visible, n_hidden))::

    bernoulli: E(v, h) = -b·v        - c·h - vᵀ W h,   v ∈ {0,1}^n (or probabilities in [0,1])
    gaussian:  E(v, h) = ½‖v - b‖²   - c·h - vᵀ W h,   v ∈ R^n, unit variance (standardise inputs)

Free energy, the hidden units summed out exactly, ``p(v) = exp(-F(v)) / Z``::

    F(v) = -b·v (bernoulli) or ½‖v - b‖² (gaussian)  -  Σ_j softplus(c_j + (vW)_j)

Sign convention, the same everywhere in ember: **higher score = more anomalous**. ``free_energy``
is ``-log p(v) - log Z``: high for unlikely inputs. ``score`` is the free energy standardised by
statistics of the free energy of the training rows (a z-score), so it reads the same across
models; ``reconstruction_error`` is also higher for unusual inputs.

Random draws (initial weights, Gibbs samples, shuffling) come from ``ops.generator(seed)``,
NumPy PCG64 on every backend, so numpy, torch and mlx train to the same weights.
"""
from __future__ import annotations

import math
from collections import deque

from . import ops
from .batches import as_batch_source
from .column_bias import ColumnBias
from .model_file import register
from .nn import Module, Parameter
from .rbm_step import CHUNK_ROWS, BlockCD

VISIBLE_KINDS = ("bernoulli", "gaussian")


def _sigmoid(x):
    """The logistic function as 0.5 + 0.5·tanh(x/2), kept instead of ``ops.sigmoid`` because on
    NumPy (the default on Linux CPUs) that is slower here: ``ops.sigmoid`` keeps full relative
    precision in the far lower tail with more array passes, 6.8 vs 3.7 µs on a 64×64 batch and a
    CD-1 epoch (benchmarks/bench_rbm.py, batch 64) ~6% slower: 607k vs 643k rows/s on the 2-core
    VM. (On torch, one fused ``torch.sigmoid`` would be ~40% faster: 447k vs 321k rows/s.) Below
    x ≈ -17 this rounds to 0 in float32 instead of < 4e-8, which changes a Bernoulli draw from
    float32 uniforms with probability < 6e-8."""
    return 0.5 * ops.tanh(0.5 * x) + 0.5


_SOFTPLUS_EXP_BELOW = 30.0


def _softplus(x):
    """softplus(x) = log(1 + e^x). Where every x < 30 (the usual case: it is checked with one
    max over the array), ``log1p(exp(x))`` directly: 2 array passes instead of ``ops.softplus``'s
    stable 6, and as exact there (e^x cannot overflow; below x ≈ -87 it underflows to a
    subnormal or 0 where softplus is < 2e-38). Otherwise ``ops.softplus``."""
    if float(ops.item(ops.max(x))) < _SOFTPLUS_EXP_BELOW:
        return ops.log1p(ops.exp(x))
    return ops.softplus(x)


@register
class RBM(Module):
    """A restricted Boltzmann machine for anomaly scoring (see the module docstring for the math).

    Parameters: ``weight`` (n_visible, n_hidden), ``visible_bias``, ``hidden_bias``.
    Buffers (saved with the model, so training resumes exactly): the momentum velocities, the
    persistent chain's hidden samples (``None`` unless ``persistent``), and ``score_stats``
    = [count, mean, variance] of the training free energies.
    """

    def __init__(self, n_visible: int, n_hidden: int, visible: str = "bernoulli", k: int = 1,
                 persistent: bool = False, lr: float = 0.05, momentum: float = 0.5,
                 weight_decay: float = 1e-4, batch_size: int = 64, seed: int | None = 0,
                 init_std: float = 0.01, stats_window: int = 10_000, dtype: str = "float32"):
        super().__init__()
        if int(n_visible) < 1 or int(n_hidden) < 1:
            raise ValueError(f"RBM needs n_visible >= 1 and n_hidden >= 1, got {n_visible}, {n_hidden}")
        if visible not in VISIBLE_KINDS:
            raise ValueError(f"RBM visible={visible!r}: expected one of {', '.join(VISIBLE_KINDS)}")
        if int(k) < 1:
            raise ValueError(f"RBM k (Gibbs steps per update) must be >= 1, got {k}")
        if lr <= 0 or not 0 <= momentum < 1 or weight_decay < 0:
            raise ValueError(f"RBM needs lr > 0, 0 <= momentum < 1, weight_decay >= 0; got "
                             f"lr={lr}, momentum={momentum}, weight_decay={weight_decay}")
        if int(batch_size) < 1 or int(stats_window) < 1:
            raise ValueError("RBM batch_size and stats_window must be >= 1")
        if dtype not in ("float32", "float64"):
            raise ValueError(f"RBM dtype must be 'float32' or 'float64', got {dtype!r}")
        self.n_visible, self.n_hidden, self.visible = int(n_visible), int(n_hidden), visible
        self.k, self.persistent = int(k), bool(persistent)
        self.lr, self.momentum, self.weight_decay = float(lr), float(momentum), float(weight_decay)
        self.batch_size, self.seed, self.init_std = int(batch_size), seed, float(init_std)
        self.stats_window, self.dtype = int(stats_window), dtype

        self._rng = ops.generator(seed)
        self._rng_backend = ops.backend_name
        self.weight = Parameter(self._rng.normal((self.n_visible, self.n_hidden),
                                                 std=self.init_std, dtype=dtype))
        self.visible_bias = Parameter(ops.zeros((self.n_visible,), dtype=dtype))
        self.hidden_bias = Parameter(ops.zeros((self.n_hidden,), dtype=dtype))
        self.register_buffer("weight_velocity", ops.zeros((self.n_visible, self.n_hidden), dtype=dtype))
        self.register_buffer("visible_bias_velocity", ops.zeros((self.n_visible,), dtype=dtype))
        self.register_buffer("hidden_bias_velocity", ops.zeros((self.n_hidden,), dtype=dtype))
        # persistent CD keeps hidden samples of `batch_size` fantasy particles between updates
        self.register_buffer("chain", ops.zeros((self.batch_size, self.n_hidden), dtype=dtype)
                             if self.persistent else None)
        self.register_buffer("score_stats", ops.zeros((3,), dtype="float32"))

    def get_config(self) -> dict:
        return dict(n_visible=self.n_visible, n_hidden=self.n_hidden, visible=self.visible,
                    k=self.k, persistent=self.persistent, lr=self.lr, momentum=self.momentum,
                    weight_decay=self.weight_decay, batch_size=self.batch_size, seed=self.seed,
                    init_std=self.init_std, stats_window=self.stats_window, dtype=self.dtype)

    # ---- inputs and randomness ------------------------------------------------------------
    @property
    def _dt(self):
        """The model's dtype as the current backend's object: passing it instead of the name
        skips a name lookup that costs microseconds per op call in the training loop."""
        return getattr(ops, self.dtype)

    def _input(self, x, where: str):
        x = ops.asarray(x, dtype=self._dt)
        shape = ops.shape(x)
        if len(shape) == 1 and shape[0] == self.n_visible:
            return ops.reshape(x, (1, self.n_visible))
        if len(shape) != 2 or shape[1] != self.n_visible:
            raise ValueError(f"RBM.{where}: expected an array of shape (n, {self.n_visible}) "
                             f"(or one row of {self.n_visible}), got shape {tuple(shape)}")
        return x

    @property
    def rng(self):
        """The model's generator, on the current backend (its PCG64 state carries over when
        the backend changes, so a run that switches backends stays reproducible)."""
        if self._rng_backend != ops.backend_name:
            fresh = ops.generator(0)
            fresh.numpy.bit_generator.state = self._rng.numpy.bit_generator.state
            self._rng, self._rng_backend = fresh, ops.backend_name
        return self._rng

    # ---- conditionals and sampling --------------------------------------------------------
    def hidden_probabilities(self, v):
        """p(h_j = 1 | v) = sigmoid(c_j + (vW)_j), shape (n, n_hidden)."""
        return _sigmoid(ops.matmul(v, self.weight) + self.hidden_bias)

    def visible_mean(self, h):
        """E[v | h]: sigmoid(b + W h) for Bernoulli units, b + W h for Gaussian ones."""
        pre = ops.matmul(h, ops.transpose(self.weight)) + self.visible_bias
        return _sigmoid(pre) if self.visible == "bernoulli" else pre

    def _bernoulli(self, p):
        """0/1 samples with probabilities ``p``. Uniforms come straight from the generator's
        PCG64 in the model's dtype: the same numbers on every backend, at about half the cost
        of ``Generator.bernoulli`` (which draws float64 and converts) in the training loop."""
        u = ops.from_numpy(self.rng.numpy.random(ops.shape(p), dtype=self.dtype))
        return ops.astype(ops.less(u, p), self._dt)

    def _gaussian(self, mean):
        return mean + self.rng.normal(ops.shape(mean), dtype=self.dtype)

    def sample_hidden(self, v):
        return self._bernoulli(self.hidden_probabilities(v))

    def sample_visible(self, h):
        mean = self.visible_mean(h)
        return self._bernoulli(mean) if self.visible == "bernoulli" else self._gaussian(mean)

    def gibbs(self, v, steps: int = 1):
        """``steps`` rounds of v → h → v sampling from ``v``; returns the visible sample."""
        v = self._input(v, "gibbs")
        for _ in range(int(steps)):
            v = self.sample_visible(self.sample_hidden(v))
        return v

    # ---- scoring ----------------------------------------------------------------------------
    def _visible_term(self, v):
        if self.visible == "bernoulli":
            return -ops.matmul(v, self.visible_bias)
        n = ops.shape(v)[0]
        return ops.dot(ops.square(v - self._bias_rows("visible_bias", n)), self._row_weights(self.n_visible, 0.5))

    def _free_energy_from(self, v, hidden_pre):
        return self._visible_term(v) - ops.dot(_softplus(hidden_pre), self._row_weights(self.n_hidden, 1.0))

    def free_energy(self, x):
        """F(v) per row, shape (n,): -log p(v) up to the constant log Z. Higher = less likely.

        Written for the pipeline's per-step call (~1,000 rows of a few dozen units): row sums
        as products with a vector (NumPy reduces a short row at a time, 5-10x slower), the
        biases added as same-shape matrices (a broadcast row costs NumPy a pass per row)."""
        v = self._input(x, "free_energy")
        n = ops.shape(v)[0]
        return self._free_energy_from(v, ops.dot(v, self.weight) + self._bias_rows("hidden_bias", n))

    def free_energy_columns(self, vt):
        """``free_energy`` of the columns of ``vt`` [n_visible, n] (one sample per column),
        for callers that hold their samples keys-last (the pipeline's detector): the same
        formula with the products transposed (equal to ``free_energy(vt.T)`` up to the
        rounding of the products), the biases added as broadcast columns (contiguous rows
        here, so one pass) and the sums over units as vector-matrix products."""
        shape = ops.shape(vt)
        if len(shape) != 2 or shape[0] != self.n_visible:
            raise ValueError(f"RBM.free_energy_columns: expected an array of shape "
                             f"({self.n_visible}, n), got shape {tuple(shape)}")
        vt = ops.asarray(vt, dtype=self._dt)
        n = shape[1]
        # (the biases as [units, n] arrays: column_bias.py, the same sums, ~3x cheaper in NumPy
        # than broadcast columns)
        cols = self.__dict__.get("_bias_columns")
        if cols is None:
            cols = self.__dict__["_bias_columns"] = ColumnBias()
        hidden_pre = ops.matmul(ops.transpose(self.weight), vt)
        hidden_pre += cols.get("hidden_bias", self.hidden_bias, n)
        hidden = ops.dot(self._row_weights(self.n_hidden, 1.0), _softplus(hidden_pre))
        if self.visible == "bernoulli":
            return -ops.dot(self.visible_bias, vt) - hidden
        visible = ops.dot(self._row_weights(self.n_visible, 0.5),
                          ops.square(vt - cols.get("visible_bias", self.visible_bias, n)))
        return visible - hidden

    def _bias_rows(self, name: str, n: int):
        """Bias ``name`` repeated as n rows, for a same-shape add: tiled from the second call
        that sees the same bias array (training replaces it, never mutates it), grown as
        needed, sliced to n rows; the first call with a new bias (each ``partial_fit``)
        returns the bias itself, broadcast (tiling costs more than it saves once)."""
        bias = getattr(self, name)
        cache = self.__dict__.setdefault("_bias_rows_cache", {})
        found = cache.get(name)
        if found is None or found[0] is not bias:
            cache[name] = (bias, None)
            return bias
        rows = found[1]
        if rows is None or ops.shape(rows)[0] < n:
            rows = ops.tile(ops.reshape(bias, (1, -1)), (max(n, 0 if rows is None else ops.shape(rows)[0]), 1))
            cache[name] = (bias, rows)
        return rows if ops.shape(rows)[0] == n else rows[:n]

    def _row_weights(self, width: int, value: float):
        """A vector of ``width`` times ``value``: a row sum (times ``value``) as a
        matrix-vector product."""
        key = (ops.backend_name, self.dtype, width, value)
        cache = self.__dict__.setdefault("_row_weights_cache", {})
        found = cache.get(key)
        if found is None:
            found = cache[key] = ops.full((width,), value, dtype=self.dtype)
        return found

    def transform(self, x):
        """Hidden-unit probabilities p(h = 1 | x), shape (n, n_hidden): the RBM's features."""
        return self.hidden_probabilities(self._input(x, "transform"))

    def reconstruction_error(self, x):
        """Mean squared error per row between x and its mean-field reconstruction
        E[v | h = p(h | x)], shape (n,). Deterministic (no sampling); higher = more unusual."""
        v = self._input(x, "reconstruction_error")
        recon = self.visible_mean(self.hidden_probabilities(v))
        return ops.mean(ops.square(v - recon), axis=1)

    def score(self, x, normalized: bool = True):
        """Anomaly score per row, shape (n,); higher = more anomalous.

        ``normalized=True``: (F(x) - mean) / std of the free energy of the training rows, from
        ``score_stats``: after each ``fit`` epoch, the epoch's last ``stats_window`` rows (or
        more, whole batches) under the final weights; ``partial_fit`` merges each batch in,
        older rows weighing at most ``stats_window``. Before any training there are no
        statistics and the raw free energy is returned.
        """
        energy = self.free_energy(x)
        count, mean, var = self._stats()
        if not normalized or count == 0:
            return energy
        return (energy - mean) / math.sqrt(var + 1e-12)

    # ---- training ---------------------------------------------------------------------------
    def partial_fit(self, batch) -> "RBM":
        """One CD-k (or persistent CD) update from one batch of rows: online training. The
        batch's free energies (before the update) join the running score statistics."""
        v0 = self._input(batch, "partial_fit")
        energy = self.free_energy(v0)
        stats = self._stats()
        self._set_stats(*self._merged(stats, energy, "partial_fit batch"))
        trainer = BlockCD.of(self)
        trainer.train(trainer.augmented(v0), ops.shape(v0)[0], 1)
        trainer.finish()
        return self

    def fit(self, data, epochs: int = 1, shuffle: bool = True, progress: bool = False) -> "RBM":
        """Train for ``epochs`` passes over ``data``: a 2-D array (cut into ``batch_size`` rows,
        shuffled each epoch), a callable returning an iterator of batches, or a re-iterable of
        batches (see ``ember_models.batches``). For early stopping and a loss history, use
        ``ember_models.training.train_rbm``."""
        source = as_batch_source(data, self.batch_size, shuffle, "RBM.fit data", self.dtype)
        for epoch in range(int(epochs)):
            self._epoch(source, epoch, progress, monitor=False)
        return self

    def fit_epoch(self, data, epoch: int = 0, shuffle: bool = True, progress: bool = False) -> float:
        """One pass over ``data`` (``epoch`` is 0-based); returns the epoch's mean squared
        reconstruction error per unit, each batch measured as ``reconstruction_error`` does,
        with the weights it was trained from (one extra matrix product per batch)."""
        source = as_batch_source(data, self.batch_size, shuffle, "RBM.fit data", self.dtype)
        return self._epoch(source, epoch, progress, monitor=True)

    def _epoch(self, source, epoch: int, progress: bool, monitor: bool) -> float:
        trainer = BlockCD.of(self)
        if source.kind == "array":   # whole batches of one array: many per chunk
            per_chunk = max(1, CHUNK_ROWS // self.batch_size)
            chunks = ((trainer.augmented(self._input(rows, "fit")), n0, nb)
                      for rows, n0, nb in source.array_chunks(epoch, self.rng, per_chunk))
        else:
            chunks = ((trainer.augmented(v), ops.shape(v)[0], 1)
                      for v in (self._input(batch, "fit") for batch in source.epoch(epoch, self.rng)))
        bar = None
        if progress:
            from tqdm.auto import tqdm
            bar = tqdm(desc=f"RBM epoch {epoch + 1}", unit="batch", leave=False)
        recent, recent_rows = deque(), 0   # the last >= stats_window rows, for score stats
        total, rows = 0.0, 0
        try:
            for v_aug, n0, nb in chunks:
                total += trainer.train(v_aug, n0, nb, monitor)
                rows += n0 * nb
                recent.append((v_aug, n0, nb))
                recent_rows += n0 * nb
                while recent_rows - recent[0][1] * recent[0][2] >= self.stats_window:
                    recent_rows -= recent[0][1] * recent[0][2]
                    recent.popleft()
                if bar is not None:
                    bar.update(nb)
        finally:
            if bar is not None:
                bar.close()
        # one check per epoch instead of one per batch: NaN/inf anywhere spreads to the weights
        if not trainer.finite():
            raise ValueError(f"RBM.fit: epoch {epoch + 1} made the weights non-finite, so the "
                             "training data holds NaN/inf values (or lr is far too high); the "
                             "weights are back to where the epoch started")
        trainer.finish()
        # score statistics: the free energy of the epoch's last rows (the fewest whole batches
        # holding >= stats_window rows) under the final weights
        parts, kept = [], 0
        for v_aug, n0, nb in reversed(recent):
            if kept >= self.stats_window:
                break
            take = min(nb, -(-(self.stats_window - kept) // n0))
            parts.append(v_aug[(nb - take) * n0:nb * n0, :self.n_visible])
            kept += take * n0
        # per part (a chunk's rows, <= CHUNK_ROWS): the temporaries stay small and reused
        # instead of fresh multi-MB arrays whose first touch (page faults) cost more than
        # the arithmetic (10,240 rows: 7 ms at once vs ~2 ms)
        blocks, block, block_rows = [], [], 0
        for part in parts[::-1]:
            block.append(part)
            block_rows += ops.shape(part)[0]
            if block_rows >= CHUNK_ROWS:
                blocks.append(block)
                block, block_rows = [], 0
        if block:
            blocks.append(block)
        energy = ops.concatenate([self.free_energy(b[0] if len(b) == 1 else ops.concatenate(b, axis=0))
                                  for b in blocks], axis=0)
        count, mean, var = self._merged(self._stats(), energy, "fit data")
        self._set_stats(count - kept + rows, mean, var)
        return total / rows if monitor else float("nan")

    # ---- score statistics ---------------------------------------------------------------
    def _stats(self) -> tuple[float, float, float]:
        count, mean, var = (float(s) for s in ops.to_numpy(self.score_stats))
        return count, mean, var

    def _set_stats(self, count: float, mean: float, var: float) -> None:
        self.score_stats = ops.asarray([count, mean, var], dtype="float32")

    def _merged(self, stats, energy, what: str) -> tuple[float, float, float]:
        """(count, mean, var) of ``stats`` merged with the free energies ``energy`` (Chan et
        al.); old rows weigh as at most ``stats_window - len(energy)`` so the statistics
        follow the model as it trains."""
        n_b = ops.shape(energy)[0]
        mean_b = float(ops.item(ops.sum(energy))) / n_b
        var_b = float(ops.item(ops.sum(ops.square(energy - mean_b)))) / n_b
        if not (math.isfinite(mean_b) and math.isfinite(var_b)):
            raise ValueError(f"RBM: the {what} gives a non-finite free energy: it holds NaN/inf "
                             "values (or values far outside the visible units' range)")
        count, mean_a, var_a = stats
        n_a = min(count, max(self.stats_window - n_b, 0))
        n = n_a + n_b
        delta = mean_b - mean_a
        return (count + n_b, mean_a + delta * n_b / n,
                (var_a * n_a + var_b * n_b + delta * delta * n_a * n_b / n) / n)
