"""One micro-batch of event messages → one ``Pipeline.step`` call → alerts, scores, dead letters,
new per-key states. Pure CPU work with no Kafka or Faust in it (the agent in ``stream_app.app``
does the I/O), so it is tested on its own and costs the same whatever transport feeds it.

Per batch, whatever its size: one ``json.loads`` (or Arrow IPC read) per message and checks by column
(``stream_app.batch_decode``; a batch with any event that breaks a rule goes through the
per-event path here instead, which writes the dead letters), one state read and one new state
per key, one ``Pipeline.step`` over all keys (vectorised by the pipeline), one send per alert,
per dead letter and (when a scores topic is set) per key.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from .batch_decode import Accepted, Decoded, accept_decoded, decode_columns, load_stored
from .schemas import DeadLetter, Event, EventSchema, alert_record, decode_message, to_json_bytes
from .stored_state import StoredState


class PipelineContractError(RuntimeError):
    """The pipeline's step() result does not follow docs/contracts.md."""


@dataclass(frozen=True)
class InMessage:
    topic: str
    partition: int
    offset: int
    value: bytes | None


@dataclass(frozen=True)
class Outgoing:
    key: bytes | None
    value: bytes
    source_partition: int  # the events partition it came from (its transaction, in exactly-once)


@dataclass
class BatchOutput:
    alerts: list[Outgoing] = field(default_factory=list)
    scores: list[Outgoing] = field(default_factory=list)
    dead_letters: list[Outgoing] = field(default_factory=list)
    dead_letter_reasons: list[str] = field(default_factory=list)
    states: list[tuple[str, int, bytes]] = field(default_factory=list)  # key, partition, value
    events_in: int = 0
    scored: int = 0
    skipped_replayed: int = 0
    late: int = 0
    restarted: int = 0  # keys whose stored state the pipeline could not use (another architecture)
    step_seconds: float = 0.0


@dataclass
class Accepting:
    """A batch between ``BatchProcessor.accept`` and ``finish``: the step's input (``table`` is
    None when no event is left to score) and what is known of its output so far."""

    out: BatchOutput
    acc: Accepted
    table: pa.Table | None
    states_in: dict[str, bytes | None]
    version: str


@dataclass(frozen=True)
class Limits:
    max_payload_bytes: int = 1_048_576
    max_out_of_order_s: float = 300.0
    max_future_s: float = 86_400.0
    check_partition: bool = True
    emit_scores: bool = False
    missing_values: str = "impute"

    @classmethod
    def from_settings(cls, s: Any) -> "Limits":
        return cls(
            max_payload_bytes=s.max_payload_bytes,
            max_out_of_order_s=s.max_out_of_order_s,
            max_future_s=s.max_future_s,
            check_partition=s.partition_check == "murmur2",
            emit_scores=bool(s.scores_topic),
            missing_values=s.missing_values,
        )


def default_partition(key: str, partitions: int, _cache: dict[tuple[str, int], int] = {}) -> int:
    """The partition Kafka's default partitioner (murmur2, as in the Java client and aiokafka)
    gives a message keyed by ``key`` (UTF-8)."""
    try:
        return _cache[(key, partitions)]
    except KeyError:
        from aiokafka.partitioner import murmur2

        if len(_cache) > 1_000_000:
            _cache.clear()
        p = _cache[(key, partitions)] = (murmur2(key.encode()) & 0x7FFFFFFF) % partitions
        return p


class BatchProcessor:
    def __init__(self, limits: Limits, events_partitions: int, clock: Callable[[], float] = time.time,
                 by_columns: bool = True):
        self.limits = limits
        self.by_columns = by_columns  # False: every batch by the per-event path (tests compare)
        self.events_partitions = events_partitions
        self.clock = clock
        self._schema_for: tuple[int, EventSchema] | None = None

    def schema(self, pipeline: Any) -> EventSchema:
        if self._schema_for is None or self._schema_for[0] != id(pipeline.config):
            self._schema_for = (id(pipeline.config),
                                EventSchema.from_config(pipeline.config, self.limits.missing_values))
        return self._schema_for[1]

    def decode(self, messages: Sequence[InMessage], pipeline: Any) -> Decoded | None:
        """The state-free part of ``accept``, done ahead (stream_app.app runs it on the next
        batch while the model steps the current one); None: that batch needs the per-event path."""
        if not messages or not self.by_columns:
            return None
        return decode_columns(messages, self.schema(pipeline), self.limits, self.clock())

    def process(
        self,
        messages: Sequence[InMessage],
        pipeline: Any,
        load_state: Callable[[str, int], bytes | None],
    ) -> BatchOutput:
        """Score ``messages`` with ``pipeline``; ``load_state(key, partition)`` reads the table."""
        batch = self.accept(messages, pipeline, load_state)
        if batch.table is None:
            return batch.out
        t0 = time.perf_counter()
        res = pipeline.step(batch.table, batch.states_in)
        batch.out.step_seconds = time.perf_counter() - t0
        return self.finish(batch, res)

    def accept(
        self,
        messages: Sequence[InMessage],
        pipeline: Any,
        load_state: Callable[[str, int], bytes | None],
        decoded: Decoded | None = None,
    ) -> Accepting:
        """Decode (or take ``decoded``, made by ``decode`` from these same messages), validate,
        read the keys' states: the step's input. Its dead letters are already in ``.out``."""
        out = BatchOutput()
        schema = self.schema(pipeline)
        now = self.clock()
        read: dict[tuple[str, int], bytes | None] = {}

        def load_once(key: str, partition: int) -> bytes | None:
            if (key, partition) not in read:
                read[key, partition] = load_state(key, partition)
            return read[key, partition]

        # 1-2. decode, validate, per-key checks: by columns for the common case, else per event
        acc = None
        if messages and self.by_columns:
            if decoded is None or not decoded.same_messages(messages):
                decoded = decode_columns(messages, schema, self.limits, now)
            if decoded is not None:
                acc = accept_decoded(decoded, self.limits, self.events_partitions,
                                     default_partition, load_once)
        if acc is not None:
            out.events_in = len(acc)
        else:
            acc = self._accept_per_event(messages, schema, load_once, now, out)
        out.late = acc.late
        if not len(acc):
            return Accepting(out, acc, None, {}, str(pipeline.model_version))
        # Stored states go to the pipeline whatever model made them: a state survives refits
        # and hot reloads, and the pipeline itself restarts a key whose state comes from
        # another architecture (StepResult.restarted).
        states_in = {key: (acc.stored[key].pipeline_state if acc.stored[key] is not None else None)  # type: ignore[union-attr]
                     for key in acc.cursor}
        return Accepting(out, acc, self._table(schema, acc), states_in, str(pipeline.model_version))

    def finish(self, batch: Accepting, res: Any) -> BatchOutput:
        """The step's result ``res`` as the batch's outputs and new stored states."""
        out, acc, version = batch.out, batch.acc, batch.version
        out.scored = len(acc)
        out.restarted = len(getattr(res, "restarted", ()) or ())
        if res.scores.num_rows != len(acc):
            raise PipelineContractError(
                f"step() returned {res.scores.num_rows} score rows for {len(acc)} events")
        missing = [k for k in acc.cursor if k not in res.states]
        if missing:
            raise PipelineContractError(f"step() returned no state for keys {missing[:5]}")

        # outputs
        if res.alerts:
            # the alerting rows (input order) name each alert's source event
            rows = np.flatnonzero(res.scores.column("alert").to_numpy()).tolist()
            row_keys = acc.keys.take(pa.array(rows, pa.int64())).to_pylist()
            source = {(k, float(acc.times[i])): i for k, i in zip(row_keys, rows)}
            detected_at = self.clock()
            for alert in res.alerts:
                key = str(alert["key"])
                i = source.get((key, float(alert["time"])))
                part, off = (int(acc.partitions[i]), int(acc.offsets[i])) if i is not None else (acc.partition_of[key], -1)
                rec = alert_record(alert, partition=part, offset=off, detected_at=detected_at)
                out.alerts.append(Outgoing(key.encode(), to_json_bytes(rec), part))
        if self.limits.emit_scores:
            out.scores = self._score_messages(res.scores, acc.offsets, acc.partition_of, version)
        for key, (off, idx) in acc.cursor.items():
            new = StoredState(acc.latest[key], off, idx, version, bytes(res.states[key]))
            out.states.append((key, acc.partition_of[key], new.to_bytes()))
        return out

    def _accept_per_event(self, messages: Sequence[InMessage], schema: EventSchema,
                          load_state: Callable[[str, int], bytes | None], now: float,
                          out: BatchOutput) -> Accepted:
        """Every rule, event by event (the definition that ``accept_columns`` shortcuts); bad
        events become dead letters in ``out``."""
        lim = self.limits
        topic = messages[0].topic if messages else ""
        events: list[Event] = []
        letters: list[DeadLetter] = []
        for m in messages:
            ev, dl = decode_message(
                m.value, schema, topic=m.topic, partition=m.partition, offset=m.offset,
                max_payload_bytes=lim.max_payload_bytes, max_future_s=lim.max_future_s, now=now,
            )
            events.extend(ev)
            letters.extend(dl)
        out.events_in = len(events) + len(letters)

        # per key: stored state, replay skip, order checks (in arrival order)
        stored: dict[str, StoredState | None] = {}
        latest: dict[str, float] = {}
        cursor: dict[str, tuple[int, int]] = {}
        partition_of: dict[str, int] = {}
        rows: list[Event] = []
        times: list[float] = []
        late = 0
        for e in events:
            key = e.key
            if key not in stored:
                if lim.check_partition:
                    want = default_partition(key, self.events_partitions)
                    if want != e.partition:
                        letters.append(self._dead(e, "wrong_partition",
                            f"key {key!r} belongs to partition {want} (murmur2 of the key, "
                            f"{self.events_partitions} partitions), message came on {e.partition}: "
                            "key messages by the event's key", topic))
                        continue
                st = load_stored(load_state, key, e.partition)
                stored[key] = st
                latest[key] = st.latest_time if st else float("-inf")
                partition_of[key] = e.partition
            elif partition_of[key] != e.partition:
                letters.append(self._dead(e, "wrong_partition",
                    f"key {key!r} arrived on partitions {partition_of[key]} and {e.partition} in one batch", topic))
                continue
            st = stored[key]
            if st is not None and st.applied(e.offset, e.index):
                out.skipped_replayed += 1  # already in the stored state (a replay after a crash)
                continue
            t = e.time
            last = latest[key]
            if t < last:
                if last - t > lim.max_out_of_order_s:
                    letters.append(self._dead(e, "out_of_order",
                        f"time {t:.3f} is {last - t:.1f} s before key {key!r}'s latest event "
                        f"({last:.3f}); limit {lim.max_out_of_order_s:g} s", topic))
                    continue
                late += 1
                t = last  # scored as if it came at the key's latest time (batch-independent)
            latest[key] = t
            cursor[key] = (e.offset, -1 if e.index is None else e.index)
            rows.append(e)
            times.append(t)

        for dl in letters:
            out.dead_letters.append(Outgoing(None, dl.to_bytes(), dl.partition))
            out.dead_letter_reasons.append(dl.reason)
        return Accepted(
            keys=pa.array([e.key for e in rows], pa.string()), times=np.array(times, np.float64),
            values=[np.array([e.values[j] for e in rows], np.float64) for j in range(len(schema.value_fields))],
            categories=[pa.array([e.categories[j] for e in rows], pa.string())
                        for j in range(len(schema.categorical_fields))],
            partitions=np.array([e.partition for e in rows], np.int64),
            offsets=np.array([e.offset for e in rows], np.int64),
            stored=stored, latest=latest, cursor=cursor, partition_of=partition_of, late=late)

    @staticmethod
    def _dead(e: Event, reason: str, detail: str, topic: str) -> DeadLetter:
        # The event's fields as decoded (its message may hold other, good events).
        record = {"key": e.key, "time": e.time, "values": list(e.values), "categories": list(e.categories)}
        return DeadLetter(reason, detail, json.dumps(record).encode(), topic, e.partition, e.offset, e.index)

    @staticmethod
    def _table(schema: EventSchema, acc: Accepted) -> pa.Table:
        cols: dict[str, pa.Array] = {schema.key_field: acc.keys}
        if schema.time_unit == "s":
            cols[schema.time_field] = pa.array(acc.times, pa.float64())
        else:  # a numeric column would be read in the model's unit: hand over an unambiguous timestamp
            ns = np.round(acc.times * 1e9).astype(np.int64)
            cols[schema.time_field] = pa.array(ns, pa.timestamp("ns", "UTC"))
        for name, column in zip(schema.value_fields, acc.values):
            cols[name] = pa.array(column, pa.float64())
        for name, column in zip(schema.categorical_fields, acc.categories):
            cols[name] = column
        return pa.table(cols)

    @staticmethod
    def _score_messages(scores: pa.Table, offsets: np.ndarray, partition_of: dict[str, int],
                        version: str) -> list[Outgoing]:
        """One message per key per batch: a JSON array of that key's scores, in order."""
        cols = {n: scores.column(n).to_pylist() for n in ("key", "time", "score", "threshold", "alert")}
        offsets = offsets.tolist()
        per_key: dict[str, list[dict]] = {}
        for i, key in enumerate(cols["key"]):
            t = cols["time"][i]
            per_key.setdefault(key, []).append({
                "key": key, "time": t.timestamp() if hasattr(t, "timestamp") else t,
                "score": cols["score"][i], "threshold": cols["threshold"][i],
                "alert": cols["alert"][i], "model_version": version,
                "offset": offsets[i],
            })
        return [Outgoing(k.encode(), to_json_bytes(v), partition_of[k]) for k, v in per_key.items()]  # type: ignore[arg-type]
