"""The detector core: one event for each of n keys → calibrated score, alert, reasons.

Per event of a key (all arrays have a leading key axis; ``step`` advances the first n keys):

1. its feature vector f (FeatureEngine, computed beforehand for the whole batch) is
   standardised with the key's running mean/variance → u (scale-free, clipped);
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

Streaming (``Pipeline.step``) and backfill (``Pipeline.score``) run this same loop.
"""
from __future__ import annotations

import numpy as np

from .. import ops
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
    # Per step every array op is over all keys x all features or units. The features, the CfC
    # and the motor readout all compute keys-last (rows = features or units, columns = keys:
    # the CfC's gate blocks are then contiguous rows), so the batch holds its per-key arrays
    # that way: the standardisation's mean/variance [d, n], the reservoir's working array
    # (liquid/keys_last.py) — no transposes between the parts per step. The per-key scalars
    # are vectors [n]; the tails stay NumPy rows [n, ...] (tail.py's bookkeeping).
    def reservoir(self) -> KeysLastReservoir:
        return KeysLastReservoir.for_network(self.liquid)

    def batch_state(self, rows) -> dict:
        """Stored detector rows [n, width] (float64 NumPy) → the batch's state: name → array
        (backend, keys-last as above; the ``FLOAT32_STATE`` ones in float32, which the float64
        rows hold exactly, so a state saved between two micro-batches resumes bit for bit)."""
        st = {}
        for k, v in self.layout.split(rows).items():
            if k in TailEvidence.NAMES:
                st[k] = v
            elif k in FLOAT32_STATE:
                v32 = ops.astype(ops.from_numpy(v), ops.float32)
                st[k] = self.reservoir().load(v32) if k == "liquid" else _keys_last(v32)
            else:
                st[k] = ops.from_numpy(v)
        return st

    def batch_rows(self, st: dict):
        """The batch's state → detector rows [n, width] (float64 NumPy)."""
        out = {}
        for k, v in st.items():
            if k == "liquid":
                v = self.reservoir().store(v)
            elif k in FLOAT32_STATE:
                v = ops.transpose(v)
            out[k] = np.asarray(ops.to_numpy(v), np.float64)
        return self.layout.join(out)

    @staticmethod
    def prefix(st: dict, m: int) -> dict:
        """The state of the batch's first m keys (views where the backend has them)."""
        return {k: (v[:m] if k in TailEvidence.NAMES or k not in FLOAT32_STATE else v[:, :m])
                for k, v in st.items()}

    @staticmethod
    def put_prefix(st: dict, view: dict, m: int) -> None:
        """Write a prefix's new state back (``step`` replaces arrays; the tails are updated
        in place already)."""
        for k, v in view.items():
            if k in FLOAT32_STATE:
                st[k][:, :m] = v
            elif k not in TailEvidence.NAMES:
                st[k][:m] = v

    # ---- one event for each of n keys ------------------------------------------------------
    def step(self, st: dict, t, x, f, learn: bool = False, reasons: bool = True):
        """st: the n keys' state (``batch_state``: name → backend array, replaced in the dict
        or, the reservoir's, updated in place); t [n] epoch seconds; x [n, V] values (NaN =
        missing); f [d, n] features (float32, keys-last as the engine computes them:
        ``FeatureEngine.rounds(keys_last=True)``).
        Returns (score [n], alert [n], deviations [n, d] (each feature against the key's usual
        level, in its standard deviations; None when no key alerts or ``reasons`` is False),
        evidence [n, S],
        learn_rows) where
        learn_rows = (reservoir outputs before the event [n, n_out], targets u [n, d],
        valid [n], reservoir outputs after the event and u [n, n_out + d]) when ``learn``."""
        s = self.settings
        res = self.reservoir()
        n_seen = st["n_seen"]
        # every key of the batch past its first two events (the usual case once a backfill or
        # a stream is under way): the selects for new keys below would pick one side everywhere
        n_min = ops.item(ops.min(n_seen)) if ops.shape(n_seen)[0] else float("inf")
        settled = n_min > 1.5
        # keys past their first event: every key once settled (needed then for learn rows only)
        seen_any = n_seen > 0.5 if (learn or not settled) else None
        # while some key is young (per-key rates below), whether every key has seen as many
        # events: a backfill's keys do (round r is every key's r-th event), and then each
        # per-key rate is one number (the same values: scalars instead of rows)
        aligned = False
        if (n_min < 100.0 or n_min < s.warmup_events
                or 1.0 / (n_min + 1.0) > self._a_std) and ops.shape(n_seen)[0]:
            aligned = ops.item(ops.max(n_seen)) == n_min
        # 1. per-key standardisation (plain averages while young, then exponential forgetting),
        # in float32 like the features, keys-last: [d, n]
        f = ops.astype(f, ops.float32)
        mean, var = st["std_mean"], st["std_var"]
        if not settled:
            mean = ops.where(ops.reshape(seen_any, (1, -1)), mean, f)
        # (temporaries of this step updated in place where they are not read again: a
        # quarter of a MB each at ~1,000 keys, so fewer of them stay in cache; the same
        # operations on the same operands, so the same numbers)
        dlt = f - mean
        abs_mean = ops.abs(mean)
        sd = 1e-6 * abs_mean                # sd = sqrt(var) + (1e-6 + 1e-6·|mean|)
        sd += 1e-6
        sd += ops.sqrt(var)
        u = ops.clip(dlt / sd, -s.clip, s.clip)
        if 1.0 / (n_min + 1.0) <= self._a_std:    # every key past the plain-average phase
            a = self._a_std
            keep = 1.0 - a
        elif aligned:
            # the row's float32 value and 1 - a as the row's float32 arithmetic gives it (a
            # scalar operand is ~2x cheaper than a broadcast row for NumPy)
            a32 = np.float32(max(1.0 / (n_min + 1.0), self._a_std))
            a, keep = float(a32), float(np.float32(1.0) - a32)
        else:
            # (a row by reshape: expand_dims costs ~15x more in NumPy)
            a = ops.astype(ops.reshape(ops.maximum(1.0 / (n_seen + 1.0), self._a_std), (1, -1)),
                           ops.float32)
            keep = 1.0 - a
        adlt = a * dlt
        st["std_mean"] = mean + adlt
        adlt *= dlt                         # var' = (1 - a)·(var + a·dlt·dlt)
        adlt += var
        adlt *= keep
        st["std_var"] = adlt
        # 2. prediction error of the motor layer (it predicted u from the state before)
        X = st["liquid"]
        outs = res.outputs(X)
        if learn:       # (a view of X when the outputs' rows are adjacent: X moves on below)
            outs = ops.copy(outs)
        err = u - res.motor(outs)
        pred_raw = ops.dot(self._mean_w, err * err)
        # 3. the reservoir moves on, driven by elapsed time in the key's typical intervals
        dt = ops.maximum(t - st["last_t"], 0.0)
        dt_mean = st["dt_mean"]
        if n_min >= 100.0:          # 1 / n_seen <= 0.01 for every key: the floor everywhere
            a_dt = 0.01
        elif settled:               # n_seen >= 2 everywhere
            a_dt = max(1.0 / n_min, 0.01) if aligned else ops.maximum(1.0 / n_seen, 0.01)
        else:
            a_dt = ops.maximum(1.0 / ops.maximum(n_seen, 1.0), 0.01)
        if settled:
            dt_mean = dt_mean + a_dt * (dt - dt_mean)
        else:
            dt = ops.where(seen_any, dt, ops.zeros_like(t))
            dt_mean = ops.where(n_seen > 1.5, dt_mean + a_dt * (dt - dt_mean),
                                ops.where(seen_any, dt, dt_mean))
        if ops.shape(dt_mean)[0] and ops.item(ops.min(dt_mean)) >= 1e-12:
            ts = dt / dt_mean           # every key has a typical interval: the select below
        else:                           # would take this everywhere
            ts = ops.where(dt_mean > 0, dt / ops.maximum(dt_mean, 1e-12), ops.ones_like(dt))
        ts = ops.minimum(ts, 100.0)     # >= 0 already (dt >= 0, dt_mean >= 0); clip costs 3x
        res.step(X, u, ops.astype(ops.reshape(ts, (1, -1)), ops.float32))     # in place
        st["dt_mean"], st["last_t"] = dt_mean, t
        # 4. RBM free energy, label head; the values, both directions: the raw scores are
        # written straight into one float64 NumPy array (the tail evidence is NumPy
        # bookkeeping), columns [values, -values, prediction error, free energy, label head]
        fe = self.rbm.free_energy_columns(u)
        # the label head judges the event itself: the reservoir after it, and its features
        after = (ops.concatenate([res.outputs(X), u], axis=0)
                 if (learn or self.label_w is not None) else None)
        v = self.n_values
        raw = np.empty((ops.shape(fe)[0], 2 * v + len(MODEL_STREAMS)))
        x_np = ops.to_numpy(x)
        raw[:, :v] = x_np
        # (x is the transposed view of the round's (V, n) values: negated as (V, n) into the
        # transposed view of raw's columns, NumPy's loop runs along n, ~3x faster)
        np.negative(x_np.T, out=raw[:, v:2 * v].T)
        raw[:, 2 * v] = ops.to_numpy(pred_raw)
        raw[:, 2 * v + 1] = ops.to_numpy(fe)
        raw[:, 2 * v + 2] = (ops.to_numpy(ops.dot(self.label_w[:-1], after) + self.label_w[-1])
                             if self.label_w is not None else np.nan)
        if not settled:     # a key's first event has no prediction: no model scores
            raw[ops.to_numpy(n_seen) < 1.5, 2 * v:] = np.nan
        # 5. tail evidence (NumPy bookkeeping, in place on the tail_* rows) → score
        evidence, best = self.tail.step(st, raw, self.weights if self._weighted else None)
        best = ops.from_numpy(best)
        score = best / (best + s.half_evidence)
        if n_min < s.warmup_events:
            score = (ops.zeros_like(score) if aligned
                     else ops.where(n_seen >= s.warmup_events, score, ops.zeros_like(score)))
        if s.refractory_events:
            alert = (score >= s.alert_threshold) & (st["quiet"] < 0.5)
        else:                                     # no refractory period: quiet stays 0
            alert = score >= s.alert_threshold
        any_alert = bool(ops.item(ops.max(alert)))
        if s.refractory_events:
            quiet = ops.maximum(st["quiet"] - 1.0, 0.0)
            st["quiet"] = (ops.where(alert, ops.full(ops.shape(score),
                                                     float(s.refractory_events), ops.float64),
                                     quiet) if any_alert else quiet)
        # for alert reasons (alerting events only): unclipped, and a change of 10 % of the
        # usual level counts as 1
        dev = (ops.transpose(dlt / ops.maximum(sd, 0.1 * abs_mean))
               if reasons and any_alert else None)
        st["n_seen"] = n_seen + 1.0
        rows = ((ops.transpose(outs), ops.transpose(u), seen_any, ops.transpose(after))
                if learn else None)
        return score, alert, dev, evidence, rows

    def get_config(self) -> dict:
        return {"features": self.engine.names, "streams": self.stream_names,
                "liquid": self.liquid.get_config(), "rbm": self.rbm.get_config()}


def _keys_last(rows):
    """[n, c] → a [c, n] array laid out keys-last (a copy of the transposed view would keep
    the rows' memory order, and every op of a step over it would read across)."""
    n, c = ops.shape(rows)
    out = ops.zeros((c, n), ops.float32)
    out[:] = ops.transpose(rows)
    return out


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
