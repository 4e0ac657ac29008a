"""Distributed backfill: shards are tasks on a Kafka topic, taken by a consumer group of workers.

Nothing home-made distributes work; Kafka's consumer group does:

- The coordinator (``run_backfill(..., local=False)``) stages the source once, then publishes one
  task per shard not yet done to the tasks topic (key ``run/shard``, partition ``shard % P``).
  A task carries everything a worker needs: the scan plan, source and sink specs, the model
  directory and version.
- Workers (``python -m stream_app.backfill.distributed worker``, or ``serve_backfill_tasks`` inside
  another asyncio process) form one consumer group on the tasks topic. A worker runs a task in a
  thread (the consumer keeps heartbeating): read → score → idempotent sink write → a record on
  the done topic → only then commits the task's offset. A worker that dies before the commit
  leaves the task uncommitted; after the group rebalances another worker takes it again.
- The done topic is compacted (key ``run/shard``): it is the run's manifest. The coordinator
  reads it to skip finished shards on a resume and to follow progress; workers read it to skip
  a task whose shard is already done (a task re-published by a resumed coordinator).
- A task that fails for a reason a retry will not fix (missing column, pipeline error) is
  recorded as failed and committed, so it does not loop; the coordinator stops with the error,
  and running it again after the fix publishes the shards that are not done.

Why aiokafka and not a Faust agent: a shard takes seconds to minutes of blocking work, and the
task's offset must be committed only after the sink write; a plain consumer with manual commits
and the work in a thread gives exactly that. ``serve_backfill_tasks`` can run as a task of the
streaming worker's event loop (e.g. ``app.task``) to use the same processes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from stream_app.backfill.errors import BackfillError
from stream_app.backfill.shard_task import run_shard
from stream_app.backfill.sink import RunInfo, ShardSink
from stream_app.backfill.source import ScanPlan, ShardedSource
from stream_app.backfill.timerange import TimeRange

log = logging.getLogger(__name__)

TASKS_TOPIC = "ember-backfill-tasks"
DONE_TOPIC = "ember-backfill-done"
GROUP = "ember-backfill"


@dataclass
class DistributedOptions:
    bootstrap: str
    tasks_topic: str = TASKS_TOPIC
    done_topic: str = DONE_TOPIC
    task_partitions: int = 16  # caps how many workers share one backfill
    timeout_s: float | None = None  # the coordinator gives up waiting after this
    client_kwargs: dict[str, Any] = field(default_factory=dict)


def shard_key(run_id: str, shard: int) -> bytes:
    return f"{run_id}/{shard}".encode()


async def _ensure_topics(opts: DistributedOptions) -> dict[str, int]:
    from stream_app import topics

    return await topics.ensure_topics(
        opts.bootstrap, {opts.tasks_topic: opts.task_partitions, opts.done_topic: 1},
        configs={opts.done_topic: {"cleanup.policy": "compact"}}, **opts.client_kwargs,
    )  # fmt: skip


async def read_done(opts: DistributedOptions, run_id: str | None = None) -> dict[tuple[str, int], dict]:
    """Every record of the done topic (the last one per run/shard), read to its current end."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=opts.bootstrap, enable_auto_commit=False, **opts.client_kwargs)
    await consumer.start()
    try:
        parts = consumer.partitions_for_topic(opts.done_topic) or {0}
        tps = [TopicPartition(opts.done_topic, p) for p in sorted(parts)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        out: dict[tuple[str, int], dict] = {}
        async def behind() -> bool:
            for tp in tps:
                if await consumer.position(tp) < ends[tp]:
                    return True
            return False

        while await behind():
            for msgs in (await consumer.getmany(timeout_ms=500)).values():
                for m in msgs:
                    rec = json.loads(m.value)
                    if run_id is None or rec["run_id"] == run_id:
                        out[(rec["run_id"], int(rec["shard"]))] = rec
        return out
    finally:
        await consumer.stop()


# -- coordinator ---------------------------------------------------------------------------


def run_distributed(source: ShardedSource, sink: ShardSink, model_dir: str, run: RunInfo, time_range: TimeRange,
                    opts: DistributedOptions | None, progress: bool = True, retries: int = 3,
                    cleanup: bool = True) -> Any:
    if opts is None:
        raise ValueError("local=False needs distributed=DistributedOptions(bootstrap=...)")
    return asyncio.run(_coordinate(source, sink, model_dir, run, time_range, opts, progress, retries, cleanup))


async def _coordinate(source, sink, model_dir, run: RunInfo, time_range, opts, progress, retries, cleanup):
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

    from stream_app.backfill.runner import BackfillResult, _progress

    start = time.perf_counter()
    counts = await _ensure_topics(opts)
    partitions = counts[opts.tasks_topic]
    done = {s: r for (_, s), r in (await read_done(opts, run.run_id)).items() if r.get("status") == "done"}
    todo = [i for i in range(run.shards) if i not in done]
    result = BackfillResult(run.run_id, run.shards, sorted(done), [], 0, 0, 0.0)
    if not todo:
        result.seconds = time.perf_counter() - start
        return result
    plan = await asyncio.to_thread(source.prepare, run.run_id, run.shards, time_range)
    result.plan = plan
    producer = AIOKafkaProducer(bootstrap_servers=opts.bootstrap, acks="all", enable_idempotence=True,
                                **opts.client_kwargs)
    await producer.start()
    try:
        for shard in todo:
            task = {"run": run.to_dict(), "shard": shard, "plan": plan.to_dict(), "source": source.spec(),
                    "sink": sink.spec(), "model_dir": model_dir, "retries": retries}
            await producer.send(opts.tasks_topic, key=shard_key(run.run_id, shard),
                                value=json.dumps(task).encode(), partition=shard % partitions)
        await producer.flush()
    finally:
        await producer.stop()

    bar = _progress(progress, run.shards, len(done), f"backfill {run.run_id} (distributed)")
    consumer = AIOKafkaConsumer(bootstrap_servers=opts.bootstrap, enable_auto_commit=False, **opts.client_kwargs)
    await consumer.start()
    deadline = None if opts.timeout_s is None else time.monotonic() + opts.timeout_s
    failed: dict[int, str] = {}
    try:
        tps = [TopicPartition(opts.done_topic, p) for p in sorted(consumer.partitions_for_topic(opts.done_topic) or {0})]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        pending = set(todo)
        while pending:
            if deadline is not None and time.monotonic() > deadline:
                raise BackfillError(
                    f"backfill {run.run_id}: shards {sorted(pending)} not done within {opts.timeout_s} s "
                    "(are workers running? `python -m stream_app.backfill.distributed worker`); "
                    "run the same command again to keep waiting"
                )
            for msgs in (await consumer.getmany(timeout_ms=500)).values():
                for m in msgs:
                    rec = json.loads(m.value)
                    shard = int(rec["shard"])
                    if rec["run_id"] != run.run_id or shard not in pending:
                        continue
                    if rec.get("status") == "failed":
                        failed[shard] = rec.get("error", "?")
                        pending.discard(shard)
                        continue
                    pending.discard(shard)
                    result.processed.append(shard)
                    result.per_shard[shard] = rec
                    result.rows += int(rec.get("rows", 0))
                    result.alerts += int(rec.get("alerts", 0))
                    if bar is not None:
                        bar.update(1)
                        bar.set_postfix(rows=result.rows)
    finally:
        await consumer.stop()
        if bar is not None:
            bar.close()
        sink.close()
    result.seconds = time.perf_counter() - start
    if failed:
        detail = "; ".join(f"shard {s}: {e}" for s, e in sorted(failed.items()))
        raise BackfillError(f"backfill {run.run_id}: {len(failed)} shard(s) failed ({detail}); "
                            "fix the cause and run the same command again to redo them")
    if cleanup:
        await asyncio.to_thread(source.cleanup, plan)
    return result


# -- workers -------------------------------------------------------------------------------


def _default_loader(model_dir: str) -> Any:
    from ember_models.pipeline import Pipeline

    return Pipeline.load(model_dir)


def import_loader(path: str) -> Callable[[str], Any]:
    """``module:callable`` (``module:Class.method`` too), as the streaming worker's pipeline_loader."""
    import importlib

    module, _, attr = path.partition(":")
    obj: Any = importlib.import_module(module)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


class _TaskRunner:
    """Opens sources, sinks and pipelines from task specs, caching them across tasks."""

    def __init__(self, loader: Callable[[str], Any], clients_factory: Callable[[], Any] | None,
                 client_kwargs: dict[str, Any]) -> None:
        from stream_app.backfill.bigquery_clients import BigQueryClients

        self.loader = loader
        self.clients_factory = clients_factory or BigQueryClients.from_env
        self._clients = None
        self.client_kwargs = client_kwargs
        self._pipelines: dict[str, Any] = {}
        self._sinks: dict[str, Any] = {}

    def clients(self):
        if self._clients is None:
            self._clients = self.clients_factory()
        return self._clients

    def run(self, task: dict[str, Any]) -> dict[str, Any]:
        from stream_app.backfill.specs import sink_from_spec, source_from_spec

        run = RunInfo(**task["run"])
        model_dir = task["model_dir"]
        pipe = self._pipelines.get(model_dir)
        if pipe is None or pipe.model_version != run.model_version:
            pipe = self._pipelines[model_dir] = self.loader(model_dir)
        if pipe.model_version != run.model_version:
            raise BackfillError(f"the model in {model_dir} is version {pipe.model_version}, but run {run.run_id} "
                                f"was started with {run.model_version}: it changed under the run")
        source = source_from_spec(task["source"], self.clients)
        sink_key = json.dumps(task["sink"], sort_keys=True)
        sink = self._sinks.get(sink_key)
        if sink is None:
            sink = self._sinks[sink_key] = sink_from_spec(task["sink"], self.clients, self.client_kwargs)
            sink.open(run)
        outcome = run_shard(source, sink, pipe, ScanPlan.from_dict(task["plan"]), run, int(task["shard"]),
                            int(task.get("retries", 3)))
        return outcome.record(run)

    def close(self) -> None:
        for sink in self._sinks.values():
            sink.close()


async def serve_backfill_tasks(
    bootstrap: str,
    stop: asyncio.Event | None = None,
    *,
    tasks_topic: str = TASKS_TOPIC,
    done_topic: str = DONE_TOPIC,
    group: str = GROUP,
    loader: Callable[[str], Any] = _default_loader,
    clients_factory: Callable[[], Any] | None = None,
    client_kwargs: dict[str, Any] | None = None,
    session_timeout_s: float = 10.0,
    max_shard_s: float = 3600.0,
    max_tasks: int | None = None,
    on_task: Callable[[str, dict], None] | None = None,
) -> int:
    """Take shard tasks as a member of ``group`` until ``stop`` is set; returns tasks finished."""
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

    client_kwargs = dict(client_kwargs or {})
    opts = DistributedOptions(bootstrap, tasks_topic, done_topic, client_kwargs=client_kwargs)
    await _ensure_topics(opts)
    stop = stop or asyncio.Event()
    done = {k for k, r in (await read_done(opts)).items() if r.get("status") == "done"}
    runner = _TaskRunner(loader, clients_factory, client_kwargs)
    consumer = AIOKafkaConsumer(
        tasks_topic, bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False,
        auto_offset_reset="earliest", max_poll_records=1,
        session_timeout_ms=int(session_timeout_s * 1000), heartbeat_interval_ms=int(session_timeout_s * 1000 / 3),
        max_poll_interval_ms=int(max_shard_s * 1000), **client_kwargs,
    )  # fmt: skip
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, **client_kwargs)
    await producer.start()
    await consumer.start()
    finished = 0
    try:
        while not stop.is_set() and (max_tasks is None or finished < max_tasks):
            batch = await consumer.getmany(timeout_ms=500, max_records=1)
            for tp, msgs in batch.items():
                for m in msgs:
                    task = json.loads(m.value)
                    run_id, shard = task["run"]["run_id"], int(task["shard"])
                    if (run_id, shard) in done:
                        status = "skipped"
                    else:
                        if on_task:
                            on_task("start", task)
                        try:
                            record = await asyncio.to_thread(runner.run, task)
                            record.update(status="done")
                        except BackfillError as exc:
                            record = {"status": "failed", "error": str(exc)}
                        except Exception as exc:  # noqa: BLE001 - any failure of the task is reported, not looped
                            record = {"status": "failed", "error": f"{type(exc).__name__}: {exc}"}
                        record.update(run_id=run_id, shard=shard, worker=os.getpid())
                        await producer.send_and_wait(done_topic, key=shard_key(run_id, shard),
                                                     value=json.dumps(record).encode())
                        if record["status"] == "done":
                            done.add((run_id, shard))
                        status = record["status"]
                    # Only now: a worker that died before this line leaves the task to another.
                    await consumer.commit({TopicPartition(tp.topic, tp.partition): m.offset + 1})
                    finished += 1
                    if on_task:
                        on_task(status, task)
    finally:
        runner.close()
        await consumer.stop()
        await producer.stop()
    return finished


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stream_app.backfill.distributed",
                                     description="Run a backfill worker: take shard tasks from Kafka.")
    parser.add_argument("action", choices=["worker"])
    parser.add_argument("--bootstrap", default=None, help="Kafka host:port (default: the worker settings')")
    parser.add_argument("--group", default=GROUP)
    parser.add_argument("--tasks-topic", default=TASKS_TOPIC)
    parser.add_argument("--done-topic", default=DONE_TOPIC)
    parser.add_argument("--pipeline-loader", default=None,
                        help="module:callable(model_dir) -> pipeline (default: Pipeline.load)")
    parser.add_argument("--session-timeout-s", type=float, default=10.0)
    parser.add_argument("--max-shard-s", type=float, default=3600.0)
    parser.add_argument("--max-tasks", type=int, default=None)
    args = parser.parse_args(argv)
    from stream_app.settings import StreamSettings

    settings = StreamSettings()
    loader = import_loader(args.pipeline_loader) if args.pipeline_loader else _default_loader

    def report(event: str, task: dict) -> None:
        print(f"{event} run={task['run']['run_id']} shard={task['shard']}", flush=True)

    stop = asyncio.Event()

    async def serve() -> int:
        import signal

        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        return await serve_backfill_tasks(
            args.bootstrap or settings.kafka_bootstrap, stop, tasks_topic=args.tasks_topic,
            done_topic=args.done_topic, group=args.group, loader=loader,
            client_kwargs=settings.client_kwargs(), session_timeout_s=args.session_timeout_s,
            max_shard_s=args.max_shard_s, max_tasks=args.max_tasks, on_task=report,
        )  # fmt: skip

    print("ready", flush=True)
    finished = asyncio.run(serve())
    print(f"stopped after {finished} task(s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
