"""Pipeline.warm_up: runs the compiled loops on made-up keys and changes nothing a caller sees."""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from ember_models.config import parse_config
from ember_models.kernels import kernels
from ember_models.pipeline import Pipeline


def _events(n_keys: int = 4, per_key: int = 30, unit: float = 1.0) -> pa.Table:
    g = np.random.default_rng(3)
    keys = [f"k{i}" for i in range(n_keys) for _ in range(per_key)]
    t = np.concatenate([1.7e9 + np.cumsum(g.exponential(60.0, per_key)) for _ in range(n_keys)])
    return pa.table({"host": keys, "ts": t * unit, "cpu": g.normal(50, 5, len(keys)),
                     "region": ["eu", "us"] * (len(keys) // 2)})


@pytest.mark.parametrize("time_unit,unit", [("s", 1.0), ("ms", 1e3)])
def test_warm_up_changes_no_scores_or_version(time_unit, unit):
    cfg = {"data": {"key_field": "host", "time_field": "ts", "value_fields": ["cpu"],
                    "categorical_fields": ["region"], "time_unit": time_unit}}
    cold, warm = Pipeline(parse_config(cfg)), Pipeline(parse_config(cfg))
    version = warm.model_version
    warm.warm_up()
    assert warm.model_version == version
    events = _events(unit=unit)
    a, b = cold.step(events, {}), warm.step(events, {})
    np.testing.assert_array_equal(a.scores.column("score").to_numpy(),
                                  b.scores.column("score").to_numpy())
    assert a.states == b.states
    # the unaligned round loop (keys at different counts, prefix views) was loaded by it
    assert len(kernels("ember_models.features.rolling_count_kernel").rolling_count_any.signatures) >= 1


def test_detector_loops_compile_once_for_every_batch_shape(monkeypatch):
    """The detector's compiled loops see one array layout whatever the batch (a chunk of
    rounds is always a strided view of the features): numba compiles each loop once, at warm-up,
    not again inside a later batch, one that runs in several chunks included."""
    from ember_models.pipeline import pipeline as pipeline_module
    monkeypatch.setattr(pipeline_module, "CHUNK_ROWS", 16)
    cfg = {"data": {"key_field": "host", "time_field": "ts", "value_fields": ["cpu"],
                    "categorical_fields": ["region"]},
           "model": {"refractory_events": 5}}
    pipe = Pipeline(parse_config(cfg))
    pipe.warm_up()
    first = pipe.step(_events(n_keys=3, per_key=8), {})
    pipe.step(_events(n_keys=5, per_key=40), first.states, learn=True)
    pipe.score(_events(n_keys=1, per_key=4))
    for module, name in [("pipeline.standardise_kernel", "standardise_rounds"),
                         ("pipeline.tail_kernel", "tail_rounds"),
                         ("pipeline.alert_kernel", "refractory_alerts"),
                         ("liquid.keys_last_kernel", "reservoir_rounds")]:
        loop = getattr(kernels(f"ember_models.{module}"), name)
        assert len(loop.signatures) == 1, (name, loop.signatures)
