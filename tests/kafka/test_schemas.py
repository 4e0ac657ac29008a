"""Event validation and dead-letter records (no broker needed)."""

from __future__ import annotations

import base64
import json
import math

import pytest

from stream_app.schemas import EventSchema, alert_id, alert_record, decode_message

SCHEMA = EventSchema("service", "time", ("requests", "latency_ms"), ("status",), missing_values="dead_letter")
IMPUTE = EventSchema("service", "time", ("requests", "latency_ms"), ("status",))
NOW = 1_800_000_000.0


def decode(raw: bytes, **kw):
    args = dict(topic="ev", partition=2, offset=17, max_payload_bytes=1000, max_future_s=3600, now=NOW)
    args.update(kw)
    return decode_message(raw, SCHEMA, **args)


def good(**over) -> dict:
    e = {"service": "a", "time": 1_700_000_000.5, "requests": 10, "latency_ms": 2.5, "status": "ok"}
    e.update(over)
    return e


def test_one_good_event():
    events, letters = decode(json.dumps(good()).encode())
    assert letters == []
    (e,) = events
    assert (e.key, e.time, e.values, e.categories) == ("a", 1_700_000_000.5, (10.0, 2.5), ("ok",))
    assert (e.partition, e.offset, e.index) == (2, 17, None)


def test_integer_key_and_iso_time_are_accepted():
    (e,), _ = decode(json.dumps(good(service=42, time="2023-11-14T22:13:20.5+00:00")).encode())
    assert e.key == "42" and e.time == 1_700_000_000.5


@pytest.mark.parametrize(
    "raw, reason, field",
    [
        (b"{not json", "bad_json", None),
        (b"\xff\xfe", "bad_json", None),
        (b"", "empty", None),
        (b"[]", "empty", None),
        (b"42", "not_an_object", None),
        (json.dumps({k: v for k, v in good().items() if k != "requests"}).encode(), "missing_field", "requests"),
        (json.dumps(good(service=None)).encode(), "missing_field", "service"),
        (json.dumps(good(requests="12")).encode(), "wrong_type", "requests"),
        (json.dumps(good(requests=True)).encode(), "wrong_type", "requests"),
        (json.dumps(good(service=["x"])).encode(), "wrong_type", "service"),
        (json.dumps(good(time="yesterday")).encode(), "wrong_type", "time"),
        (json.dumps(good(time="2023-11-14T22:13:20")).encode(), "wrong_type", "time"),
        (json.dumps(good(status=3)).encode(), "wrong_type", "status"),
        (b'{"service":"a","time":1.0,"requests":NaN,"latency_ms":1}', "not_finite", "requests"),
        (b'{"service":"a","time":1.0,"requests":1,"latency_ms":-Infinity}', "not_finite", "latency_ms"),
        (b'{"service":"a","time":Infinity,"requests":1,"latency_ms":1}', "not_finite", "time"),
        (json.dumps(good(time=NOW + 7200)).encode(), "in_future", "time"),
        (json.dumps(good(pad="x" * 2000)).encode(), "too_large", None),
    ],
)
def test_bad_message_becomes_one_dead_letter_with_reason_and_original(raw, reason, field):
    events, letters = decode(raw)
    assert events == []
    (dl,) = letters
    assert dl.reason == reason
    if field:
        assert repr(field) in dl.detail
    rec = json.loads(dl.to_bytes())
    assert rec["reason"] == reason and rec["partition"] == 2 and rec["offset"] == 17
    assert base64.b64decode(rec["original_b64"]) == raw


def test_absent_or_null_values_are_missing_by_default_but_key_and_time_are_required():
    args = dict(topic="ev", partition=0, offset=0, max_payload_bytes=1000, max_future_s=3600, now=NOW)
    raw = json.dumps({"service": "a", "time": 5.0, "latency_ms": None}).encode()
    (e,), letters = decode_message(raw, IMPUTE, **args)
    assert letters == [] and all(math.isnan(v) for v in e.values)
    _, (dl,) = decode_message(json.dumps({"time": 5.0}).encode(), IMPUTE, **args)
    assert dl.reason == "missing_field" and "'service'" in dl.detail
    _, (dl,) = decode_message(b'{"service":"a","time":5,"requests":NaN}', IMPUTE, **args)
    assert dl.reason == "not_finite"  # NaN is not JSON: send null for a missing value


def test_batch_message_keeps_good_elements_and_names_bad_ones():
    batch = [good(time=1.0), good(requests=float("nan")), "zzz", good(time=3.0, service="b")]
    events, letters = decode(json.dumps(batch).encode())
    assert [(e.key, e.time, e.index) for e in events] == [("a", 1.0, 0), ("b", 3.0, 3)]
    assert [(d.reason, d.index) for d in letters] == [("not_finite", 1), ("not_an_object", 2)]
    assert "element 1" in letters[0].detail
    assert json.loads(base64.b64decode(letters[1].to_record()["original_b64"])) == "zzz"
    assert math.isnan(json.loads(base64.b64decode(letters[0].to_record()["original_b64"]))["requests"])


def test_time_unit_scales_numbers():
    schema = EventSchema("service", "time", ("requests",), (), time_unit="ms")
    (e,), _ = decode_message(json.dumps({"service": "a", "time": 1500, "requests": 1}).encode(), schema,
                             topic="t", partition=0, offset=0, max_payload_bytes=1000, max_future_s=10, now=NOW)
    assert e.time == 1.5


def test_alert_record_has_documented_fields_and_stable_id():
    alert = {"key": "a", "time": 12.25, "score": 0.99, "threshold": 0.9,
             "top_features": [{"name": "x", "value": 3.0}], "model_version": "v1", "extra": 1}
    rec = alert_record(alert, partition=1, offset=5, detected_at=100.0)
    assert rec["alert_id"] == alert_id("a", 12.25, "v1") == "a|12.25|v1"
    assert rec["source"] == {"partition": 1, "offset": 5} and rec["extra"] == 1
    for name in ("schema_version", "key", "time", "score", "threshold", "top_features", "model_version", "detected_at"):
        assert name in rec
    with pytest.raises(KeyError, match="score"):
        alert_record({"key": "a", "time": 1.0, "threshold": 0.5, "model_version": "v"},
                     partition=0, offset=0, detected_at=0.0)
