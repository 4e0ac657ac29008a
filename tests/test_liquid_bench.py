"""The liquid benchmark runs end to end (tiny shapes, one round) and reports sane numbers,
so benchmarks/model_core.py cannot rot unnoticed."""
from __future__ import annotations

from benchmarks import bench_liquid


def test_benchmark_runs_and_reports(monkeypatch):
    monkeypatch.setitem(bench_liquid.SHAPE, "batch", 8)
    monkeypatch.setitem(bench_liquid.SHAPE, "steps", 4)
    results = bench_liquid.run_all(repeats=1, step_seconds=0.02)
    for key in ("cfc_step", "cfc_batched", "ltc_batched"):
        assert results[key]["ratio"] > 0
    text = bench_liquid.report(results)
    assert "CfC step, batch 1" in text and "LTC batch 8 x 4" in text
