"""The inline hand-over (stream_app.message_handover) on a real ``mode.Service``, called as
Faust's fetcher calls it: ``wait_first(callback(message), consumer.suspend_flow.wait())``.
(No broker: every stream worker test runs it against the real one.)"""
from __future__ import annotations

import asyncio
import warnings

import pytest
from mode import Service

from stream_app import message_handover


class _Consumer(Service):
    """What the hand-over uses of Faust's consumer: a Service with ``suspend_flow``."""

    def __post_init__(self) -> None:
        self.suspend_flow = asyncio.Event()


def _run(body):
    async def main():
        consumer = _Consumer()
        message_handover.install(consumer)
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # e.g. a flow wait never awaited
            return await body(consumer)
    return asyncio.run(main())


def _tasks_made(loop: asyncio.AbstractEventLoop) -> list:
    made: list = []
    create = loop.create_task

    def counting(coro, **kwargs):
        made.append(coro)
        return create(coro, **kwargs)

    loop.create_task = counting  # type: ignore[method-assign]
    return made


def test_a_delivery_that_completes_at_once_makes_no_task():
    async def body(consumer):
        delivered = []

        async def callback(message):
            delivered.append(message)
            return "done"

        made = _tasks_made(asyncio.get_running_loop())
        for m in range(5):
            res = await consumer.wait_first(callback(m), consumer.suspend_flow.wait())
            assert res.results == ["done"] and not res.stopped
        assert delivered == [0, 1, 2, 3, 4]
        return list(made)  # (asyncio.run makes its own tasks after this)

    assert _run(body) == []


def test_a_delivery_that_waits_finishes_in_a_task_with_what_it_awaited():
    async def body(consumer):
        room = asyncio.Queue(maxsize=1)
        room.put_nowait("occupied")
        seen = []

        async def callback(message):
            await room.put(message)  # full: waits until the stream takes one
            seen.append(message)
            return message * 2

        async def stream():
            await asyncio.sleep(0.01)
            return room.get_nowait()

        taker = asyncio.ensure_future(stream())
        res = await consumer.wait_first(callback(21), consumer.suspend_flow.wait())
        assert await taker == "occupied"
        assert res.results == [42] and not res.stopped
        assert seen == [21] and room.get_nowait() == 21

    _run(body)


def test_a_rebalance_cancels_a_waiting_delivery_as_faust_does():
    async def body(consumer):
        room = asyncio.Queue(maxsize=1)
        room.put_nowait("occupied")
        outcome = []

        async def callback(message):
            try:
                await room.put(message)
            except asyncio.CancelledError:
                outcome.append("cancelled")
                raise
            outcome.append("delivered")

        async def rebalance():
            await asyncio.sleep(0.01)
            consumer.suspend_flow.set()  # Faust's stop_flow

        asyncio.ensure_future(rebalance())
        res = await consumer.wait_first(callback(1), consumer.suspend_flow.wait())
        await asyncio.sleep(0)  # the cancellation reaches the callback
        assert outcome == ["cancelled"] and room.qsize() == 1
        assert len(res.done) == 1 and res.results == [True] and not res.stopped

    _run(body)


def test_errors_of_the_delivery_propagate_at_once_or_after_a_wait():
    async def body(consumer):
        async def fails_now(message):
            raise ValueError("bad now")

        async def fails_later(message):
            await asyncio.sleep(0.001)
            raise ValueError("bad later")

        with pytest.raises(ValueError, match="bad now"):
            await consumer.wait_first(fails_now(1), consumer.suspend_flow.wait())
        with pytest.raises(ValueError, match="bad later"):
            await consumer.wait_first(fails_later(1), consumer.suspend_flow.wait())

    _run(body)


def test_other_calls_and_a_suspended_flow_go_to_faust_unchanged():
    async def body(consumer):
        other = asyncio.Event()
        asyncio.get_running_loop().call_later(0.005, other.set)
        res = await consumer.wait_first(other, timeout=1.0)  # not a hand-over: Faust's own
        assert res.done == [other] and not res.stopped

        consumer.suspend_flow.set()
        ran = []

        async def callback(message):
            ran.append(message)

        made = _tasks_made(asyncio.get_running_loop())
        await consumer.wait_first(callback(7), consumer.suspend_flow.wait())
        assert len(made) >= 2  # Faust's path: a task for each argument
        await asyncio.sleep(0)
        assert ran in ([], [7])  # both may run, as with Faust's wait_first
        return True

    assert _run(body)


def test_install_is_idempotent():
    async def body(consumer):
        first = consumer.wait_first
        message_handover.install(consumer)
        return consumer.wait_first is first

    assert _run(body)


def test_faust_still_hands_messages_over_the_way_install_expects():
    """The inline path applies to one call of the pinned Faust's fetcher; if an upgrade
    changes its shape, every message silently goes through Faust's tasks again."""
    import inspect
    import re

    from faust.transport.consumer import Consumer

    source = inspect.getsource(Consumer._drain_messages)
    call = re.search(r"self\.wait_first\(\s*callback\(message\),\s*self\.suspend_flow\.wait\(\)\s*\)",
                     source)
    assert call is not None
