"""Arrow IPC batch messages (stream_app/arrow_messages.py): decoded to the same events as JSON,
whole-message faults (unreadable, missing or mistyped column) vs row faults (null key, NaN, ...)
as dead letters with their reason and bytes, the good rows scored. No broker needed."""

from __future__ import annotations

import base64
import json

import numpy as np
import pyarrow as pa
import pytest

from fake_pipeline import FakePipeline
from stream_app import arrow_messages
from stream_app.batch_decode import accept_columns
from stream_app.produce import encode_messages
from stream_app.processor import BatchProcessor, InMessage, Limits, default_partition
from stream_app.schemas import EventSchema, decode_message

P = 4
NOW = 2_000_000_000.0
SCHEMA = EventSchema("service", "time", ("requests", "latency_ms"), ("status",))


def rows(n=6, key="a"):
    return [{"service": key, "time": 1000.0 + i, "requests": 100.0 + i, "latency_ms": 5.0 + i,
             "status": "ok" if i % 2 else None} for i in range(n)]


def arrow(**cols) -> bytes:
    return arrow_messages.encode_table(pa.table(cols))


def clean_columns(n=4, key="a") -> dict:
    return {"service": pa.array([key] * n), "time": pa.array([1000.0 + i for i in range(n)]),
            "requests": pa.array([100.0 + i for i in range(n)]),
            "latency_ms": pa.array([5.0] * n), "status": pa.array(["ok"] * n)}


def decode(raw, schema=SCHEMA, max_bytes=1 << 20):
    return decode_message(raw, schema, topic="ev", partition=default_partition("a", P), offset=7,
                          max_payload_bytes=max_bytes, max_future_s=86_400.0, now=NOW)


def test_detected_by_the_ipc_continuation_marker_never_json():
    raw = arrow_messages.encode_rows(rows())
    assert arrow_messages.is_arrow(raw)
    assert not arrow_messages.is_arrow(json.dumps(rows()).encode())


def test_rows_decode_to_the_events_of_the_same_json_array():
    r = rows()
    from_arrow, dead_a = decode(arrow_messages.encode_rows(r))
    from_json, dead_j = decode(json.dumps(r).encode())
    assert not dead_a and not dead_j
    assert from_arrow == from_json  # key, time, values, categories, offset, index per row


def test_column_types_other_than_float_and_string():
    n = 3
    raw = arrow(service=pa.array([7, 8, 9], pa.int32()),
                time=pa.array([1_000_000, 1_001_000, 1_002_000], pa.timestamp("ms", "UTC")),
                requests=pa.array([1, 2, None], pa.int64()), latency_ms=pa.array([1.5, 2.5, 3.5], pa.float32()),
                status=pa.array(["x", None, "y"]).dictionary_encode())
    events, dead = decode(raw)
    assert not dead and len(events) == n
    assert [e.key for e in events] == ["7", "8", "9"]  # integer keys as text, as in JSON
    assert [e.time for e in events] == [1000.0, 1001.0, 1002.0]
    assert events[2].values[0] != events[2].values[0]  # null value: missing (NaN, imputed)
    assert [e.categories for e in events] == [("x",), (None,), ("y",)]
    naive = arrow(**{**clean_columns(3), "time": pa.array([1_000_000, 1_001_000, 1_002_000], pa.timestamp("ms"))})
    assert [e.time for e in decode(naive)[0]] == [1000.0, 1001.0, 1002.0]  # no zone: UTC


def test_numeric_times_are_read_in_the_model_time_unit():
    schema = EventSchema("service", "time", ("requests", "latency_ms"), ("status",), time_unit="ms")
    raw = arrow(**{**clean_columns(2), "time": pa.array([1_000_000, 1_000_500], pa.int64())})
    assert [e.time for e in decode(raw, schema)[0]] == [1000.0, 1000.5]


@pytest.mark.parametrize("change, reason", [
    ({"service": None}, "missing_field"),
    ({"time": None}, "missing_field"),
    ({"service": pa.array([1.5] * 4)}, "wrong_type"),
    ({"time": pa.array(["2030-01-01T00:00:00Z"] * 4)}, "wrong_type"),
    ({"requests": pa.array(["12"] * 4)}, "wrong_type"),
    ({"requests": pa.array([True] * 4)}, "wrong_type"),
    ({"status": pa.array([1] * 4)}, "wrong_type"),
])
def test_a_missing_or_mistyped_column_is_one_dead_letter_for_the_whole_message(change, reason):
    cols = {k: v for k, v in {**clean_columns(), **change}.items() if v is not None}
    raw = arrow(**cols)
    events, dead = decode(raw)
    assert events == []
    (d,) = dead
    assert d.reason == reason and d.index is None and d.original == raw
    assert "column" in d.detail


def test_absent_value_and_categorical_columns_are_missing_as_absent_json_fields():
    cols = clean_columns(3)
    del cols["latency_ms"], cols["status"]
    events, dead = decode(arrow(**cols))
    assert not dead and all(np.isnan(e.values[1]) and e.categories == (None,) for e in events)
    strict = EventSchema("service", "time", ("requests", "latency_ms"), ("status",), missing_values="dead_letter")
    (d,) = decode(arrow(**cols), strict)[1]
    assert d.reason == "missing_field" and "latency_ms" in d.detail


def test_unreadable_empty_and_oversized_messages():
    raw = arrow_messages.encode_rows(rows())
    (d,) = decode(raw[:40])[1]
    assert d.reason == "bad_arrow" and d.original == raw[:40]
    empty = arrow_messages.encode_table(pa.table(clean_columns(0)))
    assert [d.reason for d in decode(empty)[1]] == ["empty"]
    assert [d.reason for d in decode(raw, max_bytes=len(raw) - 1)[1]] == ["too_large"]


@pytest.mark.parametrize("column, value, reason", [
    ("service", None, "missing_field"), ("service", "", "wrong_type"), ("service", "\x00x", "wrong_type"),
    ("time", None, "missing_field"), ("time", float("nan"), "not_finite"), ("time", NOW + 10 ** 6, "in_future"),
    ("requests", float("inf"), "not_finite"), ("latency_ms", float("nan"), "not_finite"),
])
def test_a_bad_value_is_its_row_dead_letter_and_the_other_rows_go_on(column, value, reason):
    cols = clean_columns(5)
    vals = cols[column].to_pylist()
    vals[2] = value
    cols[column] = pa.array(vals, cols[column].type)
    raw = arrow(**cols)
    events, dead = decode(raw)
    assert [e.index for e in events] == [0, 1, 3, 4]
    (d,) = dead
    assert d.reason == reason and d.index == 2 and d.detail.startswith("row 2: ")
    row = arrow_messages.read_message(d.original)  # the row alone, as Arrow
    assert row.num_rows == 1 and row.schema == pa.table(cols).schema
    assert row.to_pylist()[0] == pa.table(cols).slice(2, 1).to_pylist()[0] or reason == "not_finite"
    record = json.loads(d.to_bytes())
    assert base64.b64decode(record["original_b64"]) == d.original and record["index"] == 2


def test_null_values_are_missing_or_dead_letters_by_the_setting():
    cols = clean_columns(3)
    cols["requests"] = pa.array([1.0, None, 3.0])
    events, dead = decode(arrow(**cols))
    assert not dead and np.isnan(events[1].values[0])
    strict = EventSchema("service", "time", ("requests", "latency_ms"), ("status",), missing_values="dead_letter")
    events, dead = decode(arrow(**cols), strict)
    assert [e.index for e in events] == [0, 2] and [(d.reason, d.index) for d in dead] == [("missing_field", 1)]


def batch(values: list[bytes], key="a") -> list[InMessage]:
    p = default_partition(key, P)
    return [InMessage("ev", p, i, v) for i, v in enumerate(values)]


def test_a_clean_arrow_batch_takes_the_column_path_with_the_json_columns():
    r = rows(20)
    pipe = FakePipeline()
    proc = BatchProcessor(Limits(), P, clock=lambda: NOW)
    a = accept_columns(batch([arrow_messages.encode_rows(r[:10]), arrow_messages.encode_rows(r[10:])]),
                       proc.schema(pipe), Limits(), P, default_partition, lambda k, p: None, NOW)
    j = accept_columns(batch([json.dumps(r[:10]).encode(), json.dumps(r[10:]).encode()]),
                       proc.schema(pipe), Limits(), P, default_partition, lambda k, p: None, NOW)
    assert a is not None and j is not None
    assert a.keys.equals(j.keys) and np.array_equal(a.times, j.times)
    assert all(np.array_equal(x, y, equal_nan=True) for x, y in zip(a.values, j.values))
    assert all(x.equals(y) for x, y in zip(a.categories, j.categories))
    assert a.cursor == j.cursor == {"a": (1, 9)}


def test_per_key_rules_apply_to_arrow_rows_one_by_one():
    """Out of order beyond the limit and a key on the wrong partition: those rows only."""
    r = rows(6)
    r[3]["time"] = r[0]["time"] - 1000.0           # far out of order
    r[4]["service"] = next(k for k in "bcdefgh" if default_partition(k, P) != default_partition("a", P))
    out = BatchProcessor(Limits(emit_scores=True, max_out_of_order_s=30.0), P, clock=lambda: NOW).process(
        batch([arrow_messages.encode_rows(r)]), FakePipeline(), lambda k, p: None)
    letters = sorted((json.loads(m.value)["reason"], json.loads(m.value)["index"]) for m in out.dead_letters)
    assert letters == [("out_of_order", 3), ("wrong_partition", 4)]
    assert out.scored == 4


def test_produce_encodes_arrow_batch_messages_per_partition_in_key_order():
    r = [dict(x, service=k) for i in range(30) for k, x in [("abc"[i % 3], rows(30)[i])]]
    msgs = encode_messages(r, "service", P, per_message=4, fmt="arrow")
    seen: dict[str, list[float]] = {}
    for p, _key, value in msgs:
        t = arrow_messages.read_message(value)
        assert t.num_rows <= 4
        for row in t.to_pylist():
            assert default_partition(row["service"], P) == p
            seen.setdefault(row["service"], []).append(row["time"])
    assert seen == {k: [x["time"] for x in r if x["service"] == k] for k in "abc"}
    with pytest.raises(ValueError, match="message format"):
        encode_messages(r, "service", P, fmt="avro")


def test_corrupt_messages_are_dead_letters_never_a_crash():
    """Random bytes overwritten inside a valid message (seeded): every outcome is events and/or
    dead letters — before the full validation, some of these crashed the process (SIGSEGV)."""
    import random

    raw = arrow_messages.encode_rows(rows(50))
    rng = random.Random(5)
    reasons = set()
    for _ in range(1500):
        b = bytearray(raw)
        for _ in range(rng.randint(1, 4)):
            b[rng.randrange(4, len(b))] = rng.randrange(256)
        events, dead = decode(bytes(b))
        assert events or dead
        reasons |= {d.reason for d in dead}
        acc = accept_columns(batch([bytes(b)]), SCHEMA, Limits(), P, default_partition, lambda k, p: None, NOW)
        assert acc is None or len(acc) == len(events)
    assert "bad_arrow" in reasons


def test_declared_rows_and_decoded_size_are_bounded_by_the_payload_limit():
    """Null-type columns take no bytes whatever their length, and a compressed body can decode
    to far more than the message: both are too_large before anything allocates per row."""
    n = 5_000
    nulls = arrow(service=pa.nulls(n), time=pa.nulls(n))
    assert len(nulls) < 1_000
    (d,) = decode(nulls, max_bytes=1_000)[1]
    assert d.reason == "too_large" and "rows" in d.detail
    big = pa.table({**clean_columns(1), "pad": pa.array(["x" * 200_000])})
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, big.schema, options=pa.ipc.IpcWriteOptions(compression="zstd")) as w:
        w.write_table(big)
    raw = sink.getvalue().to_pybytes()
    assert len(raw) < 2_000
    (d,) = decode(raw, max_bytes=2_000)[1]
    assert d.reason == "too_large" and "decoded" in d.detail
    assert not decode(raw, max_bytes=4_000)[1]  # within 64x of a larger limit: read as usual
