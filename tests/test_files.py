"""Reading event files: good rows kept exactly, malformed rows reported with their line and skipped."""

import json
import math
from datetime import datetime, timezone

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stream_app.files import (EventFields, EventFileError, in_key_time_order, read_events,
                              time_ordered, write_events)
from stream_app.sample import make_sample

FIELDS = EventFields("service", "time", ("requests", "latency_ms"), ("status",))
T0 = 1709510400.0  # 2024-03-04T00:00:00Z


def _write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


def test_csv_malformed_rows_are_reported_with_line_numbers_and_skipped(tmp_path):
    path = _write(tmp_path / "events.csv", "\n".join([
        "service,time,requests,latency_ms,status",      # 1
        "a,2024-03-04T00:00:00Z,1.5,10,ok",              # 2 good
        "a,2024-03-04T00:01:00Z,abc,10,ok",              # 3 bad number
        "a,2024-03-04T00:02:00Z,,10,ok",                 # 4 good, missing value kept
        "a,not-a-time,3,10,ok",                          # 5 bad time
        "a,2024-03-04T00:03:00Z,3,10",                   # 6 ragged (short)
        ",2024-03-04T00:04:00Z,3,10,ok",                 # 7 no key
        "",                                              # 8 blank: not a row
        'b,"2024-03-04T02:05:00+02:00",NaN,inf,',        # 9 inf
        'b,1709510700,4,"5",warn',                       # 10 good, epoch time
        "b,2024-03-04T00:06:00Z,4,5,ok,extra",           # 11 ragged (long)
        "b,2024-03-04 00:07:00,4e3,5,",                  # 12 good, naive ISO = UTC, no status
        "b,,4,5,ok",                                     # 13 no time
    ]) + "\n")
    table, report = read_events(path, FIELDS)
    assert [(b.line, b.reason.split(":")[0]) for b in report.bad_rows] == [
        (3, "requests"), (5, "time"), (6, "expected 5 fields, found 4 (ragged line)"),
        (7, "no key ('service' is empty)"), (9, "latency_ms"),
        (11, "expected 5 fields, found 6 (ragged line)"), (13, "time")]
    assert all(b.file == str(path) for b in report.bad_rows)
    assert "abc" in report.bad_rows[0].reason and "not-a-time" in report.bad_rows[1].reason
    assert report.rows_read == 11 and report.rows_kept == 4 and report.rows_skipped == 7
    rows = table.to_pylist()
    assert [r["service"] for r in rows] == ["a", "a", "b", "b"]
    assert [r["time"] for r in rows] == [T0, T0 + 120, T0 + 300, T0 + 420]
    assert rows[0]["requests"] == 1.5 and math.isnan(rows[1]["requests"]) and rows[3]["requests"] == 4000.0
    assert [r["status"] for r in rows] == ["ok", "ok", "warn", None]
    assert report.missing_values == {"requests": 1, "latency_ms": 0, "status": 1}
    summary = report.summary()
    assert f"{path}:3: requests: not a finite number: 'abc'" in summary
    assert "4 kept, 7 skipped" in summary


def test_missing_values_skip_mode_reports_them(tmp_path):
    path = _write(tmp_path / "e.csv", "service,time,requests,latency_ms,status\n"
                  "a,1,1,1,ok\na,2,,1,ok\na,3,nan,1,ok\na,4,2,2,ok\n")
    table, report = read_events(path, FIELDS, missing_values="skip")
    assert [(b.line, b.reason) for b in report.bad_rows] == [(3, "requests: missing value"),
                                                           (4, "requests: missing value")]
    assert table.column("time").to_pylist() == [1.0, 4.0]


def test_csv_quoted_newline_keeps_line_numbers_right(tmp_path):
    path = _write(tmp_path / "e.csv", 'service,time,requests,latency_ms,status\n'
                  'a,1,1,1,"two\nlines"\n'          # lines 2-3
                  'a,2,x,1,ok\n')                   # line 4
    table, report = read_events(path, FIELDS)
    assert [b.line for b in report.bad_rows] == [4]
    assert table.column("status").to_pylist() == ["two\nlines"]


def test_jsonl_malformed_lines(tmp_path):
    lines = [
        {"service": "a", "time": "2024-03-04T00:00:00Z", "requests": 1.5, "latency_ms": 10, "status": "ok"},
        {"service": "a", "time": T0 + 60, "requests": True, "latency_ms": 10},     # bool is no number
        {"service": "a", "requests": 1, "latency_ms": 10},                         # no time field
        '{"service": "a", "time": 1709510460, "requests": null',                   # broken JSON
        [1, 2],                                                                    # not an object
        {"service": 7, "time": T0 + 90.5, "requests": "2.5", "latency_ms": None},  # good: key 7, missing latency
        {"time": T0 + 100, "requests": 1, "latency_ms": 1},                        # no key field
    ]
    path = _write(tmp_path / "e.jsonl", "\n".join(l if isinstance(l, str) else json.dumps(l) for l in lines) + "\n")
    table, report = read_events(path, FIELDS)
    assert [(b.line, b.reason) for b in report.bad_rows] == [
        (2, "requests: not a finite number: 'true'"), (3, "missing field 'time'"),
        (4, report.bad_rows[2].reason), (5, "expected a JSON object, found list"),
        (7, "missing field 'service'")]
    assert report.bad_rows[2].reason.startswith("not valid JSON")
    rows = table.to_pylist()
    assert rows[0] == {"service": "a", "time": T0, "requests": 1.5, "latency_ms": 10.0, "status": "ok"}
    latency = rows[1].pop("latency_ms")
    assert rows[1] == {"service": "7", "time": T0 + 90.5, "requests": 2.5, "status": None}
    assert math.isnan(latency) and len(rows) == 2


def test_parquet_rows_numbered_and_types_converted(tmp_path):
    stamps = pa.array([T0 * 1e3, T0 * 1e3 + 1500, None, T0 * 1e3 + 3000], pa.float64())
    table = pa.table({
        "service": pa.array(["a", None, "a", "b"]),
        "time": pc_cast_ms(stamps),
        "requests": pa.array([1, 2, 3, 4], pa.int32()),
        "latency_ms": pa.array([1.0, 2.0, 3.0, float("inf")]),
        "status": pa.array(["ok", "ok", "ok", "ok"]),
        "unused": pa.array([1, 2, 3, 4]),
    })
    pq.write_table(table, tmp_path / "e.parquet")
    out, report = read_events(tmp_path / "e.parquet", FIELDS)
    assert [(b.line, b.unit) for b in report.bad_rows] == [(2, "row"), (3, "row"), (4, "row")]
    assert str(report.bad_rows[0]).endswith("e.parquet row 2: no key ('service' is empty)")
    assert out.column_names == ["service", "time", "requests", "latency_ms", "status"]
    assert out.to_pylist() == [{"service": "a", "time": T0, "requests": 1.0, "latency_ms": 1.0, "status": "ok"}]


def pc_cast_ms(floats):
    import pyarrow.compute as pc
    return pc.cast(pc.cast(floats, pa.int64()), pa.timestamp("ms", tz="UTC"))


def test_time_forms_and_units(tmp_path):
    path = _write(tmp_path / "e.csv", "service,time,requests,latency_ms,status\n"
                  "a,2024-03-04T00:00:00.250Z,1,1,ok\n"
                  "a,2024-03-04T02:00:01+02:00,1,1,ok\n"      # = 00:00:01Z
                  "a,2024-03-04 00:00:02,1,1,ok\n"            # no offset: UTC
                  "a,1709510403.5,1,1,ok\n")
    table, _ = read_events(path, FIELDS)
    assert table.column("time").to_pylist() == [T0 + 0.25, T0 + 1, T0 + 2, T0 + 3.5]
    path = _write(tmp_path / "ms.csv", "service,time,requests,latency_ms,status\na,1709510400250,1,1,ok\n")
    ms = EventFields("service", "time", ("requests", "latency_ms"), ("status",), time_unit="ms")
    # another unit than seconds reaches the model as a UTC timestamp (a number would be read in
    # the config's unit, so seconds would be scaled twice)
    col = read_events(path, ms)[0].column("time")
    assert pa.types.is_timestamp(col.type)
    assert col.cast(pa.int64()).to_pylist() == [int((T0 + 0.25) * 1e6)]


def test_file_level_errors_name_the_file_and_column(tmp_path):
    path = _write(tmp_path / "e.csv", "service,when,requests,latency_ms,status\na,1,1,1,ok\n")
    with pytest.raises(EventFileError, match=r"e\.csv: no time column 'time' \(columns: service, when"):
        read_events(path, FIELDS)
    with pytest.raises(EventFileError, match=r"unknown event file type '\.txt'"):
        read_events(tmp_path / "e.txt", FIELDS)
    with pytest.raises(EventFileError, match="no such file"):
        read_events(tmp_path / "missing.csv", FIELDS)


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet"])
def test_sample_round_trips_through_every_format(tmp_path, suffix):
    events = make_sample(seed=3, n_keys=3, events_per_key=300).events
    path = write_events(events, tmp_path / f"events{suffix}", "time")
    table, report = read_events(path, FIELDS)
    assert report.rows_skipped == 0 and report.rows_kept == events.num_rows
    assert table.column("service").to_pylist() == events.column("service").to_pylist()
    assert table.column("status").to_pylist() == events.column("status").to_pylist()
    np.testing.assert_allclose(table.column("time").to_numpy(), events.column("time").to_numpy(), rtol=0, atol=1e-3)
    for name in ("requests", "latency_ms"):
        np.testing.assert_array_equal(table.column(name).to_numpy(), events.column(name).to_numpy())


_CORRUPTIONS = {
    "bad_number": lambda row: {**row, "requests": "12,5"},
    "bad_time": lambda row: {**row, "time": "yesterday"},
    "no_key": lambda row: {**row, "service": ""},
    "ragged": None,
}


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.integers(0, 3), st.floats(-1e6, 1e6, allow_nan=False),
                          st.sampled_from([None, *_CORRUPTIONS])), min_size=1, max_size=40))
def test_every_good_row_kept_every_bad_row_reported(tmp_path, rows):
    header = "service,time,requests,latency_ms,status"
    text, good, bad_lines = [header], [], []
    for i, (key, value, corruption) in enumerate(rows):
        row = {"service": f"k{key}", "time": str(T0 + i), "requests": repr(value), "latency_ms": "1", "status": "ok"}
        line = len(text) + 1
        if corruption == "ragged":
            text.append(",".join(list(row.values())[:-1]))
        elif corruption:
            text.append(",".join(_CORRUPTIONS[corruption](row).values()))
        else:
            text.append(",".join(row.values()))
        (bad_lines if corruption else good).append(line if corruption else (f"k{key}", T0 + i, value))
    path = _write(tmp_path / "prop.csv", "\n".join(text) + "\n")
    table, report = read_events(path, FIELDS)
    assert [b.line for b in report.bad_rows] == bad_lines
    assert list(zip(table.column("service").to_pylist(), table.column("time").to_pylist(),
                    table.column("requests").to_pylist())) == good


def test_time_ordered_sorts_only_when_a_key_goes_back():
    t = pa.table({"service": ["a", "b", "a", "b"], "time": [1.0, 0.5, 2.0, 3.0]})
    f = EventFields("service", "time", ("v",))
    assert in_key_time_order(t, f) and time_ordered(t, f) is t
    back = pa.table({"service": ["a", "b", "a"], "time": [2.0, 0.5, 1.0]})
    assert not in_key_time_order(back, f)
    assert time_ordered(back, f).column("time").to_pylist() == [0.5, 1.0, 2.0]


def test_blank_lines_and_a_bad_value_in_an_otherwise_clean_csv(tmp_path):
    """Arrow reads this file (no ragged line); the bad value's line must still be the file's."""
    rows = ["service,time,requests,latency_ms,status"] + [f"a,{T0 + i},{i},1,ok" for i in range(3000)]
    rows.insert(5, "")
    rows.insert(2500, "")
    rows[2800] = rows[2800].replace(",1,ok", ",1e,ok")   # line 2801: latency "1e" is no number
    path = _write(tmp_path / "e.csv", "\n".join(rows) + "\n")
    table, report = read_events(path, FIELDS)
    assert [(b.line, b.reason) for b in report.bad_rows] == [(2801, "latency_ms: not a finite number: '1e'")]
    assert table.num_rows == 2999


def test_numeric_times_read_as_the_backfill_and_the_stream_read_them(tmp_path):
    """One conversion of epoch numbers in time_unit: the file reader gives the same times as
    the backfill sources (EventFields.time_in_seconds), to the last bit, as the UTC timestamps
    the model reads (exact here: whole milliseconds)."""
    from stream_app.event_fields import epoch_seconds
    millis = np.arange(1709510400000, 1709510400000 + 2000, 7, dtype=np.int64)
    assert np.any(millis / 1000 != millis * 1e-3)          # the two roundings differ on these
    ms = EventFields("service", "time", ("requests",), time_unit="ms")
    path = _write(tmp_path / "ms.csv", "service,time,requests\n" + "".join(f"a,{t},1\n" for t in millis))
    from_file = read_events(path, ms)[0].column("time").cast(pa.int64()).to_numpy()
    from_backfill = ms.time_in_seconds(pa.table({"time": millis})).column("time").cast(pa.int64()).to_numpy()
    np.testing.assert_array_equal(from_file, from_backfill)
    np.testing.assert_array_equal(from_file, millis * 1000)       # microseconds
    assert epoch_seconds(1500.0, "ms") == 1.5 and ms.numeric_time(datetime.fromtimestamp(2, timezone.utc)) == 2000.0


def test_event_fields_round_trip_and_refuse_bad_input():
    fields = EventFields("service", "time", ("requests",), ("status",), time_unit="us")
    assert fields.columns == ("service", "time", "requests", "status")
    assert EventFields.from_dict(fields.to_dict()) == fields
    with pytest.raises(ValueError, match="time_unit 'min'"):
        EventFields("service", "time", ("requests",), time_unit="min")
    with pytest.raises(ValueError, match="repeat a column"):
        EventFields("service", "time", ("requests",), ("requests",))
