"""The recovery watchdog's decisions and actions on stand-ins for Faust's recovery and consumer
(pure logic; the stall itself is a broker-and-timing matter, see stream_app/recovery_watch.py)."""

from __future__ import annotations

import asyncio
from collections import Counter
from time import monotonic
from types import SimpleNamespace

from stream_app.recovery_watch import RecoveryWatch, stalled_partitions


class FakeRecovery:
    def __init__(self, started_ago: float, offsets: dict, highwaters: dict, received_ago: dict):
        now = monotonic()
        self.in_recovery = True
        self._recovery_started_at = now - started_ago
        self.active_offsets = Counter(offsets)
        self.highwaters = highwaters
        self._active_events_received_at = {tp: now - ago for tp, ago in received_ago.items()}

    def active_remaining(self) -> Counter:
        return Counter({tp: hw - self.active_offsets[tp] for tp, hw in self.highwaters.items()})


class FakeConsumer:
    def __init__(self):
        self.sought: list[dict] = []
        self.resumed: list[set] = []
        self.suspend_flow = asyncio.Event()

    async def seek_wait(self, offsets):
        self.sought.append(dict(offsets))

    def resume_partitions(self, tps):
        self.resumed.append(set(tps))


def test_only_partitions_with_records_left_and_none_received_for_long_are_stalled():
    rec = FakeRecovery(started_ago=30, offsets={"a": -1, "b": 4, "c": 9, "d": 2},
                       highwaters={"a": 19, "b": 10, "c": 9, "d": 8}, received_ago={"b": 1.0, "d": 25.0})
    assert stalled_partitions(rec, monotonic(), stall_s=20) == {"a": 0, "d": 2}
    assert stalled_partitions(rec, monotonic(), stall_s=40) == {}  # not for long enough
    rec.in_recovery = False
    assert stalled_partitions(rec, monotonic(), stall_s=20) == {}


def test_events_of_an_earlier_recovery_do_not_count():
    rec = FakeRecovery(started_ago=5, offsets={"a": 3}, highwaters={"a": 9}, received_ago={"a": 60.0})
    assert stalled_partitions(rec, monotonic(), stall_s=20) == {}  # this recovery began 5 s ago


def test_check_seeks_stalled_partitions_again_and_releases_a_blocked_fetch_loop():
    async def run():
        rec = FakeRecovery(started_ago=30, offsets={"a": -1, "b": 4}, highwaters={"a": 19, "b": 10},
                           received_ago={"b": 1.0})
        consumer = FakeConsumer()
        app = SimpleNamespace(tables=SimpleNamespace(recovery=rec), consumer=consumer)
        watch = RecoveryWatch(app, stall_s=20)
        blocked = asyncio.ensure_future(consumer.suspend_flow.wait())  # the fetch loop's wait
        await asyncio.sleep(0)
        assert await watch.check()
        await asyncio.wait_for(blocked, 1.0)  # released
        assert not consumer.suspend_flow.is_set()  # and the flow runs on
        assert consumer.sought == [{"a": 0}] and consumer.resumed == [{"a"}]
        assert watch.kicks == 1
        assert not await watch.check()  # the new reads get a full stall period
        rec.in_recovery = False
        assert not await watch.check()

    asyncio.run(run())
