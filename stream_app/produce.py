"""Produce events to the events topic the way the worker expects them, and read topics back.

Command line (used by docker-compose.yml):

    python -m stream_app.produce replay --file live.csv --config ember.toml --rate 200 --loop
    python -m stream_app.produce follow --topic ember-alerts

Events are keyed by their key field (UTF-8), so Kafka's default partitioner sends each key to one
partition and the key's state lives with it. ``per_message > 1`` packs several events into one
message (a JSON array, or with ``fmt="arrow"`` an Arrow IPC stream of rows); a batch message
only holds events of keys that share a partition, and is sent to that partition explicitly.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import pyarrow as pa
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from .arrow_messages import encode_rows
from .processor import default_partition
from .schemas import event_to_json


def table_rows(table: pa.Table) -> list[dict[str, Any]]:
    return table.to_pylist()


FORMATS = ("json", "arrow")


def encode_messages(
    rows: Sequence[dict[str, Any]], key_field: str, partitions: int, per_message: int = 1,
    fmt: str = "json",
) -> list[tuple[int, bytes, bytes]]:
    """(partition, key, value) messages for ``rows``, keeping each key's order. ``fmt``:
    ``json`` (an object per message, or arrays of ``per_message``) or ``arrow`` (Arrow IPC
    streams of up to ``per_message`` rows, column types inferred from the rows)."""
    if fmt not in FORMATS:
        raise ValueError(f"message format {fmt!r}: use one of {', '.join(FORMATS)}")
    encode = _array if fmt == "json" else encode_rows
    if per_message <= 1 and fmt == "json":
        out = []
        for row in rows:
            key = str(row[key_field])
            out.append((default_partition(key, partitions), key.encode(), event_to_json(row)))
        return out
    pending: dict[int, list[dict[str, Any]]] = {}
    out = []
    for row in rows:
        key = str(row[key_field])
        p = default_partition(key, partitions)
        buf = pending.setdefault(p, [])
        buf.append(row)
        if len(buf) >= per_message:
            out.append((p, str(buf[0][key_field]).encode(), encode(buf)))
            pending[p] = []
    for p, buf in pending.items():
        if buf:
            out.append((p, str(buf[0][key_field]).encode(), encode(buf)))
    return out


def _array(rows: list[dict[str, Any]]) -> bytes:
    return json.dumps(rows, separators=(",", ":"), allow_nan=False).encode()


async def produce(
    bootstrap: str,
    topic: str,
    messages: Iterable[tuple[int, bytes | None, bytes]],
    rate: float | None = None,
    linger_ms: int = 5,
    on_sent: Callable[[Any, float], None] | None = None,
    **client_kwargs: Any,
) -> int:
    """Send (partition, key, value) messages; ``rate`` = messages/s (None: as fast as possible).
    ``on_sent(metadata, t)``, once the broker has a message: its ``RecordMetadata`` (partition,
    offset) and the wall-clock time ``send`` was called (for end-to-end latency)."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=linger_ms, acks="all",
                                max_request_size=8 * 1024 * 1024, **client_kwargs)
    await producer.start()
    n = 0
    try:
        t0 = time.perf_counter()
        futures = []
        for partition, key, value in messages:
            if rate:
                ahead = t0 + n / rate - time.perf_counter()
                if ahead > 0:
                    await asyncio.sleep(ahead)
            fut = await producer.send(topic, value, key=key, partition=partition)
            if on_sent is not None:   # a failed send raises from the gather below instead
                fut.add_done_callback(lambda f, t=time.time(): f.cancelled() or f.exception()
                                      or on_sent(f.result(), t))
            futures.append(fut)
            n += 1
            if len(futures) >= 10_000:
                await asyncio.gather(*futures)
                futures.clear()
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return n


async def read_topic(
    bootstrap: str,
    topic: str,
    *,
    expect: int | None = None,
    idle_s: float = 3.0,
    timeout_s: float = 120.0,
    isolation_level: str = "read_uncommitted",
    **client_kwargs: Any,
) -> list[Any]:
    """All messages of ``topic`` from the beginning (no consumer group): stops when ``expect``
    messages are read and then ``idle_s`` passes without more, or at ``timeout_s``."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                auto_offset_reset="earliest", isolation_level=isolation_level,
                                **client_kwargs)
    await consumer.start()
    try:
        from aiokafka import TopicPartition

        parts = consumer.partitions_for_topic(topic)
        if not parts:
            await consumer._client.force_metadata_update()
            parts = consumer.partitions_for_topic(topic) or set()
        consumer.assign([TopicPartition(topic, p) for p in sorted(parts)])
        await consumer.seek_to_beginning()
        got: list[Any] = []
        deadline = time.monotonic() + timeout_s
        last_new = time.monotonic()
        while time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=200)
            n = sum(len(v) for v in batch.values())
            for msgs in batch.values():
                got.extend(msgs)
            if n:
                last_new = time.monotonic()
            elif (expect is None or len(got) >= expect) and time.monotonic() - last_new >= idle_s:
                break
        return got
    finally:
        await consumer.stop()


# ----------------------------------------------------------------------------- command line


def _replay(args: Any) -> int:
    """Send an event file's rows to the events topic at a rate; with --loop, again and again,
    each pass shifted in time past the previous one (keys stay in time order)."""
    import math

    from ember_models.config import load_config
    from stream_app.event_fields import EventFields
    from stream_app.files import read_events

    config = load_config(args.config)
    fields = EventFields.from_config(config)
    table, _ = read_events(args.file, fields)
    rows = table.to_pylist()
    for row in rows:  # missing values travel as JSON null (NaN is not JSON)
        for k, v in row.items():
            if isinstance(v, float) and not math.isfinite(v):
                row[k] = None
            elif hasattr(v, "timestamp"):
                row[k] = v.timestamp()
    times = [r[fields.time_field] for r in rows]
    span = (max(times) - min(times) + 1.0) if times else 0.0
    n, shift = 0, 0.0
    while True:
        batch = [dict(r, **{fields.time_field: r[fields.time_field] + shift}) for r in rows]
        msgs = encode_messages(batch, fields.key_field, args.partitions, args.per_message, args.format)
        n += asyncio.run(produce(args.bootstrap, args.topic, msgs, rate=args.rate / max(args.per_message, 1)))
        print(f"sent {n} messages", flush=True)
        if not args.loop:
            return 0
        shift += span


def _follow(args: Any) -> int:
    """Print each record of a topic (e.g. the alerts) as one JSON line, from now on."""

    async def run() -> None:
        consumer = AIOKafkaConsumer(args.topic, bootstrap_servers=args.bootstrap,
                                    auto_offset_reset="latest", enable_auto_commit=False)
        await consumer.start()
        try:
            while True:
                for msgs in (await consumer.getmany(timeout_ms=1000)).values():
                    for m in msgs:
                        print(m.value.decode(errors="replace"), flush=True)
        finally:
            await consumer.stop()

    try:
        asyncio.run(run())
    except KeyboardInterrupt:
        pass
    return 0


def main(argv: list[str] | None = None) -> int:
    import argparse
    import os

    from .topics import ensure_topics

    ap = argparse.ArgumentParser(prog="python -m stream_app.produce")
    ap.add_argument("--bootstrap", default=os.environ.get("EMBER_KAFKA_BOOTSTRAP", "127.0.0.1:9092"))
    sub = ap.add_subparsers(dest="command", required=True)
    rp = sub.add_parser("replay", help="send an event file (CSV, Parquet, JSONL) to the events topic")
    rp.add_argument("--file", required=True)
    rp.add_argument("--config", default="ember.toml", help="the [data] fields of the events")
    rp.add_argument("--topic", default=os.environ.get("EMBER_EVENTS_TOPIC", "ember-events"))
    rp.add_argument("--partitions", type=int, default=int(os.environ.get("EMBER_PARTITIONS", "4")))
    rp.add_argument("--rate", type=float, default=200.0, help="events per second")
    rp.add_argument("--per-message", type=int, default=1, help="events per message (a batch message)")
    rp.add_argument("--format", default="json", choices=FORMATS,
                    help="json (objects or arrays) or arrow (Arrow IPC streams of rows)")
    rp.add_argument("--loop", action="store_true")
    fo = sub.add_parser("follow", help="print a topic's new records")
    fo.add_argument("--topic", default=os.environ.get("EMBER_ALERTS_TOPIC", "ember-alerts"))
    args = ap.parse_args(argv)
    if args.command == "replay":
        counts = asyncio.run(ensure_topics(args.bootstrap, {args.topic: args.partitions}))
        args.partitions = counts[args.topic]
        return _replay(args)
    return _follow(args)


if __name__ == "__main__":
    import sys

    sys.exit(main())
