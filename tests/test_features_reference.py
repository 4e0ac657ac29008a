"""Each feature against a direct, loop-per-event reference implementation of its definition
(one key, random irregular timestamps with repeats and gaps, missing values)."""
from __future__ import annotations

import math
import os
import subprocess
import sys
from datetime import datetime, timezone

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings

from ember_models.config import parse_config
from ember_models.features import FeatureEngine, stable_hash
from features_strategies import DATA, event_tables

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def run(spec: dict, table: pa.Table) -> dict[str, np.ndarray]:
    engine = FeatureEngine.from_config(parse_config({"data": DATA.model_dump(), "features": [spec]}))
    frame = engine.transform(table)
    return {name: frame.values[:, j].astype(np.float64) for j, name in enumerate(frame.names)}


def one_key(table: pa.Table):
    """The rows of key k0, as (times, {field: values}, categories)."""
    keep = pa.compute.equal(table.column("key"), "k0")
    t = table.filter(keep)
    vals = {f: t.column(f).to_numpy(zero_copy_only=False).astype(np.float64) for f in ("x", "y")}
    return t, t.column("time").to_numpy(), vals, t.column("cat").to_pylist()


def close(actual, expected, scale=1.0, what=""):
    np.testing.assert_allclose(actual, expected, rtol=2e-6, atol=2e-6 * scale, err_msg=what)


def scale_of(vals) -> float:
    finite = [np.abs(v[np.isfinite(v)]).max(initial=0.0) for v in vals.values()]
    return 1.0 + max(finite)


tables = event_tables(max_keys=1, max_events=60)


@SETTINGS
@given(table=tables)
def test_count_time_since_last_and_event_rate(table):
    t_, t, _, _ = one_key(table)
    out = run({"kind": "count"}, t_) | run({"kind": "time_since_last"}, t_) \
        | run({"kind": "event_rate", "half_lives_s": [30.0, 3600.0]}, t_)
    n = np.arange(1, len(t) + 1)
    close(out["count_log1p"], np.log1p(n))
    close(out["time_since_last_log1p_s"], np.log1p(np.diff(t, prepend=t[0])))
    for h in (30.0, 3600.0):
        expected = [sum(2.0 ** (-(t[i] - t[j]) / h) for j in range(i + 1)) * math.log(2) / h
                    for i in range(len(t))]
        close(out[f"event_rate_h{h:g}s"], expected, what=f"h={h}")


@SETTINGS
@given(table=tables)
def test_welford_zscore_impute(table):
    t_, t, vals, _ = one_key(table)
    out = run({"kind": "welford"}, t_) | run({"kind": "zscore", "clip": 4.0}, t_) \
        | run({"kind": "impute", "name": "last"}, t_) \
        | run({"kind": "impute", "name": "mean", "strategy": "mean"}, t_)
    s = scale_of(vals)
    for f, x in vals.items():
        for i in range(len(x)):
            seen = x[: i + 1][np.isfinite(x[: i + 1])]
            before = x[:i][np.isfinite(x[:i])]
            mean = seen.mean() if seen.size else 0.0
            close(out[f"{f}.welford_mean"][i], mean, s, f"{f} mean row {i}")
            close(out[f"{f}.welford_std"][i] ** 2, seen.var() if seen.size else 0.0, s * s,
                  f"{f} var row {i}")
            z = 0.0
            if np.isfinite(x[i]) and before.size >= 2:
                m = before.mean()
                z = float(np.clip((x[i] - m) / max(before.std(), 1e-9 * (1 + abs(m))), -4, 4))
            close(out[f"{f}.zscore"][i], z, 50.0, f"{f} z row {i}")
            missing = not np.isfinite(x[i])
            last = x[i] if not missing else (before[-1] if before.size else 0.0)
            close(out[f"{f}.last_value"][i], last, s, f"{f} last row {i}")
            close(out[f"{f}.mean_value"][i], x[i] if not missing else
                  (before.mean() if before.size else 0.0), s, f"{f} mean-impute row {i}")
            assert out[f"{f}.last_missing"][i] == float(missing)


@SETTINGS
@given(table=tables)
def test_delta_and_rate(table):
    t_, t, vals, _ = one_key(table)
    out = run({"kind": "delta"}, t_) | run({"kind": "rate"}, t_)
    s = scale_of(vals)
    for f, x in vals.items():
        last_x = last_t = None
        held = 0.0
        for i in range(len(x)):
            d = r = 0.0
            if np.isfinite(x[i]):
                if last_x is not None:
                    d = x[i] - last_x
                    if t[i] > last_t:
                        held = d / (t[i] - last_t)
                    r = held
                last_x, last_t = x[i], t[i]
            close(out[f"{f}.delta"][i], d, s, f"{f} delta row {i}")
            rate_scale = s / max(1e-3, min(np.diff(t)[np.diff(t) > 0], default=1.0))
            close(out[f"{f}.rate_per_s"][i], r, rate_scale, f"{f} rate row {i}")


@SETTINGS
@given(table=tables)
def test_ewma_is_the_time_decayed_weighted_mean_and_std(table):
    t_, t, vals, _ = one_key(table)
    hs = [5.0, 600.0]
    out = run({"kind": "ewma", "half_lives_s": hs}, t_)
    s = scale_of(vals)
    for f, x in vals.items():
        for i in range(len(x)):
            ok = np.isfinite(x[: i + 1])
            xs, ts = x[: i + 1][ok], t[: i + 1][ok]
            for h in hs:
                if xs.size == 0:
                    mean = var = 0.0
                else:
                    w = 2.0 ** (-(ts[-1] - ts) / h)
                    mean = float((w * xs).sum() / w.sum())
                    var = float((w * (xs - mean) ** 2).sum() / w.sum())
                close(out[f"{f}.ewma_mean_h{h:g}s"][i], mean, s, f"{f} h={h} mean row {i}")
                close(out[f"{f}.ewma_std_h{h:g}s"][i] ** 2, var, s * s, f"{f} h={h} var row {i}")


@SETTINGS
@given(table=tables)
def test_rolling_count_windows_are_the_last_n_observations(table):
    t_, t, vals, _ = one_key(table)
    sizes = [2, 3, 7]
    out = run({"kind": "rolling_count", "sizes": sizes}, t_)
    s = scale_of(vals)
    for f, x in vals.items():
        for i in range(len(x)):
            seen = x[: i + 1][np.isfinite(x[: i + 1])]
            for n in sizes:
                win = seen[-n:]
                mean, var = (win.mean(), win.var()) if win.size else (0.0, 0.0)
                close(out[f"{f}.rolling_count_mean_n{n}"][i], mean, s, f"{f} n={n} row {i}")
                close(out[f"{f}.rolling_count_std_n{n}"][i] ** 2, var, s * s, f"{f} n={n} row {i}")


@SETTINGS
@given(table=tables)
def test_rolling_time_windows_cover_the_last_buckets(table):
    t_, t, vals, _ = one_key(table)
    windows, b = [10.0, 900.0], 3
    out = run({"kind": "rolling_time", "windows_s": windows, "buckets": b}, t_)
    s = scale_of(vals)
    for f, x in vals.items():
        for w in windows:
            bucket = np.floor(t * (b / w))
            for i in range(len(x)):
                inside = (bucket[: i + 1] > bucket[i] - b) & np.isfinite(x[: i + 1])
                win = x[: i + 1][inside]
                mean, var = (win.mean(), win.var()) if win.size else (0.0, 0.0)
                close(out[f"{f}.rolling_time_count_log1p_w{w:g}s"][i], np.log1p(win.size))
                close(out[f"{f}.rolling_time_mean_w{w:g}s"][i], mean, s, f"{f} w={w} row {i}")
                close(out[f"{f}.rolling_time_std_w{w:g}s"][i] ** 2, var, s * s, f"{f} w={w} row {i}")


@SETTINGS
@given(table=tables)
def test_hashed_categorical_one_hot_and_novelty(table):
    t_, t, _, cats = one_key(table)
    out = run({"kind": "hashed_categorical", "buckets": 4}, t_)
    history: list[int] = []
    for i, c in enumerate(cats):
        onehot = np.array([out[f"cat.hashed_categorical_b{j}"][i] for j in range(4)])
        if c is None:
            assert not onehot.any() and out["cat.hashed_categorical_novelty"][i] == 0.0
            continue
        b = int(stable_hash([c])[0] % 4)
        assert onehot.tolist() == [float(j == b) for j in range(4)]
        share = history.count(b) / len(history) if history else 0.0
        close(out["cat.hashed_categorical_novelty"][i], 1.0 - share)
        history.append(b)


def test_cyclical_time_has_24_hour_and_7_day_periods():
    stamps = [datetime(2024, 3, 4, 0, 0, tzinfo=timezone.utc),      # a Monday, midnight
              datetime(2024, 3, 4, 6, 0, tzinfo=timezone.utc),
              datetime(2024, 3, 7, 12, 0, tzinfo=timezone.utc),     # Thursday noon
              datetime(2024, 3, 10, 23, 59, 59, tzinfo=timezone.utc),
              datetime(2024, 3, 11, 0, 0, tzinfo=timezone.utc)]     # next Monday
    t = np.array([s.timestamp() for s in stamps])
    table = pa.table({"key": ["a"] * len(t), "time": t, "x": np.zeros(len(t)), "y": np.zeros(len(t)),
                      "cat": pa.nulls(len(t), pa.string())})
    out = run({"kind": "cyclical_time"}, table)
    for i, s in enumerate(stamps):
        day = (s.hour * 3600 + s.minute * 60 + s.second) / 86400
        week = (s.weekday() + day) / 7
        for name, phase in (("day", day), ("week", week)):
            close(out[f"cyclical_time_{name}_sin"][i], math.sin(2 * math.pi * phase), 5.0)
            close(out[f"cyclical_time_{name}_cos"][i], math.cos(2 * math.pi * phase), 5.0)
    # Monday midnight: phase 0 of both cycles; a week later the same again.
    assert out["cyclical_time_week_cos"][0] == pytest.approx(1.0, abs=1e-6)
    assert out["cyclical_time_week_cos"][4] == pytest.approx(1.0, abs=1e-6)
    # Six hours is a quarter day: sin 1, not sin(2 pi 6/23).
    assert out["cyclical_time_day_sin"][1] == pytest.approx(1.0, abs=1e-6)
    shifted = run({"kind": "cyclical_time", "utc_offset_hours": 6.0}, table)
    assert shifted["cyclical_time_day_sin"][0] == pytest.approx(1.0, abs=1e-6)


def test_stable_hash_is_the_same_in_every_process():
    values = ["a", "host-17", "é", 42]
    here = stable_hash(values).tolist()
    code = ("from ember_models.features import stable_hash; "
            "print(stable_hash(['a', 'host-17', 'é', 42]).tolist())")
    for seed in ("1", "2"):
        env = dict(os.environ, PYTHONHASHSEED=seed)
        got = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                             check=True).stdout.strip()
        assert got == str(here)
    assert all(h >= 0 for h in here) and len(set(here)) == len(here)
