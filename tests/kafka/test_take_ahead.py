"""TakeAhead's filling past ``within`` while the broker holds more (no broker: the part of the
stream it uses is its wait; the whole take runs in every stream worker test)."""
from __future__ import annotations

import asyncio

from stream_app.take_ahead import TakeAhead


class _Stream:
    """What ``_fill_from_backlog`` uses of a Faust stream."""

    async def wait_for_stopped(self, event: asyncio.Event, timeout: float) -> bool:
        try:
            await asyncio.wait_for(event.wait(), timeout)
        except asyncio.TimeoutError:
            pass
        return False  # never stopped here


def _fill(buffer: list, backlog, feed=None, within: float = 0.01) -> tuple[list, float]:
    """Run the fill with ``feed(buffer, full)`` beside it; (buffer, seconds it took)."""
    take = TakeAhead(_Stream(), max_events=100, within=within, backlog=backlog)

    async def run() -> float:
        full = asyncio.Event()
        feeder = asyncio.ensure_future(feed(buffer, full)) if feed else None
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        await take._fill_from_backlog(buffer, full)
        took = loop.time() - t0
        if feeder:
            feeder.cancel()
        return took

    return buffer, asyncio.run(run())


def _handing_over(answers: list[int]):
    """A backlog check that also stands for Faust handing a message over before each step
    (deterministic, whatever the machine's timing): the broker holds ``answers[i]`` more."""
    answers = list(answers)

    def backlog(buffer: list) -> int:
        buffer.append("handed over")
        return answers.pop(0) if len(answers) > 1 else answers[0]
    return backlog


def test_keeps_taking_while_the_broker_holds_more_and_messages_come():
    buffer, _ = _fill(["first"], _handing_over([3, 3, 3, 3, 0]), within=1.0)
    assert buffer[0] == "first" and buffer.count("handed over") == 5


def test_stops_when_the_broker_holds_nothing_more():
    buffer, took = _fill(["first"], lambda b: 0, within=1.0)
    assert buffer == ["first"] and took < 0.5      # no step waited


def test_stops_after_a_step_that_brings_nothing():
    buffer, took = _fill(["first"], lambda b: 10, within=1.0)  # more there, none handed over
    assert buffer == ["first"]
    assert took < 0.5                               # one step, not the 4 s deadline


def test_stops_at_the_deadline_or_when_full():
    buffer, took = _fill(["first"], _handing_over([10]), within=0.004)
    assert buffer.count("handed over") > 1
    assert 0.004 * TakeAhead.EXTEND_TIMES <= took < 0.5

    async def fill_up(buffer, full):
        await asyncio.sleep(0.0005)
        buffer.append("last")
        full.set()

    buffer, took = _fill(["first"], lambda b: 10, fill_up, within=1.0)
    assert took < 0.5 and buffer[0] == "first"
