"""FeatureEngine around the features: reading Arrow columns (types, units, errors naming field
and row), the state blob format, fitting/standardising, export/import, empty input."""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from ember_models.config import parse_config
from ember_models.features import FeatureEngine, RoundLayout
from features_strategies import DATA

T0 = 1_700_000_000.0


def table(n=12, keys=("a", "b", "c"), **over):
    cols = {"key": [keys[i % len(keys)] for i in range(n)], "time": T0 + np.arange(n) * 10.0,
            "x": np.arange(n, dtype=float), "y": np.sin(np.arange(n)), "cat": [["u", "v"][i % 2] for i in range(n)]}
    cols.update(over)
    return pa.table(cols)


@pytest.fixture
def engine():
    return FeatureEngine(DATA)


def test_time_column_types_and_units_agree(engine):
    base = engine.transform(table()).values
    ts = pa.array((T0 + np.arange(12) * 10.0) * 1e6, pa.int64()).cast(pa.timestamp("us", tz="UTC"))
    np.testing.assert_array_equal(engine.transform(table(time=ts)).values, base)
    ms = FeatureEngine(DATA.model_copy(update={"time_unit": "ms"}))
    np.testing.assert_array_equal(
        ms.transform(table(time=(T0 + np.arange(12) * 10.0) * 1000)).values, base)


def test_key_and_category_encodings_agree(engine):
    base = engine.transform(table()).values
    dict_keys = pa.array(["a", "b", "c"] * 4).dictionary_encode()
    np.testing.assert_array_equal(engine.transform(table(key=dict_keys)).values, base)
    ints = engine.transform(table(key=[1, 2, 3] * 4))
    np.testing.assert_array_equal(ints.values, base)
    assert ints.keys == [1, 2, 3]
    cats = pa.array(["u", "v"] * 6).dictionary_encode()
    np.testing.assert_array_equal(engine.transform(table(cat=cats)).values, base)
    batches = table().to_batches(max_chunksize=5)
    chunked = pa.Table.from_batches(batches)
    np.testing.assert_array_equal(engine.transform(chunked).values, base)
    np.testing.assert_array_equal(engine.transform(batches[0]).values, base[:5])


@pytest.mark.parametrize("change, message", [
    (dict(drop="x"), "the events have no value field 'x'"),
    (dict(drop="key"), "the events have no key field 'key'"),
    (dict(drop="cat"), "the events have no categorical field 'cat'"),
    (dict(x=["1"] * 12), "value field 'x' must be numeric, not string"),
    (dict(time=["t"] * 12), "time field 'time' must be numeric"),
    (dict(key=["a"] * 5 + [None] + ["a"] * 6), "key field 'key' is null at row 5"),
    (dict(time=pa.array([T0] * 7 + [None] + [T0] * 4, pa.float64())), "time field 'time' is null at row 7"),
    (dict(time=[T0] * 3 + [float("inf")] + [T0] * 8), "time field 'time' is not finite at row 3"),
    (dict(cat=np.ones(12)), "categorical field 'cat' is double"),
    (dict(time=(T0 + np.arange(12.0)) * 1000), "row 0 is not finite epoch seconds.*time_unit"),
])
def test_bad_data_names_field_and_row(engine, change, message):
    t = table()
    if "drop" in change:
        t = t.drop([change.pop("drop")])
    for name, col in change.items():
        t = t.set_column(t.column_names.index(name), name, pa.array(col) if not isinstance(col, pa.Array) else col)
    with pytest.raises(ValueError, match=message):
        engine.transform(t)


def test_events_out_of_time_order_are_refused(engine):
    t = table(time=T0 + np.array([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11.0]))
    times = t.column("time").to_numpy().copy()
    times[[1, 4]] = times[[4, 1]]      # rows 1 and 4 are both key 'b'
    with pytest.raises(ValueError, match=r"events of key 'b' are not in time order: row 4"):
        engine.transform(t.set_column(1, "time", pa.array(times)))


def test_layout_rounds_group_the_r_th_event_of_every_key():
    key_index = np.array([2, 0, 2, 1, 2, 0])
    lay = RoundLayout(key_index, 4)
    assert lay.n_rounds == 3
    assert list(lay.rank_order[:3]) == [2, 0, 1]             # most events first
    assert np.diff(lay.round_start).tolist() == [3, 2, 1]    # key 3 has no events
    assert lay.order.tolist() == [0, 1, 3, 2, 5, 4]
    assert lay.position.tolist() == [0, 0, 1, 0, 2, 1]


def test_state_blobs_gather_scatter_and_refuse_garbage(engine):
    frame = engine.transform(table())
    blobs = engine.states_to_bytes(frame.state)
    assert len(blobs) == 3 and all(len(b) == engine.state_nbytes for b in blobs)
    again = engine.states_from_bytes([blobs[2], None, blobs[0]])
    expected = engine.concat_states([engine.take_state(frame.state, [2]), engine.init_state(1),
                                     engine.take_state(frame.state, [0])])
    for k, v in expected.items():
        np.testing.assert_array_equal(again[k], v)
    assert engine.state_to_bytes(frame.state, 1) == blobs[1]
    part = engine.take_state(frame.state, [1])
    assert engine.states_to_bytes(engine.concat_states([part, part])) == [blobs[1]] * 2
    with pytest.raises(ValueError, match="bad magic"):
        engine.state_from_bytes(b"XXXX" + blobs[0][4:])
    with pytest.raises(ValueError, match="bytes, expected"):
        engine.state_from_bytes(blobs[0][:-1])
    with pytest.raises(TypeError, match="must be bytes or None"):
        engine.states_from_bytes(["nope"])


def test_blob_matrix_round_trip_with_every_key_or_some(engine):
    """states_to_blob_matrix / states_from_blob_matrix (the pipeline's path): every key present
    (read straight out of the blobs) and some (the rest fresh) give the arrays, layouts and
    dtypes that the per-blob path gives, as writable C-contiguous arrays."""
    frame = engine.transform(table())
    mat = engine.states_to_blob_matrix(frame.state)
    assert mat.shape == (3, engine.blob_size)
    assert [bytes(r) for r in mat] == engine.states_to_bytes(frame.state)
    every = engine.states_from_blob_matrix(3, np.arange(3), mat)
    some = engine.states_from_blob_matrix(4, np.array([3, 1]), mat[[0, 2]])
    expected_some = engine.states_from_bytes([None, bytes(mat[2]), None, bytes(mat[0])])
    for k, v in frame.state.items():
        for got, want in ((every[k], v), (some[k], expected_some[k])):
            np.testing.assert_array_equal(got, want)
            assert got.dtype == want.dtype and got.shape == want.shape
            assert got.flags.c_contiguous and got.flags.writeable


def test_blob_matrix_decode_never_returns_a_view_of_the_blobs():
    """One key, one state array: the record's only field over one contiguous row could be read
    in place; the decoded state must still be the codec's own writable copy."""
    from ember_models.features.state_codec import StateCodec
    codec = StateCodec({"only": ((), "float64", 0.0)}, "one-field")
    state = codec.init(1)
    state["only"][...] = 2.5
    blobs = codec.record_bytes(state)
    blobs.flags.writeable = False
    got = codec.decode_rows(1, np.arange(1), blobs)
    assert got["only"].tolist() == [2.5] and got["only"].flags.writeable
    got["only"][0] = 1.0
    assert codec.decode_rows(1, np.arange(1), blobs)["only"].tolist() == [2.5]


def test_transform_with_state_mapping_continues_each_key(engine):
    t = table(n=24)
    whole = engine.transform(t).values
    first = engine.transform(t.slice(0, 10))
    blobs = dict(zip(first.keys, engine.states_to_bytes(first.state)))
    rest = engine.transform(t.slice(10), state=blobs)
    np.testing.assert_allclose(rest.values, whole[10:], rtol=1e-6, atol=1e-6)
    rest2 = engine.transform(t.slice(10), state=first.state, state_keys=first.keys)
    np.testing.assert_array_equal(rest2.values, rest.values)
    with pytest.raises(TypeError, match="state_keys"):
        engine.transform(t.slice(10), state=first.state)
    # A key the state does not know starts fresh.
    only_a = engine.take_state(first.state, [0])
    mixed = engine.transform(t.slice(10), state=only_a, state_keys=["a"])
    fresh_b = engine.transform(t.slice(10).filter(pa.compute.equal(t.slice(10).column("key"), "b")))
    rows_b = np.flatnonzero(np.array(t.slice(10).column("key").to_pylist()) == "b")
    np.testing.assert_array_equal(mixed.values[rows_b], fresh_b.values)


def test_fit_standardize_and_export_round_trip(engine):
    rng = np.random.default_rng(3)
    t = table(n=400, x=rng.normal(5, 2, 400), y=rng.normal(size=400))
    frame = engine.transform(t)
    with pytest.raises(RuntimeError, match="fit"):
        engine.standardize(frame.values)
    engine.fit(frame)
    z = engine.standardize(frame.values)
    assert z.dtype == np.float32 and np.abs(z).max() <= 10.0
    med = np.median(z, axis=0)
    assert np.abs(med).max() < 0.05
    manifest, arrays = engine.export()
    import json
    copy = FeatureEngine.from_export(json.loads(json.dumps(manifest)), arrays)
    assert copy.names == engine.names
    np.testing.assert_array_equal(copy.standardize(frame.values), z)
    blob = engine.states_to_bytes(frame.state)[0]
    copy.state_from_bytes(blob)          # same configuration: same state format


def test_empty_input(engine):
    t = table().slice(0, 0)
    frame = engine.transform(t)
    assert frame.values.shape == (0, engine.n_features) and frame.keys == []
    out, blobs = engine.step(t, {})
    assert blobs == {}


def test_step_returns_a_blob_for_every_key_in_the_batch(engine):
    t = table(n=9)
    frame, blobs = engine.step(t, {"a": None, "zzz": b"unused"})
    assert set(blobs) == {"a", "b", "c"}


def test_data_config_without_categoricals():
    cfg = parse_config({"data": {"key_field": "k", "time_field": "t", "value_fields": ["v"]}})
    engine = FeatureEngine.from_config(cfg)
    assert not any("hashed" in n for n in engine.names)
    out = engine.transform(pa.table({"k": ["a", "a"], "t": [0.0, 1.0], "v": [1, 2]})).values
    assert out.shape == (2, engine.n_features) and np.isfinite(out).all()


def test_zscore_and_welford_of_the_same_fields_share_state_and_agree_with_each_alone():
    """The engine evaluates a z-score and a Welford feature of the same fields on one set of
    arrays (updated once): outputs and stored state must be those of each feature alone."""
    from ember_models.config import WelfordSpec, ZScoreSpec
    rng = np.random.default_rng(3)
    n = 300
    x = rng.normal(size=n)
    x[rng.random(n) < 0.1] = np.nan
    t = table(n=n, keys=("a", "b", "c", "d"), x=x, y=rng.normal(size=n) * 1e3)
    both = FeatureEngine(DATA, [WelfordSpec(), ZScoreSpec(clip=3.0)])
    assert both._state_alias, "the pair should share its state"
    alone = {s.kind: FeatureEngine(DATA, [s]) for s in (WelfordSpec(), ZScoreSpec(clip=3.0))}
    frame = both.transform(t)
    state, _ = frame.state, frame.keys
    for kind, eng in alone.items():
        single = eng.transform(t)
        cols = [both.names.index(name) for name in eng.names]
        np.testing.assert_array_equal(frame.values[:, cols], single.values)
        for name, arr in single.state.items():
            np.testing.assert_array_equal(state[name], arr)
    # resumed from the blobs, half way: still the same as one pass
    blobs = {}
    for part in (t.slice(0, 150), t.slice(150)):
        out, blobs = both.step(part, blobs)
    ref = both.transform(t)
    np.testing.assert_array_equal(out.values, ref.values[150:])


def test_features_with_a_clock_share_one_and_agree_with_each_alone():
    """Time since last, event rate, EWMA and rolling time windows each keep a per-key clock; the
    engine evaluates them on one clock (advanced once per round): outputs and stored state must
    be those of each feature alone, also resumed from blobs with a batch older than the last."""
    from ember_models.config import EventRateSpec, EwmaSpec, RollingTimeSpec, TimeSinceLastSpec
    rng = np.random.default_rng(4)
    n = 240
    times = T0 + np.cumsum(rng.exponential(30.0, n) * (rng.random(n) < 0.8))
    t = table(n=n, keys=("a", "b", "c"), time=times, x=rng.normal(size=n))
    specs = [TimeSinceLastSpec(), EwmaSpec(half_lives_s=[60.0]), EventRateSpec(),
             RollingTimeSpec(windows_s=[300.0, 900.0], buckets=3)]
    together = FeatureEngine(DATA, specs)
    assert together._clock is not None
    # the second batch starts before the first one ended (allowed between batches)
    parts = (t.slice(0, 120), t.slice(120).set_column(
        1, "time", pa.array(np.asarray(times[120:]) - 600.0)))
    for spec in specs:
        alone = FeatureEngine(DATA, [spec])
        cols = [together.names.index(name) for name in alone.names]
        blobs_t, blobs_a = {}, {}
        for part in parts:
            frame_t, blobs_t = together.step(part, blobs_t)
            frame_a, blobs_a = alone.step(part, blobs_a)
            np.testing.assert_array_equal(frame_t.values[:, cols], frame_a.values)
            for name, arr in frame_a.state.items():
                np.testing.assert_array_equal(frame_t.state[name], arr)


def test_rounds_keys_last_are_the_transposed_rounds(engine):
    rng = np.random.default_rng(5)
    n = 200
    t = table(n=n, keys=("a", "b", "c", "d", "e"), x=rng.normal(size=n))
    cols = engine.read(t)
    state = engine.init_state(len(cols.keys))
    args = (cols.key_index, cols.times, cols.values, cols.categories)
    rows = [(a, f.copy()) for a, _, f in engine.rounds(state, *args)]
    cols_ = [(a, f.copy()) for a, _, f in engine.rounds(state, *args, keys_last=True)]
    assert len(rows) == len(cols_) > 1
    for (a, f), (b, g) in zip(rows, cols_):
        assert a == b and g.shape == f.T.shape
        np.testing.assert_array_equal(g, f.T)
