"""Reading back a range of event messages that Faust did not deliver (real broker)."""

from __future__ import annotations

import asyncio

import pytest

from stream_app.gap_fill import GapFiller
from stream_app.produce import produce

pytestmark = pytest.mark.kafka


def test_gap_filler_reads_exactly_the_missing_range_in_order(kafka_bootstrap, kafka_topics):
    (topic,) = kafka_topics("events", partitions=2)
    msgs = [(1, b"k", f"m{i}".encode()) for i in range(20)] + [(0, b"j", b"other")]
    sent = {}
    assert asyncio.run(produce(kafka_bootstrap, topic, msgs,
                               on_sent=lambda md, t: sent.__setitem__((md.partition, md.offset), t))) == 21
    # on_sent saw every message where the broker put it
    assert sorted(sent) == [(0, 0)] + [(1, i) for i in range(20)]

    async def run():
        filler = GapFiller(kafka_bootstrap)
        try:
            a = await filler.fetch(topic, 1, 5, 9)
            b = await filler.fetch(topic, 1, 18, 20)   # up to the end of the partition
            c = await filler.fetch(topic, 0, 0, 1)
        finally:
            await filler.close()
        return a, b, c

    a, b, c = asyncio.run(run())
    assert [(m.offset, m.value) for m in a] == [(i, f"m{i}".encode()) for i in range(5, 9)]
    assert [m.offset for m in b] == [18, 19] and all(m.partition == 1 and m.topic == topic for m in b)
    assert [m.value for m in c] == [b"other"]


def test_a_range_read_back_lets_fausts_commits_pass_it(tmp_path):
    """Faust commits a partition only up to its first offset never acked: a range it skipped
    (never delivered, never acked) held that partition's commits back for good, and in
    exactly-once mode its transaction with them (the SIGKILL test's rare timeout)."""
    import faust
    from faust.types import TP

    from stream_app.gap_fill import mark_done

    app = faust.App("gap-test", broker="kafka://127.0.0.1:1", datadir=str(tmp_path), autodiscover=False)
    consumer = app.consumer  # created, never started: no broker needed
    tp = TP("events", 0)
    consumer._committed_offset[tp] = 41  # committed up to 40; Faust skipped 41..60
    consumer._acked[tp] = [61, 62, 63]  # later events, processed and acked
    consumer._acked_index[tp].update([61, 62, 63])
    assert consumer._new_offset(tp) is None  # stuck: the skipped range was never acked

    asyncio.run(mark_done(consumer, "events", 0, 41, 61))
    assert consumer._new_offset(tp) == 64  # the next commit steps over the range read back
