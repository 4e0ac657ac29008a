"""The examples in docs/features.md run as written: the Python example, and the TOML example is
a valid configuration."""
from __future__ import annotations

import re
from pathlib import Path

from ember_models.config import parse_config
from ember_models.features import FeatureEngine

DOC = Path(__file__).resolve().parents[1] / "docs" / "features.md"


def blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.S)


def test_python_example_runs(capsys):
    runnable = [b for b in blocks("python") if "import" in b and "engine = FeatureEngine.from_config(cfg)" in b]
    assert len(runnable) == 1
    exec(compile(runnable[0], "<python example in docs/features.md>", "exec"), {})
    assert "cpu.ewma_mean_h60s" in capsys.readouterr().out


def test_toml_example_is_a_valid_config():
    (toml,) = blocks("toml")
    cfg = parse_config(toml, source=str(DOC))
    engine = FeatureEngine.from_config(cfg)
    assert [s.id for s in cfg.features][:3] == ["count", "time_since_last", "cyclical_time"]
    assert "cpu.ewma_slow_mean_h86400s" in engine.names
    assert "latency_ms.ewma_mean_h60s" not in engine.names        # ewma limited to fields=["cpu"]


def test_default_set_has_65_outputs_for_two_values_and_a_category():
    cfg = parse_config({"data": {"key_field": "k", "time_field": "t", "value_fields": ["a", "b"],
                                 "categorical_fields": ["c"]}})
    engine = FeatureEngine.from_config(cfg)
    assert engine.n_features == 65
    assert [s.kind for s in engine.specs] == [
        "count", "time_since_last", "event_rate", "cyclical_time", "impute", "delta", "rate",
        "welford", "zscore", "ewma", "rolling_count", "rolling_time", "hashed_categorical"]
