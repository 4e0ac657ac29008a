"""Backfill alerts to the alerts topic, in the streaming worker's format (docs/alerts.md).

Each alert is the pipeline's record through ``stream_app.schemas.alert_record``, keyed by the
event key like the streaming worker's alerts, with ``source`` naming the backfill run and shard
instead of an events partition/offset. Its ``alert_id`` (key, event time, model version) is the
same whichever way the event was scored, so a retried shard re-sends alerts with the ids they
had, and consumers drop duplicates by id (Kafka itself cannot take a message back). The
producer is idempotent (no duplicates from its own retries) and ``write_shard`` returns only
after every alert of the shard is acknowledged by all in-sync replicas.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pyarrow as pa

from stream_app.backfill.errors import SinkError
from stream_app.backfill.sink import RunInfo


class AlertsSink:
    needs_alerts = True

    def __init__(self, bootstrap: str, topic: str, client_kwargs: dict[str, Any] | None = None,
                 linger_ms: int = 20) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self.client_kwargs = dict(client_kwargs or {})
        self.linger_ms = linger_ms
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._producer: Any = None
        self.sent = 0

    def describe(self) -> str:
        return f"kafka://{self.bootstrap}/{self.topic}"

    def spec(self) -> dict[str, Any]:
        # Security settings are not carried in tasks: workers take them from their own settings.
        return {"kind": "alerts", "bootstrap": self.bootstrap, "topic": self.topic}

    # The sink is called from synchronous code (the runner, or a worker's thread); it keeps one
    # producer on an event loop of its own.
    def _call(self, coro: Any, timeout: float = 120.0) -> Any:
        if self._loop is None:
            self._loop = asyncio.new_event_loop()
            self._thread = threading.Thread(target=self._loop.run_forever, name="ember-alerts-sink", daemon=True)
            self._thread.start()
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    async def _start(self) -> None:
        from aiokafka import AIOKafkaProducer

        producer = AIOKafkaProducer(
            bootstrap_servers=self.bootstrap, acks="all", enable_idempotence=True,
            linger_ms=self.linger_ms, **self.client_kwargs,
        )  # fmt: skip
        await producer.start()
        self._producer = producer

    def open(self, run: RunInfo) -> None:
        from stream_app import topics

        try:
            self._call(topics.ensure_topics(self.bootstrap, {self.topic: 1}, **self.client_kwargs))
            if self._producer is None:
                self._call(self._start())
        except Exception as exc:  # noqa: BLE001 - any client failure is reported the same way
            raise SinkError(f"cannot reach the alerts topic {self.describe()}: {exc!r}") from exc

    def records(self, run: RunInfo, shard: int, alerts: list[dict]) -> list[tuple[bytes, bytes]]:
        from stream_app.schemas import alert_record, to_json_bytes

        now = time.time()
        out = []
        for alert in alerts:
            rec = alert_record(alert, partition=-1, offset=-1, detected_at=now)
            rec["source"] = {"backfill_run": run.run_id, "shard": shard}
            out.append((str(alert["key"]).encode(), to_json_bytes(rec)))
        return out

    async def _send(self, messages: list[tuple[bytes, bytes]]) -> None:
        futures = [await self._producer.send(self.topic, key=k, value=v) for k, v in messages]
        await self._producer.flush()
        for fut in futures:
            await fut  # raises if the broker refused the message

    def write_shard(self, run: RunInfo, shard: int, scores: pa.Table, alerts: list[dict]) -> None:
        if self._producer is None:
            self.open(run)
        messages = self.records(run, shard, alerts)
        try:
            self._call(self._send(messages))
        except Exception as exc:  # noqa: BLE001
            raise SinkError(f"sending {len(messages)} alerts of shard {shard} to {self.describe()}: {exc!r}") from exc
        self.sent += len(messages)

    def close(self) -> None:
        if self._loop is None:
            return
        if self._producer is not None:
            try:
                self._call(self._producer.stop(), timeout=30)
            finally:
                self._producer = None
        self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._loop.close()
        self._loop = None
