"""A tiny deterministic pipeline that honours the Pipeline contract (docs/contracts.md).

Only for driving the streaming driver in tests while no trained model is needed: a per-key EWMA
z-score over the value fields. State is bytes (count, means, variances). Loaded from a model dir
whose ``manifest.json`` holds ``{"version": ...}`` (to exercise hot reload) and optionally
``{"threshold": ...}``.
"""

from __future__ import annotations

import json
import math
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import pyarrow as pa

ALPHA = 0.05
WARMUP = 20


@dataclass(frozen=True)
class FakeConfig:
    key_field: str = "service"
    time_field: str = "time"
    value_fields: tuple[str, ...] = ("requests", "latency_ms")
    categorical_fields: tuple[str, ...] = ("status",)


@dataclass
class StepResult:
    scores: pa.Table
    alerts: list[dict]
    states: dict[str, bytes]


class FakePipeline:
    def __init__(self, model_version: str = "fake-1", threshold: float = 0.75, config: FakeConfig | None = None):
        self.config = config or FakeConfig()
        self.model_version = model_version
        self.threshold = threshold
        self._fmt = struct.Struct(f"<q{2 * len(self.config.value_fields)}d")

    def __getstate__(self) -> dict:  # picklable (the worker's compute process): no Struct
        return {k: v for k, v in self.__dict__.items() if k != "_fmt"}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._fmt = struct.Struct(f"<q{2 * len(self.config.value_fields)}d")

    def save(self, model_dir: str | Path) -> None:
        d = Path(model_dir)
        d.mkdir(parents=True, exist_ok=True)
        tmp = d / ".manifest.json.tmp"
        tmp.write_text(json.dumps({"version": self.model_version, "threshold": self.threshold}))
        tmp.replace(d / "manifest.json")

    def _unpack(self, blob: bytes | None) -> tuple[int, list[float], list[float]]:
        f = len(self.config.value_fields)
        if blob is None:
            return 0, [0.0] * f, [0.0] * f
        vals = self._fmt.unpack(blob)
        return vals[0], list(vals[1:1 + f]), list(vals[1 + f:])

    def step(self, events: pa.Table, states: Mapping[str, bytes | None]) -> StepResult:
        cfg = self.config
        keys = events.column(cfg.key_field).to_pylist()
        times = events.column(cfg.time_field).to_pylist()
        cols = [events.column(n).to_pylist() for n in cfg.value_fields]
        live: dict[str, tuple[int, list[float], list[float]]] = {}
        out_scores, alerts = [], []
        for i, key in enumerate(keys):
            if key not in live:
                live[key] = self._unpack(states.get(key))
            n, mean, var = live[key]
            z = []
            for j, col in enumerate(cols):
                x = col[i]
                sd = math.sqrt(var[j]) if var[j] > 0 else 0.0
                z.append(abs(x - mean[j]) / (sd + 1e-9 + 0.01 * abs(mean[j])) if n else 0.0)
                d = x - mean[j]
                if n == 0:
                    mean[j] = x
                else:
                    mean[j] += ALPHA * d
                    var[j] = (1 - ALPHA) * (var[j] + ALPHA * d * d)
            zmax = max(z)
            score = zmax / (zmax + 3.0) if n >= WARMUP else 0.0
            alert = score > self.threshold
            live[key] = (n + 1, mean, var)
            out_scores.append((key, times[i], score, alert))
            if alert:
                j = max(range(len(z)), key=z.__getitem__)
                alerts.append({
                    "key": key, "time": times[i], "score": score, "threshold": self.threshold,
                    "top_features": [{"name": f"{cfg.value_fields[j]}.ewma_z", "value": z[j]}],
                    "model_version": self.model_version,
                })
        scores = pa.table({
            "key": pa.array([s[0] for s in out_scores], pa.string()),
            "time": pa.array([s[1] for s in out_scores], pa.float64()),
            "score": pa.array([s[2] for s in out_scores], pa.float64()),
            "threshold": pa.array([self.threshold] * len(out_scores), pa.float64()),
            "alert": pa.array([s[3] for s in out_scores], pa.bool_()),
        })
        new_states = {k: self._fmt.pack(n, *mean, *var) for k, (n, mean, var) in live.items()}
        return StepResult(scores, alerts, new_states)


def load(model_dir: str | Path) -> FakePipeline:
    manifest = json.loads((Path(model_dir) / "manifest.json").read_text())
    return FakePipeline(manifest["version"], float(manifest.get("threshold", 0.75)))
