"""The RBM's CD-k / persistent-CD updates, the one implementation ``fit`` and ``partial_fit`` use.

Written for few array calls per batch: at scikit-learn's batch size of 10 a 10×64 by 64×64
product costs about as much as an elementwise call (~1 µs), so the call count is the speed.

- **One parameter block.** ``W`` (n_visible × n_hidden), ``b`` and ``c`` live in one
  ``(n_visible + 1) × (n_hidden + 1)`` block ``[[W, b], [c, ·]]`` and every visible / hidden
  row carries a trailing 1, so ``[v, 1] @ block`` is ``vW + c`` (its last column unused),
  ``[h, 1] @ blockᵀ`` is ``hWᵀ + b``, and ``[v, 1]ᵀ @ q`` gives the gradients of ``W``, ``b`` and
  ``c`` together: one product, one update. The trailing 1 of a sample comes out of its
  comparison: its uniform is ``-inf``, and ``-inf < t`` is true.
- **The block is kept halved** (``block = ½·[[W, b], [c, ·]]``), so the logistic is
  ``(1 + tanh(block product))/2`` with no per-batch halving; halving is exact (a power-of-two
  scale commutes with rounding), so ``fit`` and ``partial_fit`` unpack the same numbers.
  Samples compare ``2u - 1 < tanh(·)`` (``u < (1 + t)/2``; ``2u - 1`` is exact for
  ``u = m·2⁻²⁴``). The statistics ``Σ ±lr/n · [v,1]ᵀ p`` with ``p = (1 + t)/2`` are
  ``[v,1]ᵀ (t ⊙ A + B)``, ``A``, ``B`` cached matrices of the lr scales (B's last column makes the
  ``b`` gradient); persistent CD stacks data and chain samples, so one product gives
  ``<v hᵀ>_data - <v hᵀ>_model``.
- **Uniforms for many batches in one draw** (Bernoulli visible units): NumPy PCG64 float32
  draws are one stream of 32-bit words, so drawing a chunk of batches at once gives the same
  numbers, in the same order, as drawing per batch; the ``2u - 1`` affine runs once per chunk.
  Gaussian visible units interleave normal draws, so they draw per batch.
"""
from __future__ import annotations

import sys

import numpy as np

from . import ops

CHUNK_ROWS = 1024   # rows per chunk: uniforms ~0.5 MB of float32 at 64 + 64 units


def _float32_words(gen: np.random.Generator, count: int):
    """The ``count`` 32-bit words ``gen.random(count, dtype=float32)`` would turn into floats,
    as a uint32 array, or None where that cannot be had exactly. NumPy's PCG64 float32 draw is
    ``(next_uint32 >> 8)·2⁻²⁴`` and ``next_uint32`` hands out the low, then the high half of
    each 64-bit output, so with no half-word buffered and an even count the words are
    ``random_raw(count // 2)`` viewed as little-endian uint32: ~40% cheaper per number than
    the float draw, which converts one number at a time."""
    bits = gen.bit_generator
    if count % 2 or sys.byteorder != "little" or not isinstance(bits, np.random.PCG64):
        return None
    if bits.state["has_uint32"]:
        return None
    return bits.random_raw(count // 2).view(np.uint32)


class BlockCD:
    """CD-k / persistent CD on an RBM's parameters packed into one block; ``finish`` writes
    them (and the momentum velocities and the persistent chain) back to the RBM."""

    def __init__(self, rbm):
        self.rbm = rbm
        nv, nh, dt = rbm.n_visible, rbm.n_hidden, rbm._dt
        self.nv, self.nh, self.dt, self.k = nv, nh, dt, rbm.k
        self.np_dt = np.float32 if rbm.dtype == "float32" else np.float64
        self.persistent, self.gaussian = rbm.persistent, rbm.visible == "gaussian"
        self.lr, self.momentum, self.weight_decay = rbm.lr, rbm.momentum, rbm.weight_decay
        self.decay = None
        if self.weight_decay:   # lr·decay on the W part only (no decay on biases)
            d = np.zeros((nv + 1, nh + 1), dtype=self.np_dt)
            d[:nv, :nh] = self.lr * self.weight_decay
            self.decay = ops.from_numpy(d)
        self.ones_col = {}
        self._scales = {}
        self._u = {}
        self._gain_row = self._recon_rows = None
        self._written = None      # the RBM's arrays as finish() left them (see refresh)
        self.refresh()

    @staticmethod
    def settings(rbm) -> tuple:
        return (ops.backend_name, rbm.n_visible, rbm.n_hidden, rbm.visible, rbm.k, rbm.persistent,
                rbm.lr, rbm.momentum, rbm.weight_decay, rbm.batch_size, rbm.dtype)

    @classmethod
    def of(cls, rbm) -> "BlockCD":
        """The RBM's trainer: kept between calls (``partial_fit`` runs one batch per call, so
        the constants, buffers and the packed block are reused while the settings are the
        same and the RBM's arrays are still the ones the last ``finish`` wrote)."""
        key = cls.settings(rbm)
        found = rbm.__dict__.get("_block_cd")
        if found is not None and found[0] == key:
            found[1].refresh()
            return found[1]
        trainer = cls(rbm)
        object.__setattr__(rbm, "_block_cd", (key, trainer))
        return trainer

    def _arrays(self) -> tuple:
        rbm = self.rbm
        return (rbm.weight, rbm.visible_bias, rbm.hidden_bias, rbm.weight_velocity,
                rbm.visible_bias_velocity, rbm.hidden_bias_velocity, rbm.chain)

    def refresh(self) -> None:
        """Pack the RBM's parameters (and velocities, chain) unless the block still holds
        them: the RBM's arrays are exactly those the last ``finish`` wrote (arrays are
        replaced, never mutated, so identity says nothing changed them)."""
        now = self._arrays()
        if self._written is not None and all(a is b for a, b in zip(now, self._written)):
            return
        rbm = self.rbm
        self.block = self._pack(rbm.weight, rbm.visible_bias, rbm.hidden_bias)
        self.velocity = (self._pack(rbm.weight_velocity, rbm.visible_bias_velocity,
                                    rbm.hidden_bias_velocity) if self.momentum else None)
        self.chain = (ops.concatenate([rbm.chain, ops.ones((rbm.batch_size, 1), dtype=self.dt)],
                                      axis=1) if self.persistent else None)

    # ---- packing ----------------------------------------------------------------------------
    def _pack(self, w, b, c):
        nv, nh, dt = self.nv, self.nh, self.dt
        top = ops.concatenate([w, ops.reshape(b, (nv, 1))], axis=1)
        bottom = ops.reshape(ops.concatenate([c, ops.zeros((1,), dtype=dt)]), (1, nh + 1))
        return 0.5 * ops.concatenate([top, bottom], axis=0)

    def _unpack(self, block):
        nv, nh = self.nv, self.nh
        return block[:nv, :nh] * 2.0, block[:nv, nh] * 2.0, block[nv, :nh] * 2.0

    def finite(self) -> bool:
        return bool(np.isfinite(float(ops.item(ops.sum(self.block)))))

    def finish(self) -> None:
        """Write the trained parameters, velocities and chain back to the RBM (as new arrays:
        the RBM's old ones are never mutated, so a saved state dict stays valid)."""
        rbm, assign = self.rbm, object.__setattr__
        # block slices times 2 are new arrays already
        for name, value in zip(("weight", "visible_bias", "hidden_bias"), self._unpack(self.block)):
            assign(rbm, name, value)
        if self.velocity is not None:
            for name, value in zip(("weight_velocity", "visible_bias_velocity",
                                    "hidden_bias_velocity"), self._unpack(self.velocity)):
                assign(rbm, name, value)
        if self.persistent:
            assign(rbm, "chain", ops.copy(self.chain[:, :self.nh]))
        self._written = self._arrays()

    # ---- per-shape constants ----------------------------------------------------------------
    def augmented(self, v):
        """Rows ``v`` (n, n_visible) with the trailing column of ones."""
        n = ops.shape(v)[0]
        ones = self.ones_col.get(n)
        if ones is None:
            ones = self.ones_col[n] = ops.ones((n, 1), dtype=self.dt)
        return ops.concatenate([v, ones], axis=1)

    def _scale(self, n0: int):
        """A, B (stack rows × (n_hidden + 1)) with ``[v,1]ᵀ(t⊙A + B)`` = half the update
        ``Σ ±lr/n · [v,1]ᵀ [p, 1]``, ``p = (1 + t)/2``: rows of data ``+lr/n0``, of the model
        sample ``-lr/n1``; A = s/4 (0 in the last column), B = s/4 (s/2 in the last)."""
        found = self._scales.get(n0)
        if found is None:
            n1 = self.rbm.batch_size if self.persistent else n0
            s = np.concatenate([np.full(n0, self.lr / n0), np.full(n1, -self.lr / n1)])
            s = s.astype(self.np_dt).reshape(-1, 1)     # the per-row scale as the model's dtype
            a = np.repeat(s / 4, self.nh + 1, axis=1)
            a[:, -1] = 0
            b = np.repeat(s / 4, self.nh + 1, axis=1)
            b[:, -1] = s[:, 0] / 2
            found = self._scales[n0] = (ops.from_numpy(a), ops.from_numpy(b))
        return found

    # ---- random draws ----------------------------------------------------------------------
    def _uniforms(self, nb: int, n: int):
        """``2u - 1`` for ``nb`` batches of ``n`` sampled rows, in the per-batch draw order
        (PCD per Gibbs step: visible then hidden; CD: hidden then visible), as backend arrays
        (nb, k, n, n_visible + 1) and (nb, k, n, n_hidden + 1), last columns -inf."""
        nv, nh, k = self.nv, self.nh, self.k
        bufs = self._u.get(n)
        if bufs is None or bufs[0].shape[0] < nb:
            # two buffers, each contiguous per sample: a comparison with a strided operand
            # costs NumPy ~2.5x at these sizes
            bufs = (np.empty((nb, k, n, nv + 1), dtype=self.np_dt),
                    np.empty((nb, k, n, nh + 1), dtype=self.np_dt))
            for buf in bufs:
                buf[..., -1] = -np.inf
            self._u[n] = bufs
        uv, uh = bufs[0][:nb], bufs[1][:nb]
        count = nb * k * n * (nv + nh)
        words = _float32_words(self.rbm.rng.numpy, count) if self.np_dt is np.float32 else None
        split = n * (nv if self.persistent else nh)
        if words is not None:
            # 2u = (word >> 8)·2^-23, written straight into the sample layout (exact in float32)
            words >>= 8
            flat = words.reshape(nb, k, n * (nv + nh))
            scale = np.float32(2.0 ** -23)

            def put(src, dst, width):
                np.multiply(src.reshape(nb, k, n, width), scale, out=dst[..., :width],
                            dtype=np.float32, casting="unsafe")
                dst -= 1.0           # exact: 2u is a multiple of 2^-23; -inf stays
        else:
            flat = self.rbm.rng.numpy.random((nb, k, n * (nv + nh)), dtype=self.np_dt)
            flat *= 2.0
            flat -= 1.0              # exact: 2u is a multiple of 2^-23 (2^-52 for float64)

            def put(src, dst, width):
                dst[..., :width] = src.reshape(nb, k, n, width)
        first, second = flat[..., :split], flat[..., split:]
        if self.persistent:
            put(first, uv, nv)
            put(second, uh, nh)
        else:
            put(first, uh, nh)
            put(second, uv, nv)
        return ops.from_numpy(uv), ops.from_numpy(uh)

    def _hidden_uniforms(self, n: int):
        """``2u - 1`` for one hidden sample of n rows (last column -inf): Gaussian models draw
        per batch, since their normal draws sit between the uniform ones."""
        nh = self.nh
        full = np.empty((n, nh + 1), dtype=self.np_dt)
        u = full[:, :nh]
        u[...] = self.rbm.rng.numpy.random((n, nh), dtype=self.np_dt)
        u *= 2.0                 # (not the whole of ``full``: its last column is still
        u -= 1.0                 # uninitialised memory, whose NaN and huge values warned)
        full[:, nh] = -np.inf
        return ops.from_numpy(full)

    def _visible_noise(self, n: int):
        """N(0, 1) for one visible sample of n rows, with the trailing column of ones."""
        return self.augmented(self.rbm.rng.normal((n, self.nv), dtype=self.rbm.dtype))

    # ---- training -----------------------------------------------------------------------------
    def train(self, rows, n0: int, nb: int, monitor: bool = False) -> float:
        """``nb`` updates from consecutive batches of ``n0`` rows of ``rows`` (augmented:
        ``nb·n0 × (n_visible + 1)``). With ``monitor``, returns the summed mean-field
        reconstruction error per unit of the batches, each under the weights it was trained
        from (else 0)."""
        self._written = None     # the block runs ahead of the RBM's arrays until finish()
        dot, tanh, less, astype = ops.dot, ops.tanh, ops.less, ops.astype
        transpose, concat = ops.transpose, ops.concatenate
        dt, k, persistent, gaussian = self.dt, self.k, self.persistent, self.gaussian
        a, b = self._scale(n0)
        n = self.rbm.batch_size if persistent else n0
        if gaussian:
            if self._gain_row is None:
                self._gain_row = self._gain()
            gain = self._gain_row
        else:
            uv_all, uh_all = self._uniforms(nb, n)
        block, velocity, decay, momentum = self.block, self.velocity, self.decay, self.momentum
        chain = self.chain
        error = 0.0
        for i in range(nb):
            v0 = rows[i * n0:(i + 1) * n0] if nb > 1 else rows
            block_t = transpose(block)
            if persistent:
                h = chain
                for step in range(k):
                    if gaussian:
                        v = dot(h, block_t) * gain + self._visible_noise(n)
                        uh = self._hidden_uniforms(n)
                    else:   # the last sample stays boolean: the stack's concatenation
                        v = less(uv_all[i, step], tanh(dot(h, block_t)))   # casts it (one
                        uh = uh_all[i, step]                             # call fewer)
                        if step < k - 1:
                            v = astype(v, dt)
                    if step < k - 1:
                        h = astype(less(uh, tanh(dot(v, block))), dt)
                stack = concat([v0, v])
                t = tanh(dot(stack, block))              # [data; chain sample] in one product
                chain = astype(less(uh, t[n0:]), dt)
            else:
                t0 = tanh(dot(v0, block))
                uh = self._hidden_uniforms(n) if gaussian else uh_all[i, 0]
                h = astype(less(uh, t0), dt)
                for step in range(k):
                    if gaussian:
                        v = dot(h, block_t) * gain + self._visible_noise(n)
                    else:   # the last sample stays boolean, cast by the concatenation
                        v = less(uv_all[i, step], tanh(dot(h, block_t)))
                        if step < k - 1:
                            v = astype(v, dt)
                    if step < k - 1:
                        uh = self._hidden_uniforms(n) if gaussian else uh_all[i, step + 1]
                        h = astype(less(uh, tanh(dot(v, block))), dt)
                stack = concat([v0, v])
                t = concat([t0, tanh(dot(stack[n0:], block))])
            if monitor:
                error += self._recon_error(v0, t[:n0], block_t)
            d = dot(transpose(stack), t * a + b)
            if decay is not None:
                d = d - block * decay
            if velocity is not None:
                velocity = momentum * velocity + d
                d = velocity
            block = block + d
        self.block, self.velocity, self.chain = block, velocity, chain
        return error

    def _gain(self):
        """Row (2, ..., 2, 0): a Gaussian visible mean is twice the halved block's product;
        the 0 drops the unused last column, so adding noise with a trailing 1 gives [v, 1]."""
        g = np.full(self.nv + 1, 2.0, dtype=self.np_dt)
        g[-1] = 0.0
        return ops.from_numpy(g)

    def _recon_error(self, v0, t0, block_t) -> float:
        """Σ (v0 - E[v | p(h | v0)])² / n_visible, t0 = tanh of v0's hidden product."""
        nh, nv = self.nh, self.nv
        if self._recon_rows is None:
            half = np.full(nh + 1, 0.5, dtype=self.np_dt)
            half[-1] = 0.0
            one = np.full(nh + 1, 0.5, dtype=self.np_dt)
            one[-1] = 1.0
            self._recon_rows = (ops.from_numpy(half), ops.from_numpy(one))
        half, one = self._recon_rows
        p0 = t0 * half + one                                # [p(h | v0), 1]
        pre = ops.dot(p0, block_t)
        recon = pre * 2.0 if self.gaussian else 0.5 * ops.tanh(pre) + 0.5
        diff = v0[:, :nv] - recon[:, :nv]
        return float(ops.item(ops.sum(ops.square(diff)))) / nv
