"""Micro-batches from a Faust stream with one batch of look-ahead, acked when the agent says.

Faust's ``stream.take_events(n, within=...)`` stops filling its buffer while the agent works
on the batch it yielded (``buffer_consuming``), and acks that batch as soon as the agent asks
for the next. The worker overlaps batches (stream_app.app: the model steps one batch in the
compute process while the event loop prepares the next), so it needs both changed: the next
batch fills while the current one is processed, and a batch's events are acked only once its
outputs and states are written (``ack``), never by taking the next batch: Faust commits acked
offsets, so an event acked before its outputs exist would be lost by a crash.

Past ``within``, a batch that is not full keeps filling while the broker holds more messages
of its partitions (``backlog``) and each short step brings some: in a worker that keeps up,
Faust hands messages over only between model steps (each blocks the event loop), ~0.1-0.2 ms
apiece through Faust's own path (~0.05 ms with ``stream_app.message_handover``), and aiokafka
fetches a partition again only once the last fetch is handed over, so a fixed window let a
backlog build on the broker while the worker waited out its 10 ms (docs/streaming.md;
measured in docs/performance.md, sessions 14-15).

Same parts of Faust as ``take_events`` (faust-streaming 0.15.3): a stream processor adds each
event to the buffer, the stream is consumed passively in the background, acks are disabled on
the stream while this runs and done by ``Stream.ack``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any


class TakeAhead:
    """``async for events in TakeAhead(stream, n, within).batches()``: lists of at most ``n``
    events; an empty list when ``within`` seconds pass without a full batch and nothing came
    (so the agent can finish work in flight). The buffer holds at most ``n`` events: while the
    agent has not taken it, the stream waits (back-pressure)."""

    #: While the broker holds more: the buffer keeps filling in steps of this, as long as each
    #: step brings messages, for at most ``EXTEND_TIMES`` × ``within`` after ``within``.
    EXTEND_STEP_S = 0.002
    EXTEND_TIMES = 4

    def __init__(self, stream: Any, max_events: int, within: float,
                 backlog: Callable[[list], int] | None = None):
        self.stream = stream
        self.max_events = max_events
        self.within = within
        self.backlog = backlog

    async def batches(self) -> AsyncIterator[list]:
        stream = self.stream
        max_events = self.max_events
        buffer: list = []
        full = asyncio.Event()
        space = asyncio.Event()
        space.set()

        async def add_to_buffer(value: Any) -> Any:
            event = stream.current_event
            if event is None:  # as take_events: a value with no event cannot be acked
                raise RuntimeError("take-ahead buffer found current_event None")
            buffer.append(event)
            if len(buffer) >= max_events:
                full.set()
                space.clear()
                await stream.wait(space)  # until the agent takes this batch
            return value

        enable_acks = stream.enable_acks
        stream.enable_acks = False  # acked by ``ack`` once the batch is done
        stream.add_processor(add_to_buffer)
        stream._enable_passive(aiter(stream.channel))
        try:
            while not stream.should_stop:
                await stream.wait_for_stopped(full, timeout=self.within)
                if self.backlog is not None and buffer and not full.is_set():
                    await self._fill_from_backlog(buffer, full)
                batch = buffer[:]
                buffer.clear()
                full.clear()
                space.set()
                yield batch
        finally:
            stream.enable_acks = enable_acks
            stream._processors.remove(add_to_buffer)

    async def _fill_from_backlog(self, buffer: list, full: asyncio.Event) -> None:
        """Past ``within``, keep taking what Faust hands over while the broker holds more
        messages of the buffer's partitions (``backlog``) and each step brings some."""
        loop, backlog, step = asyncio.get_running_loop(), self.backlog, self.EXTEND_STEP_S
        deadline = loop.time() + self.within * self.EXTEND_TIMES
        n = len(buffer)
        while backlog(buffer) > 0 and loop.time() < deadline:
            if await self.stream.wait_for_stopped(full, timeout=step) or full.is_set():
                return
            if len(buffer) == n:
                return  # nothing more came: the rest is not fetched yet
            n = len(buffer)

    async def ack(self, events: Sequence[Any]) -> None:
        """The batch's outputs and states are written: Faust may commit past its events."""
        ack = self.stream.ack
        for event in events:
            await ack(event)
