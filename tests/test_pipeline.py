"""Pipeline contract (docs/contracts.md): step/score parity, per-key state, alerts, files."""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from ember_models.config import parse_config
from ember_models.pipeline import KeyStateError, Pipeline, PipelineSettings
from ember_models.pipeline.events import EventTableError

CFG = {"data": {"key_field": "host", "time_field": "ts", "value_fields": ["cpu", "lat"]}}


def make_events(n=1500, keys=("a", "b", "c", "d"), seed=0, spike_at=None):
    rng = np.random.default_rng(seed)
    key = rng.choice(list(keys), n)
    ts = np.cumsum(rng.exponential(30.0, n))           # irregular, increasing for every key
    cpu = 50 + 5 * np.sin(ts / 3600.0) + rng.normal(0, 1, n)
    lat = rng.gamma(2.0, 10.0, n)
    lat[rng.random(n) < 0.02] = np.nan                 # missing values
    if spike_at is not None:
        cpu[spike_at] += 40.0
    return pa.table({"host": key, "ts": ts, "cpu": cpu, "lat": lat})


@pytest.fixture(scope="module")
def pipe():
    return Pipeline(parse_config(CFG), PipelineSettings(warmup_events=50)).fit(make_events(seed=9))


def test_score_equals_step_event_by_event_and_micro_batches(pipe):
    tab = make_events()
    batch = pipe.score(tab)["score"].to_numpy()
    assert batch.shape == (tab.num_rows,)
    assert np.all((batch >= 0) & (batch < 1)) and batch.max() > 0

    states: dict = {}
    one = []
    for i in range(tab.num_rows):
        ev = tab.slice(i, 1)
        key = ev["host"][0].as_py()
        res = pipe.step(ev, {key: states.get(key)})
        states.update(res.states)
        one.append(res.scores["score"][0].as_py())
    np.testing.assert_allclose(one, batch, rtol=0, atol=1e-6)

    rng = np.random.default_rng(1)
    cuts = np.sort(rng.choice(np.arange(1, tab.num_rows), 40, replace=False))
    states, micro = {}, []
    for lo, hi in zip(np.r_[0, cuts], np.r_[cuts, tab.num_rows]):
        ev = tab.slice(lo, hi - lo)
        res = pipe.step(ev, {k: states.get(k) for k in set(ev["host"].to_pylist())})
        assert set(res.states) == set(ev["host"].to_pylist())
        states.update(res.states)
        micro.append(res.scores["score"].to_numpy())
    np.testing.assert_allclose(np.concatenate(micro), batch, rtol=0, atol=1e-6)


def test_scores_table_is_in_input_order_with_contract_columns(pipe):
    tab = make_events(200)
    res = pipe.step(tab, {})
    assert res.scores.column_names == ["key", "time", "score", "threshold", "alert"]
    assert res.scores["key"].to_pylist() == tab["host"].to_pylist()
    assert res.scores["time"].to_pylist() == tab["ts"].to_pylist()


def test_arrow_timestamp_time_column_scores_like_epoch_seconds(pipe):
    tab = make_events(300)
    stamps = pa.array((tab["ts"].to_numpy() * 1e6).astype("int64"), pa.timestamp("us", "UTC"))
    tab2 = tab.set_column(1, "ts", stamps)
    np.testing.assert_allclose(pipe.score(tab2)["score"].to_numpy(),
                               pipe.score(tab)["score"].to_numpy(), rtol=0, atol=1e-6)


def test_spike_raises_an_alert_naming_the_spiked_field(pipe):
    tab = make_events(1500, keys=("a",), spike_at=1200)
    res = pipe.step(tab, {})
    hits = [a for a in res.alerts if a["time"] == tab["ts"][1200].as_py()]
    assert hits, "no alert at the injected spike"
    alert = hits[0]
    assert alert["key"] == "a" and alert["score"] >= alert["threshold"]
    assert alert["model_version"] == pipe.model_version
    assert alert["top_features"][0]["name"].startswith("cpu")
    assert alert["top_features"][0]["deviation"] > 5
    # quiet stream, same length: far fewer alerts
    calm = pipe.step(make_events(1500, keys=("a",)), {})
    assert len(calm.alerts) < len(res.alerts) + 1


def test_refractory_period_holds_across_micro_batches():
    # a burst of spikes: with refractory_events=5 a key alerts at most once per 6 events, and
    # micro-batches carry the quiet count in the state (same alerts as one score call)
    settings = PipelineSettings(warmup_events=50, refractory_events=5, alert_threshold=0.3)
    pipe = Pipeline(parse_config(CFG), settings).fit(make_events(seed=9))
    tab = make_events(800, keys=("a", "b"), seed=3)
    cpu = tab["cpu"].to_numpy().copy()
    cpu[600:640] += 60.0 * (np.arange(40) % 2)
    tab = tab.set_column(2, "cpu", pa.array(cpu))
    whole = pipe.score(tab)["alert"].to_numpy()
    states, parts = {}, []
    for lo in range(0, tab.num_rows, 37):
        ev = tab.slice(lo, 37)
        res = pipe.step(ev, {k: states.get(k) for k in set(ev["host"].to_pylist())})
        states.update(res.states)
        parts.append(res.scores["alert"].to_numpy())
    np.testing.assert_array_equal(np.concatenate(parts), whole)
    keys = tab["host"].to_numpy(zero_copy_only=False)
    assert whole.sum() >= 2
    for key in ("a", "b"):
        at = np.flatnonzero(whole[keys == key])       # positions among the key's own events
        assert np.all(np.diff(at) > 5), (key, at)


def test_infinite_values_are_missing_not_nan_scores(pipe):
    tab = make_events(400, keys=("a",), seed=4)
    lat = tab["lat"].to_numpy(zero_copy_only=False).copy()
    lat[[200, 250]] = [np.inf, -np.inf]
    scores = pipe.score(tab.set_column(3, "lat", pa.array(lat)))["score"].to_numpy()
    assert np.all(np.isfinite(scores)) and np.all((scores >= 0) & (scores < 1))


def test_state_from_another_architecture_restarts_the_key(pipe):
    tab = make_events(100)
    res = pipe.step(tab, {})
    other = Pipeline(parse_config(CFG), PipelineSettings(tail_size=16))
    again = other.step(tab, res.states)
    assert sorted(again.restarted) == sorted(res.states)
    np.testing.assert_allclose(again.scores["score"].to_numpy(),
                               other.score(tab)["score"].to_numpy())


def test_garbage_state_is_a_clear_error(pipe):
    tab = make_events(10, keys=("a",))
    with pytest.raises(KeyStateError, match="'a'"):
        pipe.step(tab, {"a": b"not a state"})


def test_save_load_gives_same_scores_and_states(pipe, tmp_path):
    tab = make_events(400)
    res = pipe.step(tab, {})
    pipe.save(tmp_path / "m", states=res.states)
    loaded, states = Pipeline.load_with_states(tmp_path / "m")
    assert loaded.model_version == pipe.model_version
    assert states == res.states
    nxt = make_events(300, seed=5)
    nxt = nxt.set_column(1, "ts", pa.array(nxt["ts"].to_numpy() + 1e6))
    a = pipe.step(nxt, res.states).scores["score"].to_numpy()
    b = Pipeline.load(tmp_path / "m").step(nxt, states).scores["score"].to_numpy()
    np.testing.assert_array_equal(a, b)


def test_bad_tables_name_the_problem(pipe):
    tab = make_events(20)
    with pytest.raises(ValueError, match="'cpu'"):
        pipe.score(tab.drop_columns(["cpu"]))
    back = tab.set_column(1, "ts", pa.array(tab["ts"].to_numpy()[::-1].copy()))
    with pytest.raises(EventTableError, match="backwards"):
        pipe.score(back)


def test_empty_batch(pipe):
    res = pipe.step(make_events(5).slice(0, 0), {})
    assert res.scores.num_rows == 0 and res.alerts == [] and res.states == {}


def one_key(values, step=300.0, start=1.4e9):
    return pa.table({"host": ["k"] * len(values), "ts": start + step * np.arange(len(values)),
                     "cpu": np.asarray(values, float), "lat": np.ones(len(values))})


def test_cold_key_learns_and_follows_a_level_shift():
    rng = np.random.default_rng(3)
    x = 20 + rng.normal(0, 1, 3000)
    x[1500:] += 15                                       # a lasting shift, not a blip
    pipe = Pipeline(parse_config(CFG))
    s = pipe.score(one_key(x))["score"].to_numpy()
    assert s[:150].max() == 0                           # warm-up
    assert s[1500:1503].max() > 0.5                     # the shift is caught at once
    assert np.median(s[2500:]) < 0.05 and np.mean(s[2500:] > 0.5) < 0.01   # then it is normal


def test_fit_save_load_round_trip_of_a_fitted_pipeline(tmp_path):
    pipe = Pipeline(parse_config(CFG)).fit(make_events(2000, seed=4))
    assert float(np.abs(ops_np(pipe.core.liquid.motor_w)).sum()) > 0   # the readout was fitted
    tab = make_events(600, seed=6)
    before = pipe.score(tab)["score"].to_numpy()
    pipe.save(tmp_path / "m")
    loaded = Pipeline.load(tmp_path / "m")
    assert loaded.model_version == pipe.model_version
    np.testing.assert_array_equal(loaded.score(tab)["score"].to_numpy(), before)
    # online adaptation changes the model version but keeps the key states usable
    res = loaded.step(tab, {})
    loaded.partial_fit(make_events(300, seed=7), {})
    assert loaded.model_version != pipe.model_version
    assert loaded.step(make_events(50, seed=8), res.states).restarted == []


def test_step_with_learn_scores_before_learning():
    tab = make_events(400, seed=2)
    a, b = Pipeline(parse_config(CFG)), Pipeline(parse_config(CFG))
    learnt = a.step(tab, {}, learn=True).scores["score"].to_numpy()
    np.testing.assert_array_equal(learnt, b.score(tab)["score"].to_numpy())
    assert a.model_version != b.model_version


def test_labels_fine_tune_a_label_head():
    rng = np.random.default_rng(5)

    def bursts(n, at):
        lat = rng.gamma(2.0, 10.0, n)
        lab = np.zeros(n)
        for a in at:
            lat[a:a + 6] = rng.gamma(2.0, 10.0, 6) * 0.2 + 60   # a plateau of high latency
            lab[a:a + 6] = 1
        t = 1.4e9 + 60.0 * np.arange(n)
        return pa.table({"host": ["h"] * n, "ts": t, "cpu": rng.normal(50, 1, n), "lat": lat}), lab

    hist, lab = bursts(6000, range(300, 6000, 400))
    settings = PipelineSettings(alert_threshold=0.3)
    plain = Pipeline(parse_config(CFG), settings).fit(hist)
    tuned = Pipeline(parse_config(CFG), settings).fit(hist, labels=lab)
    assert tuned.core.label_w is not None and plain.core.label_w is None
    new, _ = bursts(1200, [1000])
    burst = slice(1000, 1006)
    assert (tuned.score(new)["score"].to_numpy()[burst].max()
            > plain.score(new)["score"].to_numpy()[burst].max() + 0.05)
    alerts = tuned.step(new, {}).alerts
    hit = [a for a in alerts if 1000 <= (a["time"] - 1.4e9) / 60 < 1006]
    assert hit and any(h["evidence"][0]["source"] == "label_head" for h in hit)


def ops_np(x):
    from ember_models import ops
    return ops.to_numpy(x)


def test_state_tag_is_cached_and_equals_a_fresh_computation():
    p = Pipeline(parse_config(CFG))
    assert p.state_tag == p._compute_state_tag()
    assert p.state_tag is p.state_tag     # the worker asks per micro-batch: not recomputed
    assert Pipeline(parse_config(CFG), PipelineSettings(tail_size=16)).state_tag != p.state_tag
