"""Faust's consumer hands each fetched message to the streams without four tasks a message.

Faust's fetcher (``Consumer._drain_messages``, faust-streaming 0.15.3) passes every message to
the conductor through ``Service.wait_first(callback(message), suspend_flow.wait())``, so that a
rebalance (``stop_flow`` sets ``suspend_flow``) can abandon a message whose delivery waits on a
full stream buffer. ``wait_first`` makes a task of each argument and of the service's stopped
and crashed events, waits for the first, and cancels the rest: four tasks, ``asyncio.wait``
and three turns of the event loop for every message, although delivery almost always completes
at once (the stream's queue has room). In an agent that only takes batches that machinery
was ~45 % of the event loop's busy time (py-spy), and what a worker takes in between two model
steps bounds its intake when it keeps up (docs/performance.md, sessions 14-15).

``install(consumer)`` gives the consumer a ``wait_first`` that runs that one call's callback
inline up to its first suspension: finished there (the common case), the result is the one
``wait_first`` would return, with no task made; suspended (the buffer is full), the rest of
the callback and the flow's event go to Faust's own ``wait_first`` as before, so a rebalance
still cancels it. Every other call, and every call while the flow is suspended or the
consumer stopping, goes to Faust's ``wait_first`` unchanged.
"""

from __future__ import annotations

from collections.abc import Coroutine, Generator
from typing import Any

from mode.services import WaitResults


class _Rest:
    """The rest of a coroutine that has run up to its first suspension (``yielded``): an
    awaitable that a task can drive on, forwarding what the task sends or throws in."""

    def __init__(self, coro: Coroutine, yielded: Any):
        self.coro = coro
        self.yielded = yielded

    def __await__(self) -> Generator[Any, Any, Any]:
        coro, yielded = self.coro, self.yielded
        while True:
            try:
                sent = yield yielded
            except GeneratorExit:
                coro.close()
                raise
            except BaseException as exc:  # a cancellation included: into the callback
                try:
                    yielded = coro.throw(exc)
                except StopIteration as stop:
                    return stop.value
            else:
                try:
                    yielded = coro.send(sent)
                except StopIteration as stop:
                    return stop.value


def install(consumer: Any) -> None:
    """Replace ``consumer.wait_first`` (an instance attribute: Faust's fetcher looks it up for
    every message) by the inline hand-over. Idempotent."""
    if "wait_first" in vars(consumer):
        return
    faust_wait_first = consumer.wait_first

    def is_handover(coros: tuple, timeout: Any, flow: Any) -> bool:
        # exactly ``wait_first(callback(message), self.suspend_flow.wait())``
        if timeout is not None or len(coros) != 2:
            return False
        waiting = coros[1]
        frame = getattr(waiting, "cr_frame", None)
        return (getattr(waiting, "cr_code", None) is type(flow).wait.__code__
                and frame is not None and frame.f_locals.get("self") is flow
                and hasattr(coros[0], "send"))

    async def wait_first(*coros: Any, timeout: Any = None) -> WaitResults:
        flow = consumer.suspend_flow  # (looked up as Faust's own wait_first does its events)
        if (not is_handover(coros, timeout, flow) or flow.is_set() or consumer._stopped.is_set()
                or consumer._crashed.is_set()):
            return await faust_wait_first(*coros, timeout=timeout)
        callback, flow_waiting = coros
        try:
            yielded = callback.send(None)
        except StopIteration as done:
            flow_waiting.close()
            return WaitResults([callback], [done.value], False)
        except BaseException:
            flow_waiting.close()
            raise
        return await faust_wait_first(_Rest(callback, yielded), flow_waiting)

    consumer.wait_first = wait_first
