"""Key states waiting for the table: what a flush round sends, and in which order."""

from __future__ import annotations

from stream_app.pending_states import PendingStates

C = b"\x00cursor"


def filled(clock=lambda: 0.0) -> PendingStates:
    ps = PendingStates(C, clock=clock)
    for p in range(2):
        for k in range(5):
            ps.put(p, b"k%d" % k, b"v%d-%d" % (p, k))
        ps.put(p, C, b"cursor%d" % p)
    return ps


def test_a_round_sends_each_cursor_after_all_its_partitions_states_and_the_latest_values():
    ps = filled()
    sent = ps.take_some(3)
    ps.put(0, b"k0", b"newer")      # a later batch: the round sends the newest value of k0
    ps.put(0, C, b"cursor0-later")  # but the cursor as the round began (the newer one waits)
    assert ps.due(1e9)              # a round in progress continues whatever the interval
    while ps.due(1e9):
        sent += ps.take_some(3)
    for p in range(2):
        mine = [k for k, q, _ in sent if q == p]
        assert sorted(mine[:-1]) == [b"k%d" % k for k in range(5)] and mine[-1] == C
    assert (b"k0", 0, b"newer") in sent and (C, 0, b"cursor0") in sent
    assert ps.get(0, C) == b"cursor0-later" and len(ps) == 1


def test_values_stay_readable_until_stored_and_are_dropped_on_rebalance():
    class Done:
        def done(self):
            return True

    now = [0.0]
    ps = filled(clock=lambda: now[0])
    assert not ps.due(1.0)
    now[0] = 1.5
    assert ps.due(1.0)
    writes = ps.take()
    ps.sent(writes, [Done()] * len(writes), {0: "e0", 1: "e1"})
    assert ps.get(1, b"k3") == b"v1-3" and len(ps) == 0
    assert len(ps.take_sent(done_only=True)) == len(writes) and ps.get(1, b"k3") is None
    ps.put(0, b"k1", b"x")
    ps.put(1, b"k1", b"y")
    ps.drop({1})
    assert ps.get(0, b"k1") == b"x" and ps.get(1, b"k1") is None
