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
