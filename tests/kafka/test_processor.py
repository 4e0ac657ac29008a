"""The batch processor (decode → per-key state → one step → outputs), without a broker."""

from __future__ import annotations

import json

import pytest

from fake_pipeline import FakePipeline
from stream_app.processor import BatchProcessor, InMessage, Limits, default_partition
from stream_app.stored_state import StoredState

P = 4


def ev(key: str, t: float, requests: float = 100.0, latency: float = 10.0) -> dict:
    return {"service": key, "time": t, "requests": requests, "latency_ms": latency, "status": "ok"}


def stream(n: int = 60, keys=("a", "b", "c")) -> list[InMessage]:
    """One event per message, keyed correctly, with a spike at event 40 of key 'b'."""
    offsets = {p: 0 for p in range(P)}
    out = []
    for i in range(n):
        for k in keys:
            r = 100.0 + (i % 5)
            if k == "b" and i == 40:
                r = 900.0
            p = default_partition(k, P)
            out.append(InMessage("ev", p, offsets[p], json.dumps(ev(k, 1000.0 + i, r)).encode()))
            offsets[p] += 1
    return out


class Table(dict):
    """A stand-in for the Faust table: (key, partition) → bytes."""

    def load(self, key, partition):
        return self.get((key, partition))

    def apply(self, out):
        for key, part, value in out.states:
            self[(key, part)] = value


def run(proc, pipe, table, messages, batch):
    outs = []
    for i in range(0, len(messages), batch):
        out = proc.process(messages[i:i + batch], pipe, table.load)
        table.apply(out)
        outs.append(out)
    return outs


def scores_of(outs):
    return [row for o in outs for m in o.scores for row in json.loads(m.value)]


def alerts_of(outs):
    return [json.loads(m.value) for o in outs for m in o.alerts]


def proc(**kw) -> BatchProcessor:
    return BatchProcessor(Limits(emit_scores=True, **kw), P, clock=lambda: 2_000_000_000.0)


def test_batch_boundaries_do_not_change_scores_or_alerts():
    msgs = stream()
    ref = run(proc(), FakePipeline(), Table(), msgs, len(msgs))
    for batch in (1, 7, 50):
        outs = run(proc(), FakePipeline(), Table(), msgs, batch)
        assert sorted((s["key"], s["time"], s["score"]) for s in scores_of(outs)) == \
            sorted((s["key"], s["time"], s["score"]) for s in scores_of(ref))
        assert [a["alert_id"] for a in alerts_of(outs)] == [a["alert_id"] for a in alerts_of(ref)]
    (alert,) = alerts_of(ref)
    assert alert["key"] == "b" and alert["time"] == 1040.0
    assert alert["source"]["partition"] == default_partition("b", P)


def test_replayed_messages_are_skipped_not_applied_twice():
    msgs = stream()
    table = Table()
    first = run(proc(), FakePipeline(), table, msgs[:100], 30)
    # a crash after the state write but before the offset commit: the last 25 come again
    replay = run(proc(), FakePipeline(), table, msgs[75:], 30)
    ref = run(proc(), FakePipeline(), Table(), msgs, 30)
    assert sum(o.skipped_replayed for o in replay) == 25
    got = {(s["key"], s["time"]): s["score"] for s in scores_of(first + replay)}
    want = {(s["key"], s["time"]): s["score"] for s in scores_of(ref)}
    assert got == want
    assert len(scores_of(first + replay)) == len(msgs)


def test_late_events_within_tolerance_are_scored_at_latest_time_and_far_ones_dead_lettered():
    p = default_partition("a", P)
    msgs = [InMessage("ev", p, i, json.dumps(ev("a", t)).encode())
            for i, t in enumerate([100.0, 200.0, 150.0, 199.0, 250.0])]
    out = proc(max_out_of_order_s=40).process(msgs, FakePipeline(), Table().load)
    assert [s["time"] for s in scores_of([out])] == [100.0, 200.0, 200.0, 250.0]
    assert out.late == 1
    (dl,) = [json.loads(m.value) for m in out.dead_letters]
    assert dl["reason"] == "out_of_order" and dl["offset"] == 2 and "50.0 s before" in dl["detail"]


def test_wrong_partition_is_dead_lettered_and_check_can_be_off():
    right = default_partition("a", P)
    wrong = (right + 1) % P
    msg = InMessage("ev", wrong, 0, json.dumps(ev("a", 1.0)).encode())
    out = proc().process([msg], FakePipeline(), Table().load)
    assert out.scored == 0 and json.loads(out.dead_letters[0].value)["reason"] == "wrong_partition"
    out = proc(check_partition=False).process([msg], FakePipeline(), Table().load)
    assert out.scored == 1 and out.dead_letters == []


def test_batch_message_and_bad_elements():
    p = default_partition("a", P)
    batch = [ev("a", 1.0), {"service": "a"}, ev("a", 2.0)]
    out = proc().process([InMessage("ev", p, 9, json.dumps(batch).encode())], FakePipeline(), Table().load)
    assert out.scored == 2 and out.events_in == 3 and out.dead_letter_reasons == ["missing_field"]
    (key, part, blob) = out.states[0]
    st = StoredState.from_bytes(blob, key)
    assert (key, part, st.offset, st.index, st.latest_time) == ("a", p, 9, 2, 2.0)
    assert st.applied(9, 1) and st.applied(8, None) and not st.applied(10, None)


def test_stored_state_goes_to_a_new_model_version_too():
    msgs = stream(30, keys=("a",))
    table = Table()
    run(proc(), FakePipeline("v1"), table, msgs[:25], 25)
    seen = {}

    class Spy(FakePipeline):
        def step(self, events, states):
            seen.update(states)
            return super().step(events, states)

    run(proc(), Spy("v2"), table, msgs[25:], 25)
    assert seen["a"] is not None  # the pipeline decides whether it fits (docs/contracts.md)
    (blob,) = table.values()
    assert StoredState.from_bytes(blob, "a").model_version == "v2"


def test_pipeline_breaking_the_contract_is_named():
    class Broken(FakePipeline):
        def step(self, events, states):
            res = super().step(events, states)
            res.states.clear()
            return res

    from stream_app.processor import PipelineContractError

    with pytest.raises(PipelineContractError, match="no state"):
        proc().process(stream(2), Broken(), Table().load)


def test_real_pipeline_through_the_processor_equals_one_batch_score():
    """The driver adds nothing to the numbers: micro-batches of JSON messages (one value left
    out, so imputed) score as the pipeline's own batch path over the same events."""
    import math

    import numpy as np
    import pyarrow as pa

    from ember_models.config import parse_config
    from ember_models.pipeline import Pipeline
    from stream_app.sample import make_sample

    sample = make_sample(seed=2, n_keys=3, events_per_key=300)
    rows = sample.events.to_pylist()
    cfg = parse_config({"data": {"key_field": "service", "time_field": "time",
                                 "value_fields": ["requests", "latency_ms"], "categorical_fields": ["status"]},
                        "model": {"warmup_events": 30}})
    pipe = Pipeline(cfg).fit(pa.Table.from_pylist(rows[:300]))
    live = rows[300:]
    del live[50]["latency_ms"]
    offsets = {p: 0 for p in range(P)}
    msgs = []
    for r in live:
        p = default_partition(r["service"], P)
        msgs.append(InMessage("ev", p, offsets[p], json.dumps(r).encode()))
        offsets[p] += 1
    outs = run(proc(), pipe, Table(), msgs, 37)
    got = {(s["key"], s["time"]): s["score"] for s in scores_of(outs)}
    table = pa.Table.from_pylist([dict(r, latency_ms=r.get("latency_ms", math.nan)) for r in live])
    want = pipe.score(table)
    keys, times, scores = (want.column(c).to_pylist() for c in ("key", "time", "score"))
    assert len(got) == len(live)
    assert np.allclose([got[(k, t)] for k, t in zip(keys, times)], scores, atol=1e-6, rtol=0)
