"""Liquid time-constant (LTC) cell (Hasani et al. 2021), ncps' ``LTCCell`` semantics.

Each neuron i is a leaky membrane with synapses j→i (from the wiring) whose conductance is a
sigmoid of the presynaptic potential::

    cm·dv_i/dt = gleak_i·(vleak_i − v_i) + Σ_j w_ji·σ(sigma_ji·(v_j − mu_ji))·(erev_ji − v_i)

solved semi-implicitly, ``ode_unfolds`` times per step of elapsed time ``dt`` (the fused step
of the LTC paper), with the inputs' synapses computed once per step::

    v ← (cm_t·v + gleak·vleak + Σ w·σ·erev) / (cm_t + gleak + Σ w·σ + epsilon),  cm_t = cm·unfolds/dt

Speed: ncps evaluates the sigmoid for every (source, target) pair, masked afterwards. The plan
here only evaluates the wiring's actual synapses (an AutoNCP(32) has 116 of 1024): with the
neurons along rows and the samples along columns, the presynaptic potentials are gathered by
row (``take``), one ``tanh`` serves every synapse (σ(z) = (1 + tanh(z/2))/2, with
``sigma/2`` folded in), and one matmul by a (2·targets, synapses) matrix carrying ``w·erev/2``
and ``w/2`` scatter-adds numerator and denominator. For large batches that matrix only spans
the neurons that receive synapses (an NCP's inter neurons receive none from other neurons).
Masked-out synapses contribute exactly zero in ncps, so this is the same function.

``dt`` = 0 would divide by zero; it is floored at 1e-9 s (the state then stays put, which is
the limit of the update as dt → 0).
"""
from __future__ import annotations

import numpy as np

from .. import ops
from ..model_file import register
from ..nn import Parameter
from ..wiring import FullyConnected, as_wiring
from . import init
from .cell import LiquidCell
from .plan_cache import tracked

INIT_RANGES = {"gleak": (0.001, 1.0), "vleak": (-0.2, 0.2), "cm": (0.4, 0.6), "w": (0.001, 1.0),
               "sigma": (3.0, 8.0), "mu": (0.3, 0.8), "sensory_w": (0.001, 1.0),
               "sensory_sigma": (3.0, 8.0), "sensory_mu": (0.3, 0.8)}
MAPPINGS = ("affine", "linear", None)
_DT_FLOOR = 1e-9
_RANGED_BATCH = 32   # from this batch up, scatter only to the target range (measured here)


@register
@tracked("gleak", "vleak", "cm", "sigma", "mu", "w", "erev", "sensory_sigma", "sensory_mu",
         "sensory_w", "sensory_erev", "sparsity_mask", "sensory_sparsity_mask",
         "input_w", "input_b", "output_w", "output_b")
class LTCCell(LiquidCell):
    """An LTC over a wiring (or ``units`` fully connected neurons). State = the neurons'
    potentials by neuron id; output = the motor neurons (first ``output_dim``), mapped
    ``* output_w + output_b`` (``output_mapping``); inputs mapped likewise (``input_mapping``).

    implicit_param_constraints: keep w, sensory_w, cm, gleak positive through a softplus
    (ncps' ``LTC`` default); otherwise call ``apply_weight_constraints()`` after updates.
    """

    def __init__(self, input_size: int, wiring, input_mapping: str | None = "affine",
                 output_mapping: str | None = "affine", ode_unfolds: int = 6,
                 epsilon: float = 1e-8, implicit_param_constraints: bool = True,
                 seed: int | None = None):
        super().__init__()
        if isinstance(wiring, int) and not isinstance(wiring, bool):
            wiring = FullyConnected(wiring)
        wiring = as_wiring(wiring, input_size)
        if input_mapping not in MAPPINGS or output_mapping not in MAPPINGS:
            raise ValueError(f"input/output mapping must be one of {MAPPINGS}")
        if int(ode_unfolds) < 1:
            raise ValueError(f"ode_unfolds must be >= 1, got {ode_unfolds}")
        self.wiring = wiring
        self.input_size, self.state_size = int(input_size), wiring.units
        self.output_size = wiring.output_dim
        self.input_mapping, self.output_mapping = input_mapping, output_mapping
        self.ode_unfolds, self.epsilon = int(ode_unfolds), float(epsilon)
        self.implicit_param_constraints = bool(implicit_param_constraints)
        self.seed = seed
        g = init.rng(seed)
        n, f = self.state_size, self.input_size

        def draw(name, shape):
            lo, hi = INIT_RANGES[name]
            return Parameter(init.param(init.uniform(g, lo, hi, shape)))

        self.gleak, self.vleak, self.cm = draw("gleak", (n,)), draw("vleak", (n,)), draw("cm", (n,))
        self.sigma, self.mu, self.w = draw("sigma", (n, n)), draw("mu", (n, n)), draw("w", (n, n))
        self.erev = Parameter(init.param(wiring.adjacency_matrix.astype(np.float32)))
        self.sensory_sigma = draw("sensory_sigma", (f, n))
        self.sensory_mu = draw("sensory_mu", (f, n))
        self.sensory_w = draw("sensory_w", (f, n))
        self.sensory_erev = Parameter(init.param(wiring.sensory_adjacency_matrix.astype(np.float32)))
        self.register_buffer("sparsity_mask", init.param(np.abs(wiring.adjacency_matrix)))
        self.register_buffer("sensory_sparsity_mask",
                             init.param(np.abs(wiring.sensory_adjacency_matrix)))
        if input_mapping in ("affine", "linear"):
            self.input_w = Parameter(init.param(np.ones((f,), np.float32)))
        if input_mapping == "affine":
            self.input_b = Parameter(init.param(np.zeros((f,), np.float32)))
        if output_mapping in ("affine", "linear"):
            self.output_w = Parameter(init.param(np.ones((self.output_size,), np.float32)))
        if output_mapping == "affine":
            self.output_b = Parameter(init.param(np.zeros((self.output_size,), np.float32)))

    def get_config(self):
        return {"input_size": self.input_size, "wiring": self.wiring.get_config(),
                "input_mapping": self.input_mapping, "output_mapping": self.output_mapping,
                "ode_unfolds": self.ode_unfolds, "epsilon": self.epsilon,
                "implicit_param_constraints": self.implicit_param_constraints, "seed": self.seed}

    # ---- parameters as the ODE sees them ---------------------------------------------------
    def _positive(self, p):
        return ops.softplus(p) if self.implicit_param_constraints else p

    def apply_weight_constraints(self) -> None:
        """Clip w, sensory_w, cm, gleak at 0 (explicit constraints, as ncps)."""
        if not self.implicit_param_constraints:
            for name in ("w", "sensory_w", "cm", "gleak"):
                setattr(self, name, Parameter(ops.relu(getattr(self, name))))

    def output(self, state):
        out = state[:, :self.output_size]
        if self.output_mapping in ("affine", "linear"):
            out = out * self.output_w
        if self.output_mapping == "affine":
            out = out + self.output_b
        return out

    # ---- plan --------------------------------------------------------------------------------
    def _build_plan(self):
        n = self.state_size
        rec = _synapses(self.sparsity_mask, self.sigma, self.mu, self._positive(self.w),
                        self.erev, n)
        sens = _synapses(self.sensory_sparsity_mask, self.sensory_sigma, self.sensory_mu,
                         self._positive(self.sensory_w), self.sensory_erev, n)
        src_s, sig_s, csig_s, mt_s, mtf_s, ta_s, tb_s, m0_s = sens
        if self.input_mapping in ("affine", "linear"):
            # x·input_w (+ input_b) folded into the sensory synapses' sigmoid arguments
            col = lambda p: ops.reshape(ops.take(p, src_s), (-1, 1))
            if self.input_mapping == "affine":
                csig_s = csig_s - sig_s * col(self.input_b)
            sig_s = sig_s * col(self.input_w)
        gleak = self._positive(self.gleak)
        const = m0_s + rec[7] + ops.concatenate([gleak * self.vleak, gleak + self.epsilon])
        cm = self._positive(self.cm) * float(self.ode_unfolds)
        return ((src_s, sig_s, csig_s, mt_s, mtf_s, ta_s, tb_s), rec[:7],
                ops.reshape(const, (-1, 1)), ops.reshape(cm, (-1, 1)))

    def _run(self, plan, x, h, ts):
        # neurons along rows, samples along columns: gathering a synapse's presynaptic
        # potential is then a row copy, not a strided gather
        sens, rec, const, cm = plan
        n = self.state_size
        zeros = {}
        sd = _synaptic_sum(sens, ops.transpose(x), n, zeros) + const
        cm_t = cm / ops.maximum(ops.transpose(ts), _DT_FLOOR)
        num0, den0 = sd[:n], sd[n:] + cm_t
        v = ops.transpose(h)
        for _ in range(self.ode_unfolds):
            nd = _synaptic_sum(rec, v, n, zeros)
            v = (cm_t * v + num0 + nd[:n]) / (den0 + nd[n:])
        v = ops.transpose(v)
        return self.output(v), v


def _synaptic_sum(syn, v, n, zeros):
    """(2n, B): the sigmoid's variable half summed over each target's synapses, numerator
    rows then denominator rows; ``v`` is (sources, B)."""
    src, sig, csig, mt, mt_full, t_a, t_b = syn
    u = ops.tanh(ops.take(v, src, axis=0) * sig - csig)
    batch = ops.shape(v)[1]
    if batch < _RANGED_BATCH or (t_a == 0 and t_b == n):
        return ops.matmul(mt_full, u)     # small batches: fewer calls beat fewer FLOPs
    nd = ops.matmul(mt, u)
    width = t_b - t_a
    key = (batch, t_a, t_b)
    pads = zeros.get(key)
    if pads is None:
        pads = zeros[key] = (ops.zeros((t_a, batch), dtype=ops.dtype_name(v)),
                             ops.zeros((n - t_b, batch), dtype=ops.dtype_name(v)))
    top, bottom = pads
    return ops.concatenate([top, nd[:width], bottom, top, nd[width:], bottom], axis=0)


def _synapses(mask, sigma, mu, w, erev, n):
    """The synapses present in ``mask`` (sources x targets), as gather/scatter arrays::

        src (S,) source of each synapse; sig, csig (S, 1) = sigma/2, sigma·mu/2;
        Mt (2T, S) = [w·erev/2 ; w/2] at each synapse's target row, over the target range
        [t_a, t_b) (T = t_b − t_a: neurons outside receive no synapse of this kind);
        Mt_full (2n, S): the same over all neurons (zero rows outside the range);
        m0 (2n,) = Mt's row sums placed at the targets (the sigmoid's constant half).
    """
    m_np = ops.to_numpy(mask)
    src, dst = np.nonzero(m_np)
    if len(src) == 0:   # no synapses of this kind: one zero-weight dummy keeps shapes valid
        src, dst, weigh = np.zeros(1, np.int64), np.zeros(1, np.int64), np.zeros(1, np.float32)
    else:
        weigh = m_np[src, dst].astype(np.float32)        # a mask may weigh synapses
    t_a, t_b = int(dst.min()), int(dst.max()) + 1
    flat = ops.from_numpy((src * n + dst).astype(np.int64))
    pick = lambda p: ops.take(ops.reshape(p, (-1,)), flat)
    sig, mu_s, w_s, e_s = pick(sigma), pick(mu), pick(w), pick(erev)
    half_w = 0.5 * w_s * ops.from_numpy(weigh)
    onehot = np.zeros((t_b - t_a, len(src)), np.float32)
    onehot[dst - t_a, np.arange(len(src))] = 1.0
    od = ops.from_numpy(onehot)
    mt = ops.concatenate([od * ops.reshape(half_w * e_s, (1, -1)),
                          od * ops.reshape(half_w, (1, -1))], axis=0)
    rows = ops.sum(mt, axis=1)
    pad_a, pad_b = ops.zeros((t_a,)), ops.zeros((n - t_b,))
    m0 = ops.concatenate([pad_a, rows[:t_b - t_a], pad_b, pad_a, rows[t_b - t_a:], pad_b])
    mt_full = ops.concatenate([ops.zeros((t_a, len(src))), mt[:t_b - t_a],
                               ops.zeros((n - t_b, len(src))), ops.zeros((t_a, len(src))),
                               mt[t_b - t_a:], ops.zeros((n - t_b, len(src)))], axis=0)
    return (ops.from_numpy(src.astype(np.int64)), ops.reshape(0.5 * sig, (-1, 1)),
            ops.reshape(0.5 * sig * mu_s, (-1, 1)), mt, mt_full, t_a, t_b, m0)
