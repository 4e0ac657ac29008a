"""Faust's cost of taking messages in, with Faust's hand-over and with ember's inline one.

    .venv/bin/python benchmarks/faust_intake.py                  # starts a local broker
    EMBER_KAFKA_BOOTSTRAP=host:port .venv/bin/python benchmarks/faust_intake.py --messages 100000

A backlog of ``--messages`` messages of ``--bytes`` bytes on a 4-partition topic; then, one
after the other (``--rounds`` times, alternated), a Faust worker whose agent does nothing but
take batches the way ember's does (``stream_app.take_ahead.TakeAhead``, 1,000 messages / 10 ms,
acked per batch) reads the whole backlog in its own consumer group:

- ``faust``: Faust's fetcher as shipped (``Service.wait_first`` around every delivery);
- ``inline``: with ``stream_app.message_handover`` installed, as the ember worker runs.

Prints, per run, messages/s from the first batch to the last and the event loop's CPU per
message (the main thread's ``time.thread_time``), and the ratio inline / faust of the medians.
Nothing is decoded or scored: this is the floor under every message the worker handles.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

TAKE, WITHIN = 1000, 0.01


async def _fill(bootstrap: str, topic: str, n: int, size: int) -> None:
    from aiokafka import AIOKafkaProducer
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, 4, 1)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, max_batch_size=1 << 20)
    await producer.start()
    try:
        value = b"x" * size
        futures = [await producer.send(topic, value, key=str(i % 256).encode()) for i in range(n)]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


def _consume(bootstrap: str, topic: str, n: int, mode: str, datadir: str) -> None:
    """The child: a Faust worker that takes the backlog in batches, then prints one line."""
    import faust

    from stream_app import message_handover
    from stream_app.take_ahead import TakeAhead

    app = faust.App(f"intake-{mode}-{uuid.uuid4().hex[:6]}", broker=f"kafka://{bootstrap}",
                    store="memory://", key_serializer="raw", value_serializer="raw",
                    web_enabled=False, consumer_auto_offset_reset="earliest",
                    topic_disable_leader=True, autodiscover=False, datadir=datadir)
    source = app.topic(topic, partitions=4, key_serializer="raw", value_serializer="raw")

    @app.agent(source, concurrency=1)
    async def take(stream):
        if mode == "inline":
            message_handover.install(app.consumer)
        batches = TakeAhead(stream, TAKE, WITHIN)
        seen = first = 0
        t0 = c0 = 0.0
        async for batch in batches.batches():
            if not batch:
                continue
            if not first:  # timed from the first batch on (start-up and first fetch excluded)
                first, t0, c0 = len(batch), time.perf_counter(), time.thread_time()
            seen += len(batch)
            await batches.ack(batch)
            if seen >= n:
                wall, cpu = time.perf_counter() - t0, time.thread_time() - c0
                timed = seen - first
                print(f"RESULT {timed} {wall:.6f} {cpu:.6f}", flush=True)
                os._exit(0)

    sys.argv = ["faust_intake", "worker", "-l", "warn", "--without-web"]
    app.main()


def _run(bootstrap: str, topic: str, n: int, mode: str, work: Path) -> tuple[float, float]:
    out = subprocess.run(
        [sys.executable, __file__, "--child", mode, "--topic", topic, "--messages", str(n)],
        env={**os.environ, "EMBER_KAFKA_BOOTSTRAP": bootstrap, "EMBER_INTAKE_DATADIR": str(work / mode)},
        capture_output=True, text=True, timeout=600)
    for line in out.stdout.splitlines() + out.stderr.splitlines():
        if "RESULT " in line:
            timed, wall, cpu = line.split("RESULT ", 1)[1].split()[:3]
            return int(timed) / float(wall), float(cpu) / int(timed) * 1e6
    raise RuntimeError(f"{mode} run printed no result:\n{out.stderr[-3000:]}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--messages", type=int, default=100_000)
    ap.add_argument("--bytes", type=int, default=8_000, help="message size (json:100 events: ~9,600)")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--child", choices=["faust", "inline"], help=argparse.SUPPRESS)
    ap.add_argument("--topic", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        _consume(os.environ["EMBER_KAFKA_BOOTSTRAP"], args.topic, args.messages, args.child,
                 os.environ["EMBER_INTAKE_DATADIR"])
        return 0

    from stream_app import broker

    # (the broker stops before its directory goes)
    with tempfile.TemporaryDirectory(prefix="ember-intake-") as tmp, \
            broker.given_or_started(Path(tmp) / "kafka") as (bootstrap, _):
        work = Path(tmp)
        topic = f"intake-{uuid.uuid4().hex[:8]}"
        asyncio.run(_fill(bootstrap, topic, args.messages, args.bytes))
        print(f"{args.messages} messages of {args.bytes} bytes, 4 partitions; batches of "
              f"{TAKE} / {WITHIN * 1000:.0f} ms; Kafka at {bootstrap}")
        results: dict[str, list[tuple[float, float]]] = {"faust": [], "inline": []}
        for r in range(args.rounds):
            for mode in (("faust", "inline") if r % 2 == 0 else ("inline", "faust")):
                rate, cpu = _run(bootstrap, topic, args.messages, mode, work)
                results[mode].append((rate, cpu))
                print(f"  {mode:6}  {rate:9,.0f} messages/s   event loop {cpu:6.1f} µs CPU per message")
        med = {m: (statistics.median(x[0] for x in v), statistics.median(x[1] for x in v))
               for m, v in results.items()}
        print(f"inline / faust: messages/s x{med['inline'][0] / med['faust'][0]:.2f}, "
              f"CPU per message x{med['inline'][1] / med['faust'][1]:.2f} (medians)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
