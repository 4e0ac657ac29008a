"""What the pipeline learns globally (shared by all keys) and how: the motor readout of the
reservoir (ridge, incremental), the RBM (contrastive divergence), and, when labels are given,
a label head on the reservoir (ridge on 0/1 targets). Training lives here, apart from the
model definitions (liquid/, rbm.py) and the scoring loop (core.py).
"""
from __future__ import annotations

import numpy as np

from .. import ops
from .readout import RidgeStats

RBM_MAX_ROWS = 200_000      # fit() trains the RBM on at most this many rows (evenly spaced)


class Learner:
    def __init__(self, core, settings):
        self.core, self.settings = core, settings
        self.motor = RidgeStats(core.n_out, core.d, settings.ridge, settings.readout_halflife)
        self.labels = RidgeStats(core.n_out + core.d, 1, settings.ridge,
                                 settings.readout_halflife)
        self.has_labels = False

    @staticmethod
    def collect(collected, n_rows: int) -> dict:
        """The rows one ``_run`` produced for learning, back in input row order: readout input
        (reservoir outputs before the event), target (the event's standardised features),
        whether the key had seen an event before (the first event has no prediction), and the
        reservoir outputs after the event with the event's u (what the label head reads)."""
        if not collected:
            return {"x": np.zeros((0, 0), np.float32), "u": np.zeros((0, 0), np.float32),
                    "valid": np.zeros(0, bool), "rows": np.zeros(0, np.int64),
                    "x_after": np.zeros((0, 0), np.float32)}
        rows = np.concatenate([idx for idx, _ in collected])
        x = np.concatenate([ops.to_numpy(l[0]) for _, l in collected])
        u = np.concatenate([ops.to_numpy(l[1]) for _, l in collected])
        valid = np.concatenate([ops.to_numpy(l[2]) for _, l in collected]).astype(bool)
        after = np.concatenate([ops.to_numpy(l[3]) for _, l in collected])
        order = np.argsort(rows, kind="stable")
        return {"x": x[order], "u": u[order], "valid": valid[order], "rows": rows[order],
                "x_after": after[order]}

    # ---- fitting ----------------------------------------------------------------------------
    def fit(self, learned: dict, labels, epochs: int) -> None:
        self._readout(learned, labels)
        u = learned["u"]
        if len(u):
            step = max(1, len(u) // RBM_MAX_ROWS)
            self.core.rbm.fit(ops.from_numpy(np.ascontiguousarray(u[::step])), epochs=epochs)

    def partial_fit(self, learned: dict, labels) -> None:
        self._readout(learned, labels)
        u = learned["u"]
        bs = self.core.rbm.batch_size
        for start in range(0, len(u), bs):
            self.core.rbm.partial_fit(ops.from_numpy(np.ascontiguousarray(u[start:start + bs])))

    def _readout(self, learned: dict, labels) -> None:
        ok = learned["valid"]
        if not ok.any():
            return
        x = ops.from_numpy(learned["x"][ok])
        self.motor.add(x, ops.from_numpy(learned["u"][ok]))
        w, b = self.motor.solve()
        self.core.liquid.motor_w = ops.astype(w, "float32")
        self.core.liquid.motor_b = ops.astype(b, "float32")
        if labels is not None:
            y = np.asarray(labels, np.float64)[learned["rows"]][ok]
            finite = np.isfinite(y)
            self.labels.add(ops.from_numpy(learned["x_after"][ok][finite]),
                            ops.from_numpy(y[finite].reshape(-1, 1)))
            lw, lb = self.labels.solve()
            self.core.label_w = ops.astype(ops.concatenate([lw[:, 0], lb], axis=0), "float32")
            self.has_labels = True

    # ---- saving -----------------------------------------------------------------------------
    def arrays(self) -> dict[str, np.ndarray]:
        out = {}
        for name, arr in self.core.liquid.state_dict().items():
            if arr is not None:
                out[f"liquid.{name}"] = np.asarray(ops.to_numpy(arr))
        for name, arr in self.core.rbm.state_dict().items():
            if arr is not None:
                out[f"rbm.{name}"] = np.asarray(ops.to_numpy(arr))
        for prefix, stats in (("motor_fit", self.motor), ("label_fit", self.labels)):
            for name, arr in stats.arrays().items():
                out[f"{prefix}.{name}"] = np.asarray(ops.to_numpy(arr))
        if self.core.label_w is not None:
            out["label_head"] = np.asarray(ops.to_numpy(self.core.label_w))
        engine = self.core.engine
        if engine.center is not None:
            out["features.center"], out["features.scale"] = engine.center, engine.scale_
        return out

    def load(self, arrays: dict[str, np.ndarray]) -> None:
        def part(prefix):
            return {k[len(prefix) + 1:]: v for k, v in arrays.items()
                    if k.startswith(prefix + ".")}
        self.core.liquid.load_state_dict(part("liquid"), strict=False)
        self.core.rbm.load_state_dict(part("rbm"), strict=False)
        self.motor.load(part("motor_fit"))
        self.labels.load(part("label_fit"))
        if "label_head" in arrays:
            self.core.label_w = ops.from_numpy(arrays["label_head"])
            self.has_labels = True
        if "features.center" in arrays:
            self.core.engine.center = arrays["features.center"]
            self.core.engine.scale_ = arrays["features.scale"]
