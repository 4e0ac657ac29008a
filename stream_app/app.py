"""The Faust app: consume events, score them per micro-batch, publish alerts, keep per-key state.

One agent (concurrency 1) reads the events topic as raw bytes and takes micro-batches of at most
``batch_size`` messages, waiting ``batch_max_wait_s`` (longer while the broker holds more of the
batch's partitions and messages keep coming) (``stream_app.take_ahead``: Faust's
``take_events`` with one batch of look-ahead and acks left to the agent). Two batches are in
the worker at a time:

- the next one is *read ahead*: its messages grouped by partition and decoded by column
  (``BatchProcessor.decode``), nothing that needs a stored state;
- the one in flight is *stepped*: ``Pipeline.step`` in the compute process
  (``stream_app.compute_process``; in this thread when there is none), then *finished* by
  this module's I/O (below).

The next batch's checks (redelivered and skipped offsets, each key's stored state: replays,
order, ``BatchProcessor.accept``) start only when the batch in flight is finished, so states,
positions and offsets change in batch order exactly as with one batch at a time; only the
decoding overlaps the step. A batch stepped in this thread is finished before the next is
taken: its step blocks the event loop, and the next batch's wait would run out meanwhile.
Finishing a batch:

1. send alerts / scores / dead letters (exactly-once: and wait until the broker has them);
2. write each key's new state into the table (RocksDB + changelog topic): in exactly-once
   mode with every batch, after its outputs; in at-least-once mode at most every
   ``state_flush_interval_s``, in rounds of a few keys per batch, once the outputs sent
   before are acknowledged, without waiting for the broker (``stream_app.pending_states``
   says why and how nothing is lost; ``stream_app.state_writes`` writes). The stored state
   records the offset of the last event it includes, so a batch redelivered after a crash
   skips what the state already holds;
3. ack the batch's events: only now may Faust's periodic commit (which flushes the producer
   first) move the consumer offsets past them.

Faust details this module works around (see docs/streaming.md):

- Table reads and writes go to the RocksDB database and changelog partition of the *current
  event*; a micro-batch mixes partitions, so before touching a key's state the agent makes an
  event of that key's partition current (``faust.streams._current_event``).
- In exactly-once mode Faust routes a send into a partition's transaction only for topics the
  consumer subscribes to; outputs are therefore sent with the transactional id of their source
  partition explicitly, so they commit (or abort) with that partition's offsets.
- In exactly-once mode local RocksDB files may hold changes of an aborted transaction after a
  crash: they are discarded at start and the state is restored from the committed changelog.
- Exactly-once: a batch's outputs and state changes must share one transaction, but Faust
  commits from a timer task that can run between two sends; commits are held off while a batch
  sends (``CommitGuard``), and the changelog records are sent by the agent, not buffered.
- Concurrency stays 1: with more, Faust can commit an offset past messages still in flight.
- A table recovery can stall after a rebalance, receiving no changelog record although some
  are left to read; ``stream_app.recovery_watch`` restarts the reading of such partitions.
- Table recovery reads a changelog partition up to an end it gets wrong: exactly-once, from
  the fetch cache (empty for a partition not yet fetched: nothing restored), and past the last
  record (a commit marker: ~10 s of waiting); ``stream_app.recovery_highwaters`` asks the
  broker and reads the partition's tail.
- Faust's fetcher delivers every message through four tasks (``Service.wait_first``); the
  consumer gets an inline delivery for the common case (``stream_app.message_handover``).
- Faust does not create the parent of ``datadir`` nor the source topics (``stream_app.worker``
  does), and never decodes values (a decode error would stop the agent silently).
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import struct
import time
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import faust
from faust.streams import _current_event  # see the module docstring
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from . import compute_process, heap, message_handover, recovery_highwaters
from .gap_fill import GapFiller, mark_done
from .metrics import Metrics
from .model_watch import ModelHolder, ModelLoadError
from .pending_states import PendingStates
from .processor import BatchOutput, BatchProcessor, InMessage, Limits
from .producer_router import CommitGuard, ProducerRouter
from .recovery_watch import CHECK_EVERY_S, RecoveryWatch
from .state_writes import flush_states, store_sent, write_states
from .settings import StreamSettings
from .take_ahead import TakeAhead

log = logging.getLogger(__name__)

TABLE_NAME = "key-state"
# Table key of each partition's last processed offset (event keys cannot start with NUL).
CURSOR_KEY = b"\x00ember:partition-cursor"
_CURSOR = struct.Struct("<q")


@dataclass
class WorkerState:
    """What the agent, the timers and the web views share."""

    settings: StreamSettings
    holder: ModelHolder
    processor: BatchProcessor
    metrics: Metrics
    events_partitions: int
    gap_filler: GapFiller
    compute: compute_process.ComputeProcess | None = None  # None: the step runs in this thread
    pending: PendingStates = field(default_factory=lambda: PendingStates(CURSOR_KEY))
    unacked: list = field(default_factory=list)  # at-least-once: output sends not yet awaited
    positions: dict[int, int] = field(default_factory=dict)  # partition -> last processed offset
    # the latest event seen of each partition: it stands for that partition in table writes
    partition_event: dict[int, Any] = field(default_factory=dict)
    assignments: int = 0  # rebalances seen: positions from before one are not trusted
    last_batch_at: float | None = None
    started_at: float = field(default_factory=time.time)


def create_app(settings: StreamSettings, holder: ModelHolder, events_partitions: int) -> faust.App:
    """Build the Faust app (not started). ``holder`` has a loaded pipeline."""
    settings.datadir.mkdir(parents=True, exist_ok=True)  # Faust creates only the last level
    recovery_highwaters.install(settings.kafka_bootstrap, settings.client_kwargs())
    app = faust.App(
        settings.app_id,
        broker=settings.broker_url,
        broker_credentials=settings.faust_credentials(),
        store="rocksdb://",
        datadir=str(settings.datadir),
        processing_guarantee=settings.processing_guarantee,
        topic_partitions=events_partitions,
        topic_replication_factor=settings.replication_factor,
        topic_disable_leader=True,
        table_standby_replicas=0,
        broker_commit_interval=settings.commit_interval_s,
        broker_session_timeout=settings.session_timeout_s,
        broker_heartbeat_interval=settings.heartbeat_interval_s,
        producer_linger=settings.producer_linger_ms / 1000.0,
        producer_max_batch_size=settings.producer_max_batch_bytes,
        consumer_auto_offset_reset="earliest",
        key_serializer="raw",
        value_serializer="raw",
        web_enabled=settings.web_port > 0,
        web_port=settings.web_port or 6066,
        web_bind=settings.web_host,
        web_host=settings.web_host,
        autodiscover=False,
    )
    if settings.exactly_once:
        _discard_local_tables(app)
    metrics = Metrics()
    state = WorkerState(
        settings=settings,
        holder=holder,
        processor=BatchProcessor(Limits.from_settings(settings), events_partitions),
        metrics=metrics,
        events_partitions=events_partitions,
        gap_filler=GapFiller(settings.kafka_bootstrap, **settings.client_kwargs()),
    )
    if compute_process.wanted(settings.compute_process):
        # (made here, in the main thread: the child's "die with the parent" signal is tied to
        # the thread that starts it)
        state.compute = compute_process.ComputeProcess(settings.compute_threads)
        state.compute.load(holder.pipeline)  # in the background: ready before the first batch

        @app.on_before_shutdown.connect
        async def stop_compute(sender: Any, **kwargs: Any) -> None:
            if state.compute is not None:
                await asyncio.to_thread(state.compute.close)
    metrics.set_model(str(holder.pipeline.model_version))
    app.ember = state  # type: ignore[attr-defined]

    events = app.topic(settings.events_topic, partitions=events_partitions,
                       key_serializer="raw", value_serializer="raw")
    table = app.Table(TABLE_NAME, default=None, partitions=events_partitions,
                      key_type=bytes, value_type=bytes)  # app-wide serializers are "raw"
    producer_for = ProducerRouter(app, settings, events_partitions, table)

    @app.agent(events, concurrency=1)
    async def score(stream: faust.StreamT) -> None:
        message_handover.install(app.consumer)  # (stream_app.message_handover)
        guard = CommitGuard(app.consumer) if settings.exactly_once else None
        take = TakeAhead(stream, settings.batch_size, settings.batch_max_wait_s,
                         backlog=lambda buffered: _waiting(app, buffered))
        # Two batches at a time: the one in flight (model step, then outputs, states, acks: a
        # task) and the next, decoded meanwhile. Everything that reads or writes the stored
        # states, positions or offsets stays in batch order: the next batch's checks start
        # only once the one in flight is done.
        inflight: asyncio.Task | None = None
        try:
            async for batch in take.batches():
                if not batch:  # nothing new within the wait: let the batch in flight end here
                    if inflight is not None:
                        await inflight
                        inflight = None
                    continue
                ahead = _read_ahead(state, batch)
                if inflight is not None:
                    await inflight
                    inflight = None
                accepted = await _accept_batch(state, table, ahead)
                # A backlog (a batch's worth of messages or more waiting after this one): step
                # it in the compute process, overlapped with the next. A worker that keeps up
                # steps here, with no pickling and no second process competing for the cores
                # (at 40 and 70 k events/s, stepping every batch there, or every batch with
                # another batch's worth waiting, doubled the p99: docs/performance.md, session 9).
                there = state.compute is not None and _waiting(app, batch) >= settings.batch_size
                finishing = _finish_batch(app, state, table, producer_for, accepted, guard, take,
                                          there)
                if there:
                    inflight = asyncio.ensure_future(finishing)
                else:
                    # A step here blocks the event loop: done before the next batch's wait
                    # starts, or that wait runs out during the step and the next batch is only
                    # what Faust hands over in between (batches of ~550-1,300 events at 1.6-1.8x
                    # the cost per event were measured: docs/performance.md, session 9).
                    await finishing
        finally:
            if inflight is not None and not inflight.done():
                inflight.cancel()

    @app.on_partitions_assigned.connect
    async def forget_positions(sender: Any, assigned: Any = None, **kwargs: Any) -> None:
        # After a rebalance the table's per-partition cursor is the truth, not this process's
        # memory of partitions that may have been processed elsewhere meanwhile.
        state.positions.clear()
        state.pending.drop()  # states not yet written: the gap fill redoes their events
        state.partition_event.clear()
        state.assignments += 1

    @app.on_partitions_revoked.connect
    async def drop_pending(sender: Any, revoked: Any = None, **kwargs: Any) -> None:
        if not settings.exactly_once:
            try:  # the last flush's states (Faust has just flushed the producer) into the local store
                await store_sent(producer_for, table, state.pending)
            except Exception as exc:  # Faust's recovery replays them from the changelog
                log.warning("states of the last flush not stored locally: %r", exc)
        # Never write a revoked partition's states late: its next owner may have moved on.
        state.pending.drop({tp.partition for tp in revoked or () if tp.topic == settings.events_topic})

    if settings.model_poll_s > 0:
        @app.timer(interval=settings.model_poll_s)
        async def reload_model() -> None:
            try:
                changed = await holder.maybe_reload()
            except ModelLoadError:
                metrics.model_reload_errors.inc()
                return
            if changed:
                metrics.model_reloads.inc()
                metrics.set_model(str(holder.pipeline.model_version))
                heap.refreeze()  # the old model leaves the frozen heap (stream_app.heap)

    @app.task
    async def freeze_heap() -> None:
        # Faust's services, clients and tables made at start join the model in the frozen
        # heap, which full garbage collections skip (stream_app.heap: they paused the
        # agent 112-122 ms).
        heap.freeze()

    @app.timer(interval=2.0)
    async def update_lag() -> None:
        _update_lag(app, state)

    watch = RecoveryWatch(app)

    @app.timer(interval=CHECK_EVERY_S)
    async def unstall_recovery() -> None:  # a Faust recovery stall (see the module)
        if await watch.check():
            metrics.recovery_restarts.inc()

    @app.page("/health")
    async def health(web: Any, request: Any) -> Any:
        assigned = sorted(tp.partition for tp in app.consumer.assignment()
                          if tp.topic == settings.events_topic) if app.consumer else []
        ok = app.agents.get(score.name) is not None and not app.should_stop
        body = {
            "status": "ok" if ok else "stopping",
            "model_version": str(holder.pipeline.model_version),
            "processing_guarantee": settings.processing_guarantee,
            "assigned_partitions": assigned,
            "positions": state.positions,
            "last_batch_at": state.last_batch_at,
            "uptime_s": round(time.time() - state.started_at, 1),
        }
        return web.json(body, status=200 if ok else 503)

    @app.page("/metrics")
    async def prometheus(web: Any, request: Any) -> Any:
        _update_lag(app, state)
        return web.bytes(generate_latest(metrics.registry), content_type=CONTENT_TYPE_LATEST.split(";")[0])

    return app


def _discard_local_tables(app: faust.App) -> None:
    """Exactly-once: start from the changelog, never from local RocksDB files.

    Faust writes table changes to RocksDB at once but commits their changelog records with the
    transaction; after a SIGKILL the local files hold changes of an aborted transaction, and a
    restart on them scores from a state that never became true (the SIGKILL test catches it).
    The committed changelog is the truth, so the local copy is dropped at every start.
    """
    tabledir = Path(app.conf.tabledir)
    if tabledir.exists():
        log.warning("exactly-once: discarding local table files in %s; restoring from the changelog", tabledir)
        shutil.rmtree(tabledir)


@dataclass
class _Ahead:
    """A batch as read ahead, before anything that needs the stored states."""

    events: list                                 # Faust events, acked once the batch is done
    by_partition: dict[int, list[InMessage]]
    decoded: Any                                 # the messages' columns (BatchProcessor.decode)
    pipeline: Any                                # one model for the whole batch
    started: float


@dataclass
class _Accepted:
    """A batch between its checks and its end: the step's input and what its end writes."""

    ahead: _Ahead
    work: Any                                    # processor.Accepting
    new_positions: dict[int, int]
    refetched: list[tuple[str, int, int, int]]   # (topic, partition, start, end) read back
    write_now: bool
    assignments: int
    partition_event: dict[int, Any]


def _highwater(app: faust.App, tp: Any) -> int | None:
    """The offset after the last message the broker had on ``tp`` at the last fetch (exactly-
    once: the last stable offset); None when not known, or ``tp`` is no longer assigned
    (aiokafka asserts that: a batch taken before a rebalance may name such a partition)."""
    try:
        return app.consumer.highwater(tp)
    except (AssertionError, KeyError):
        return None


def _waiting(app: faust.App, batch: list) -> int:
    """Messages on the broker after this batch, on its partitions (as of the last fetch)."""
    last: dict[Any, int] = {}
    for ev in batch:
        msg = ev.message
        last[msg.tp] = msg.offset
    waiting = 0
    for tp, offset in last.items():
        hw = _highwater(app, tp)
        if hw is not None:
            waiting += max(hw - offset - 1, 0)
    return waiting


def _read_ahead(state: WorkerState, batch: list) -> _Ahead:
    """What the next batch needs that no state does: its messages by partition, decoded (done
    while the model steps the batch in flight)."""
    t0 = time.perf_counter()
    oldest = min((ev.message.timestamp for ev in batch if ev.message.timestamp), default=None)
    if oldest:
        state.metrics.delay_seconds.observe(max(time.time() - oldest, 0.0))
    by_partition: dict[int, list[InMessage]] = {}
    for ev in batch:
        msg = ev.message
        by_partition.setdefault(msg.partition, []).append(InMessage(msg.topic, msg.partition, msg.offset, ev.value))
    candidates = [m for msgs in by_partition.values() for m in msgs]
    pipeline = state.holder.pipeline
    return _Ahead(batch, by_partition, state.processor.decode(candidates, pipeline), pipeline, t0)


async def _accept_batch(state: WorkerState, table: Any, ahead: _Ahead) -> _Accepted:
    """Drop redelivered messages, read skipped ones back, check the events against their keys'
    stored states: the model step's input. Runs after the previous batch's end."""
    metrics = state.metrics
    # One event per partition stands for that partition when touching the table.
    partition_event = state.partition_event
    for ev in ahead.events:
        partition_event[ev.message.partition] = ev
    pending = state.pending

    def read_table(key: bytes, partition: int) -> bytes | None:
        waiting = pending.get(partition, key)
        if waiting is not None:
            return waiting
        _current_event.set(weakref.ref(partition_event[partition]))
        return table.get(key)

    def load_state(key: str, partition: int) -> bytes | None:
        return read_table(key.encode(), partition)

    messages: list[InMessage] = []
    assignments = state.assignments
    new_positions: dict[int, int] = {}
    write_now = False  # a partition without a stored cursor gets one before its offsets commit
    refetched: list[tuple[str, int, int, int]] = []
    for partition, msgs in ahead.by_partition.items():
        # ``trusted``: offsets this process has fully processed since the last rebalance (or
        # earlier in this batch): Faust redelivers some of them around seeks; they are dropped.
        trusted = state.positions.get(partition)
        last = trusted
        if last is None:
            blob = read_table(CURSOR_KEY, partition)
            last = _CURSOR.unpack(blob)[0] if blob else None
            write_now |= last is None
            log.info("events partition %d: stored cursor %s, first offset given %d",
                     partition, last, msgs[0].offset)
        complete: list[InMessage] = []
        for m in msgs:
            if trusted is not None and m.offset <= trusted:
                metrics.duplicates.inc()
                continue
            if last is not None and m.offset > last + 1:
                # Faust skipped messages (see stream_app/gap_fill.py): read them back first.
                missing = await state.gap_filler.fetch(m.topic, partition, last + 1, m.offset)
                # After a restart or a takeover these are events processed after the last state
                # write (stream_app/pending_states.py); otherwise Faust skipped them.
                log.warning("events %s[%d] offsets %d..%d follow the stored cursor but were not "
                            "delivered; read back %d", m.topic, partition, last + 1, m.offset - 1,
                            len(missing))
                metrics.refetched.inc(len(missing))
                complete.extend(missing)
                refetched.append((m.topic, partition, last + 1, m.offset))
            complete.append(m)
            last = m.offset if last is None else max(last, m.offset)
            trusted = last
        if complete:
            messages.extend(complete)
            new_positions[partition] = last  # type: ignore[assignment]

    # (the columns decoded ahead serve when no message was dropped or read back: the rule)
    work = state.processor.accept(messages, ahead.pipeline, load_state, ahead.decoded)
    return _Accepted(ahead, work, new_positions, refetched, write_now, assignments,
                     dict(partition_event))


async def _finish_batch(app: faust.App, state: WorkerState, table: Any, router: ProducerRouter,
                        batch: _Accepted, guard: CommitGuard | None, take: TakeAhead,
                        in_compute_process: bool) -> None:
    """The model step (in the compute process, if there is one and ``in_compute_process``),
    then the batch's outputs and states (exactly-once: all inside one transaction, commits
    held off), then its acks."""
    work = batch.work
    if work.table is not None:
        t_step = time.perf_counter()
        if state.compute is not None and in_compute_process:
            try:
                res = await state.compute.step(batch.ahead.pipeline, work.table, work.states_in)
                state.metrics.compute_batches.inc()
            except compute_process.ComputeProcessError as exc:
                # It held nothing to recover: start another, and step this batch here.
                log.error("%s; starting a new one, this batch is stepped in the worker", exc)
                state.compute.close(timeout=1.0)
                state.compute = compute_process.ComputeProcess(state.settings.compute_threads)
                state.compute.load(batch.ahead.pipeline)
                state.metrics.compute_restarts.inc()
                res = batch.ahead.pipeline.step(work.table, work.states_in)
        else:
            res = batch.ahead.pipeline.step(work.table, work.states_in)
        work.out.step_seconds = time.perf_counter() - t_step
        out = state.processor.finish(work, res)
    else:
        out = work.out
    if guard is None:
        await _write_outputs(app, state, table, router, batch, out)
    else:
        async with guard.lock:
            await _write_outputs(app, state, table, router, batch, out)
    await take.ack(batch.ahead.events)

    metrics = state.metrics
    state.last_batch_at = time.time()
    metrics.events.inc(out.events_in)
    metrics.scored.inc(out.scored)
    metrics.alerts.inc(len(out.alerts))
    metrics.replayed.inc(out.skipped_replayed)
    metrics.late.inc(out.late)
    metrics.restarted.inc(out.restarted)
    for reason in out.dead_letter_reasons:
        metrics.dead_letters.labels(reason=reason).inc()
    metrics.batches.inc()
    metrics.step_seconds.observe(out.step_seconds)
    metrics.batch_seconds.observe(time.perf_counter() - batch.ahead.started)
    metrics.last_batch.set(state.last_batch_at)


async def _write_outputs(app: faust.App, state: WorkerState, table: Any, router: ProducerRouter,
                         batch: _Accepted, out: BatchOutput) -> None:
    s = state.settings
    pending = state.pending
    partition_event = batch.partition_event
    outputs = []
    for o in out.alerts:
        outputs.append(await router.send(s.alerts_topic, o.key, o.value, o.source_partition))
    for o in out.scores:
        outputs.append(await router.send(s.scores_topic, o.key, o.value, o.source_partition))  # type: ignore[arg-type]
    for o in out.dead_letters:
        outputs.append(await router.send(s.dead_letter_topic, o.key, o.value, o.source_partition))
    # At-least-once: outputs are awaited before a state write (a state on the broker must not
    # name events whose outputs are not) and by Faust before each commit. A part of a flush
    # round goes out *before* this batch's states join the pending ones: it writes states as
    # of the batches before, whose outputs the broker has mostly acknowledged by now, instead
    # of waiting for this batch's, just sent (~2.7 ms a flushing batch at 80,000 events/s,
    # docs/performance.md, session 15). A partition's first cursor (``write_now``) is written
    # with this batch's states, all at once.
    flush_before = not s.exactly_once and not batch.write_now and pending.due(s.state_flush_interval_s)
    if flush_before:
        await _flush(state, router, table, pending, partition_event, pending.WRITES_PER_BATCH)
    for key, partition, value in out.states:
        pending.put(partition, key.encode(), value)
    # Each partition's last offset goes with its states: the next batch (or the next owner of
    # the partition) compares it with the first offset it is given, to notice skipped messages.
    for p, off in batch.new_positions.items():
        pending.put(p, CURSOR_KEY, _CURSOR.pack(off))
    if s.exactly_once:
        await write_states(router, table, partition_event, pending.take(), outputs)
    else:
        state.unacked.extend(outputs)
        if batch.write_now:
            await _flush(state, router, table, pending, partition_event, None)
    if state.assignments == batch.assignments:  # no rebalance while this batch was in flight
        state.positions.update(batch.new_positions)
        for topic, partition, start, end in batch.refetched:  # processed: Faust's commits may pass them
            await mark_done(app.consumer, topic, partition, start, end)
    else:
        pending.drop()


async def _flush(state: WorkerState, router: ProducerRouter, table: Any, pending: PendingStates,
                 partition_event: dict[int, Any], limit: int | None) -> None:
    """At-least-once: the outputs sent so far awaited, then pending states written (``limit``
    of a flush round, None: all)."""
    outputs, state.unacked = state.unacked, []
    t_write = time.perf_counter()
    await flush_states(router, table, pending, outputs, partition_event, limit)
    state.metrics.flush_seconds.observe(time.perf_counter() - t_write)


def _update_lag(app: faust.App, state: WorkerState) -> None:
    consumer = app.consumer
    if consumer is None:
        return
    try:
        assignment = consumer.assignment()
    except Exception:
        return
    for tp in assignment:
        if tp.topic != state.settings.events_topic:
            continue
        hw = consumer.highwater(tp)
        pos = state.positions.get(tp.partition)
        if hw is None or pos is None:
            continue
        state.metrics.lag.labels(partition=str(tp.partition)).set(max(hw - pos - 1, 0))
