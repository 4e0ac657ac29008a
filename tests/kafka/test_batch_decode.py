"""The column path (stream_app/batch_decode.py) gives exactly what the per-event path gives.

Random batches — clean ones, and ones with every kind of bad or unusual event (wrong types,
NaN, missing fields, ISO times, integer keys, late and far-too-late events, wrong partitions,
replays after a crash, batch messages as JSON arrays and as Arrow IPC streams, the two mixed
in one micro-batch) — go through two processors, one allowed to use the
column path and one held to the per-event path; every output must be byte-identical.
"""

from __future__ import annotations

import json

import pyarrow as pa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fake_pipeline import FakePipeline
from stream_app import arrow_messages, batch_decode
from stream_app.processor import BatchProcessor, InMessage, Limits, default_partition

P = 4
NOW = 2_000_000_000.0
KEYS = ["a", "b", "c", "d", "e"]

odd_values = st.sampled_from([None, True, "12", float("nan"), float("inf"), 2 ** 70, 10 ** 400, [1]])
odd_times = st.sampled_from([None, True, "2030-01-01T00:00:00+00:00", "2030-01-01T00:00:00", "x",
                             float("nan"), NOW + 10 ** 6])
odd_keys = st.sampled_from([None, "", "\x00k", 7, True, 3.5])


@st.composite
def batches(draw):
    """Events with mostly increasing times per key; each field sometimes replaced by an odd value."""
    odd = draw(st.booleans())  # half the examples clean: the column path must take those
    n = draw(st.integers(1, 60))
    clock = {k: 1000.0 for k in KEYS}
    events = []
    for _ in range(n):
        k = draw(st.sampled_from(KEYS))
        clock[k] += draw(st.sampled_from([1.0, 2.5, 0.0]))
        t = clock[k] - (draw(st.sampled_from([0.0, 0.0, 0.0, 5.0, 1000.0])) if odd else 0.0)
        e = {"service": k, "time": t, "requests": draw(st.integers(0, 500) | st.floats(0, 500)),
             "latency_ms": draw(st.floats(0, 50) | st.none()), "status": draw(st.sampled_from(["ok", None]))}
        if odd and draw(st.integers(0, 9)) == 0:
            field = draw(st.sampled_from(["service", "time", "requests", "latency_ms", "status", "drop"]))
            if field == "drop":
                e.pop(draw(st.sampled_from(sorted(e))))
            else:
                e[field] = draw({"service": odd_keys, "time": odd_times}.get(field, odd_values))
        events.append(e)
    per_message = draw(st.sampled_from([1, 1, 3]))
    wrong_partition = odd and draw(st.integers(0, 4)) == 0
    fmt = draw(st.sampled_from(["json", "json", "arrow", "mixed"]))
    return events, per_message, wrong_partition, fmt


# The Arrow type of each column of the property test's events; a column whose odd values do not
# fit it is written as text (a mistyped column: the whole message is a dead letter).
ARROW_TYPES = {"service": pa.string(), "time": pa.float64(), "requests": pa.float64(),
               "latency_ms": pa.float64(), "status": pa.string()}


def arrow_message(evs):
    cols = {}
    for name, ty in ARROW_TYPES.items():
        vals = [e.get(name) for e in evs]  # an absent field: null in its row
        try:
            cols[name] = pa.array(vals, ty)
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
            cols[name] = pa.array([None if v is None else repr(v) for v in vals], pa.string())
    return arrow_messages.encode_table(pa.table(cols))


def encode(events, per_message, wrong_partition, start_offsets, fmt="json"):
    """(partition, value) messages; keys on their murmur2 partition unless ``wrong_partition``."""
    out, offsets = [], dict(start_offsets)
    groups: dict[int, list] = {}
    for e in events:
        k = e.get("service")
        p = default_partition(str(k), P) if isinstance(k, (str, int)) and not isinstance(k, bool) else 0
        if wrong_partition and k == "c":
            p = (p + 1) % P
        groups.setdefault(p, []).append(e)
        if len(groups[p]) >= per_message:
            out.append((p, groups.pop(p)))
    out += list(groups.items())
    msgs = []
    for i, (p, evs) in enumerate(out):
        if fmt == "arrow" or (fmt == "mixed" and i % 2):
            value = arrow_message(evs)
        else:
            value = json.dumps(evs[0] if per_message == 1 else evs).encode()
        msgs.append(InMessage("ev", p, offsets[p], value))
        offsets[p] += 1
    return msgs, offsets


class Table(dict):
    def load(self, key, partition):
        return self.get((key, partition))


def outputs(out):
    return (sorted(m.value for m in out.alerts), sorted(m.value for m in out.scores),
            sorted(json.loads(m.value)["reason"] + json.loads(m.value)["detail"] for m in out.dead_letters),
            sorted(out.states), out.events_in, out.scored, out.skipped_replayed, out.late)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(batches(), min_size=1, max_size=4), st.booleans())
def test_column_path_equals_per_event_path(stream, replay):
    pipe = FakePipeline(threshold=0.6)
    limits = Limits(emit_scores=True, max_out_of_order_s=30.0)
    procs = [BatchProcessor(limits, P, clock=lambda: NOW, by_columns=c) for c in (True, False)]
    tables = [Table(), Table()]
    offsets = {p: 0 for p in range(P)}
    for events, per_message, wrong, fmt in stream:
        msgs, next_offsets = encode(events, per_message, wrong, offsets, fmt)
        # a replay: the batch is processed twice (as after a crash before the commit)
        rounds = 2 if replay else 1
        for _ in range(rounds):
            results = []
            for proc, table in zip(procs, tables):
                out = proc.process(msgs, pipe, table.load)
                for key, part, value in out.states:
                    table[(key, part)] = value
                results.append(outputs(out))
            assert results[0] == results[1]
        offsets = next_offsets


def test_clean_batches_take_the_column_path():
    pipe = FakePipeline()
    events = [{"service": k, "time": 1000.0 + i, "requests": 100 + i % 7, "latency_ms": None,
               "status": "ok"} for i in range(50) for k in KEYS]
    events[7]["time"] -= 2.0  # late within the tolerance: still the column path
    for per_message, fmt in [(1, "json"), (10, "json"), (10, "arrow"), (10, "mixed"), (1, "arrow")]:
        msgs, _ = encode(events, per_message, False, {p: 0 for p in range(P)}, fmt)
        acc = batch_decode.accept_columns(msgs, BatchProcessor(Limits(), P).schema(pipe), Limits(), P,
                                          default_partition, Table().load, NOW)
        assert acc is not None and len(acc) == len(events) and acc.late == 1
