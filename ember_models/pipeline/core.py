"""The detector core: events of n keys → calibrated score, alert, reasons.

Per event of a key (``run_rounds`` advances the keys by a run of rounds, round r being the
r-th event of each key still running):

1. its feature vector f (FeatureEngine) is standardised with the key's running mean/variance
   → u (scale-free, clipped);
2. the liquid network's motor layer predicted u from the key's reservoir state before this
   event; the prediction error e = u - û is the first learnt raw score (mean e²);
3. the RBM's free energy of u is the second;
4. the values themselves (both directions) are raw scores too: a value beyond what the key
   has ever shown is the plainest anomaly there is;
5. each raw score becomes tail evidence (-log10 of its probability against the key's own
   history, tail.TailEvidence); the strongest evidence is the event's, mapped to [0, 1):
   score = x / (x + half_evidence);
6. the reservoir (a multi-stride liquid network of random, fixed CfC weights) takes u and the
   elapsed time (in units of the key's typical interval) and moves on.

Only 6 links an event to the next one through a model, so only the reservoir steps round by
round; 1 and 5 are per-key bookkeeping in compiled loops over the rounds, 2-4 one product
each over all the run's events. Streaming (``Pipeline.step``) and backfill (``Pipeline.score``)
run this same code.
"""
from __future__ import annotations

import numpy as np

from .. import ops
from ..kernels import kernels
from ..features.engine import FeatureEngine
from ..liquid import MultiStrideLiquid
from ..liquid.cfc import CfCCell, WiredCfCCell
from ..liquid.keys_last import KeysLastReservoir
from ..rbm import RBM
from ..wiring import AutoNCP
from .key_state import RowLayout
from .settings import PipelineSettings
from .tail import TailEvidence

MODEL_STREAMS = ("prediction_error", "rbm_free_energy", "label_head")
# per-key arrays over all features or reservoir units: computed in float32 while a batch runs
# (stored as float64 rows, which hold float32 values exactly, so a state saved between two
# micro-batches resumes bit for bit)
FLOAT32_STATE = ("std_mean", "std_var", "liquid")


class DetectorCore:
    def __init__(self, config, settings: PipelineSettings):
        self.config, self.settings = config, settings
        s = settings
        self.engine = FeatureEngine(config.data, config.features)
        self.d = d = self.engine.n_features
        self.value_fields = list(config.value_fields)
        self.liquid = build_reservoir(d, s).eval()
        self.n_out = sum(c.output_size for c in self.liquid.branches)
        self.rbm = RBM(d, s.rbm_hidden, visible="gaussian", seed=s.seed, lr=0.01,
                       batch_size=64)
        self.label_w = None              # [n_out + d + 1] once labels were given to fit()
        self.stream_names = ([f"{v}.high" for v in self.value_fields]
                             + [f"{v}.low" for v in self.value_fields] + list(MODEL_STREAMS))
        self.n_values = len(self.value_fields)
        self.tail = TailEvidence(len(self.stream_names), s.tail_size, s.tail_memory)
        spec = {"n_seen": ((), 0.0), "last_t": ((), 0.0), "dt_mean": ((), 0.0),
                "quiet": ((), 0.0), "std_mean": ((d,), 0.0), "std_var": ((d,), 0.0),
                "liquid": ((self.liquid.state_size,), 0.0)}
        spec.update(self.tail.layout())
        self.layout = RowLayout(spec)
        self.weights = np.ones(len(self.stream_names))
        self.weights[2 * self.n_values:] = s.model_weight
        self._weighted = bool((self.weights != 1.0).any())     # all 1 (the default): skip
        self._a_std = 1.0 - 0.5 ** (1.0 / s.standardize_halflife)
        # row means as a matrix-vector product: NumPy reduces short rows (here d = tens of
        # features) one row at a time, ~5x slower than BLAS
        self._mean_w = ops.full((d,), 1.0 / d, ops.float32)

    @property
    def feature_names(self) -> list[str]:
        return self.engine.names

    # ---- the batch's state: keys-last while a batch runs -------------------------------------
    # The reservoir's working array lives on the backend keys-last (rows = state variables,
    # columns = keys: liquid/keys_last.py): its CfC layers then read contiguous rows, with no
    # transposes per round. The per-key bookkeeping (standardisation, time, tails, refractory
    # count) is NumPy, updated in place by compiled loops: the standardisation's mean/variance
    # keys-last [d, n] float32, the per-key scalars [n] float64, the tails rows [n, ...].
    def reservoir(self) -> KeysLastReservoir:
        return KeysLastReservoir.for_network(self.liquid)

    def batch_state(self, rows) -> dict:
        """Stored detector rows [n, width] (float64 NumPy) → the batch's state: name → array
        (the ``FLOAT32_STATE`` ones in float32, which the float64 rows hold exactly, so a state
        saved between two micro-batches resumes bit for bit)."""
        st = {}
        for k, v in self.layout.split(rows).items():
            if k == "liquid":
                st[k] = self.reservoir().load(ops.astype(ops.from_numpy(v), ops.float32))
            elif k in FLOAT32_STATE:
                st[k] = np.ascontiguousarray(v.T, np.float32)
            else:
                st[k] = v
        return st

    def batch_rows(self, st: dict):
        """The batch's state → detector rows [n, width] (float64 NumPy)."""
        out = {}
        for k, v in st.items():
            if k == "liquid":
                v = ops.to_numpy(self.reservoir().store(v))
            elif k in FLOAT32_STATE:
                v = v.T
            out[k] = np.asarray(v, np.float64)
        return self.layout.join(out)

    # ---- a run of rounds -------------------------------------------------------------------
    def run_rounds(self, st: dict, starts, t, x, f, learn: bool = False, reasons: bool = True):
        """Advance the keys by a run of rounds: round r is the columns (rows of ``t``, ``x``)
        ``starts[r]:starts[r + 1]``, the i-th of them an event of key i (a round's keys are
        the first of the batch's: KeyGrid). st: the batch's state (``batch_state``), updated
        in place; starts [R + 1] int64; t [c] epoch seconds; x [V, c] values (NaN = missing);
        f [d, >= c] float32 features, C-contiguous (keys-last, as
        ``FeatureEngine.rounds(keys_last=True)`` gives a round), the run's c = starts[-1]
        columns first (a buffer the caller reuses: one array layout for the compiled loops).
        Returns (score [c], alert [c] bool, deviations [d, c] (each feature against the key's
        usual level, in its standard deviations; None without ``reasons``), evidence [c, S],
        learn_rows), NumPy, where learn_rows = (reservoir outputs before the event
        [c, n_out], targets u [c, d], valid [c], reservoir outputs after the event and u
        [c, n_out + d]) when ``learn``.

        Only the reservoir is a loop over the rounds (an event moves its key's reservoir,
        which the key's next event is predicted from). Everything else is per key and
        sequential only within a key — the standardisation and time bookkeeping before the
        loop, the tails and refractory count after it, compiled loops over the rounds — or
        one product over all the run's events: the motor readout's prediction error, the RBM's
        free energy, the label head."""
        s = self.settings
        res = self.reservoir()
        starts = np.asarray(starts, np.int64)
        d, c = self.d, int(starts[-1])
        # 1. standardisation (per-key running mean/variance: plain averages while young, then
        # exponential forgetting) and elapsed time in the key's typical intervals
        u, ts, n_before = np.empty((d, c), np.float32), np.empty(c, np.float32), np.empty(c)
        dev = np.empty((d, c) if reasons else (0, 0), np.float32)
        kernels("ember_models.pipeline.standardise_kernel").standardise_rounds(
            f, starts, np.asarray(t, np.float64), st["std_mean"], st["std_var"], st["n_seen"],
            st["last_t"], st["dt_mean"], self._a_std, s.clip, u, ts, n_before, dev)
        # 2. the reservoir, round by round (on the NumPy backend one compiled call for the
        # chunk: liquid/keys_last_kernel.py): its outputs before each event (what the motor
        # layer predicted the event from) and, for the label head, after it
        ub, tsb = ops.from_numpy(u), ops.from_numpy(ts.reshape(1, -1))
        after_needed = learn or self.label_w is not None
        outs = ops.zeros((self.n_out, c), ops.float32)
        after = ops.zeros((self.n_out, c), ops.float32) if after_needed else None
        res.run_rounds(st["liquid"], starts, ub, tsb, outs, after)
        # 3. the learnt raw scores, each one product over the run: the motor layer's
        # prediction error (mean e² over the features), the RBM's free energy of u, the label
        # head on the reservoir after the event and its u
        err = ub - res.motor(outs)
        pred_raw = ops.dot(self._mean_w, err * err)
        fe = self.rbm.free_energy_columns(ub)
        if after_needed:
            after = ops.concatenate([after, ub], axis=0)
        # the raw scores as one float64 NumPy array (the tails are NumPy bookkeeping), columns
        # [values, -values, prediction error, free energy, label head]
        v = self.n_values
        raw = np.empty((c, 2 * v + len(MODEL_STREAMS)))
        # (x [V, c] as the rounds hold it: negated into the transposed view of raw's
        # columns, NumPy's loop runs along c, ~3x faster)
        raw[:, :v] = x.T
        np.negative(x, out=raw[:, v:2 * v].T)
        raw[:, 2 * v] = ops.to_numpy(pred_raw)
        raw[:, 2 * v + 1] = ops.to_numpy(fe)
        raw[:, 2 * v + 2] = (ops.to_numpy(ops.dot(self.label_w[:-1], after) + self.label_w[-1])
                             if self.label_w is not None else np.nan)
        # no model scores for a key's first two events (the first has no prediction; the
        # second is standardised against one value, variance 0: its u is clipped noise)
        raw[n_before < 1.5, 2 * v:] = np.nan
        # 4. tail evidence → score in [0, 1); alerts
        evidence, best = self.tail.step(st, raw, self.weights if self._weighted else None,
                                        starts)
        score = best / (best + s.half_evidence)
        score[n_before < s.warmup_events] = 0.0
        if s.refractory_events:
            alert = np.empty(c, bool)
            kernels("ember_models.pipeline.alert_kernel").refractory_alerts(
                score, starts, st["quiet"], s.alert_threshold, float(s.refractory_events), alert)
        else:                                     # no refractory period: quiet stays 0
            alert = score >= s.alert_threshold
        rows = None
        if learn:
            rows = (ops.to_numpy(ops.transpose(outs)), u.T, n_before > 0.5,
                    ops.to_numpy(ops.transpose(after)))
        return score, alert, (dev if reasons else None), evidence, rows

    def get_config(self) -> dict:
        return {"features": self.engine.names, "streams": self.stream_names,
                "liquid": self.liquid.get_config(), "rbm": self.rbm.get_config()}


def build_reservoir(d: int, s: PipelineSettings) -> MultiStrideLiquid:
    """Branches of random, fixed CfC weights (NCP-wired or fully connected), one per stride;
    their motor layer is the readout the pipeline fits."""
    cells = []
    for i, _ in enumerate(s.strides):
        seed = s.seed + 1000 * i
        if s.wiring == "autoncp":
            motor = min(s.motor_neurons, s.units - 3)
            cells.append(WiredCfCCell(d, AutoNCP(s.units, motor, seed=seed + 7), seed=seed))
        else:
            cells.append(CfCCell(d, s.units, backbone_layers=0, seed=seed))
    net = MultiStrideLiquid(cells, [int(x) for x in s.strides], stride_unit="steps",
                            motor_size=d, seed=s.seed)
    # untrained motor layer predicts "as usual" (u = 0) until the readout is fitted
    net.motor_w = ops.zeros(ops.shape(net.motor_w))
    net.motor_b = ops.zeros(ops.shape(net.motor_b))
    return net
