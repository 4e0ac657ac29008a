"""``ember broker``, ``ember worker`` and ``ember demo``: the Kafka side of the command line.

``ember demo`` is the README's main job: everything local, nothing to configure. It generates
the sample stream (``stream_app.sample``), trains a model on its first half, starts a local
Kafka broker (``stream_app.broker``: Kafka 3.9 KRaft from Maven Central jars), one worker
(``python -m stream_app.worker``) and a producer that replays the second half, with its injected
anomalies, at ``--rate`` events/s; it prints each alert as it arrives on the alerts topic, until
Ctrl-C (or ``--duration``), then stops everything it started.
"""
from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import click


@click.command("broker", context_settings={"ignore_unknown_options": True})
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def broker_cmd(args):
    """The local single-node Kafka broker: start | stop | status | fetch (see scripts/kafka)."""
    from stream_app import broker

    raise SystemExit(broker.main(list(args)))


@click.command("worker", context_settings={"ignore_unknown_options": True})
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def worker_cmd(args):
    """A streaming worker (Faust): settings from EMBER_* variables and an optional --config TOML."""
    from stream_app import worker

    raise SystemExit(worker.main(list(args)))


def _rows_for_kafka(table) -> list[dict]:
    """Event dicts as producers send them: missing values as JSON null (NaN is not JSON)."""
    rows = table.to_pylist()
    for row in rows:
        for k, v in row.items():
            if isinstance(v, float) and not math.isfinite(v):
                row[k] = None
    return rows


def _print_alert(raw: bytes) -> None:
    try:
        a = json.loads(raw)
    except ValueError:
        click.echo(f"alert (undecodable): {raw[:200]!r}")
        return
    when = datetime.fromtimestamp(float(a.get("event_time", a.get("time", 0))), timezone.utc)
    top = a.get("top_features") or []
    why = ", ".join(f"{f.get('name')} {float(f.get('deviation', 0)):+.1f}σ" for f in top[:2])
    click.echo(f"ALERT {a.get('key')}  {when:%Y-%m-%d %H:%M:%S}  score {float(a.get('score', 0)):.3f}"
               f"  (threshold {float(a.get('threshold', 0)):.2f})  {why}")


async def _follow_alerts(bootstrap: str, topic: str, stop: threading.Event, seen: list) -> None:
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                                enable_auto_commit=False, group_id=None)
    await consumer.start()
    try:
        while not stop.is_set():
            batch = await consumer.getmany(timeout_ms=300)
            for records in batch.values():
                for rec in records:
                    seen.append(rec.value)
                    _print_alert(rec.value)
    finally:
        await consumer.stop()


@click.command("demo")
@click.option("--output", type=click.Path(file_okay=False), default="out/demo", show_default=True,
              help="Sample data, model, broker and worker files.")
@click.option("--rate", type=float, default=300.0, show_default=True, help="Events per second sent.")
@click.option("--duration", type=float, default=None,
              help="Stop after this many seconds (default: when the sample is sent and scored, or Ctrl-C).")
@click.option("--keys", type=int, default=8, show_default=True)
@click.option("--events-per-key", type=int, default=1500, show_default=True)
def demo(output, rate, duration, keys, events_per_key):
    """Local broker + worker + a producer of the sample stream; prints alerts until Ctrl-C."""
    from ember_models.config import parse_config
    from stream_app import broker, model_runs
    from stream_app.event_fields import EventFields
    from stream_app.files import read_events
    from stream_app.produce import encode_messages, produce
    from stream_app.sample import SAMPLE_CONFIG, write_sample
    from stream_app.settings import StreamSettings

    out = Path(output).resolve()
    paths = write_sample(out / "data", n_keys=keys, events_per_key=events_per_key)
    config = parse_config(SAMPLE_CONFIG, source="stream_app.sample.SAMPLE_CONFIG")
    click.echo(f"sample stream: {paths['history']} (training), {paths['live']} (sent to Kafka)")
    res = model_runs.train(config, [paths["history"]], out / "model", progress=False)
    click.echo(f"model trained on {res.events} events of {res.keys} keys -> {res.model_dir}")

    click.echo("starting the local Kafka broker (first run fetches the jars with Maven) ...")
    state = broker.start(run_dir=out / "broker")
    settings = StreamSettings.load(None, kafka_bootstrap=state.bootstrap)
    click.echo(f"broker at {state.bootstrap} (pid {state.pid})")
    # topics first, so the producer and the alert reader do not race the worker creating them
    from stream_app.worker import prepare_topics
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    prepare_topics(settings)
    # the broker starts empty every time, so the worker's RocksDB state must too (Faust refuses
    # a local state ahead of its changelog)
    shutil.rmtree(out / "worker-data", ignore_errors=True)
    env = dict(os.environ, EMBER_KAFKA_BOOTSTRAP=state.bootstrap, EMBER_MODEL_DIR=str(out / "model"),
               EMBER_DATADIR=str(out / "worker-data"), EMBER_APP_ID="ember-demo", EMBER_WEB_PORT="0")
    log = open(out / "worker.log", "wb")
    worker = subprocess.Popen([sys.executable, "-m", "stream_app.worker"], env=env, stdout=log,
                              stderr=subprocess.STDOUT)
    click.echo(f"worker started (pid {worker.pid}, log {out / 'worker.log'}); alerts follow. Ctrl-C stops.")

    stop = threading.Event()
    alerts: list = []
    follower = threading.Thread(target=lambda: asyncio.run(
        _follow_alerts(state.bootstrap, settings.alerts_topic, stop, alerts)), daemon=True)
    follower.start()
    fields = EventFields.from_config(config)
    live, _ = read_events(paths["live"], fields)
    messages = encode_messages(_rows_for_kafka(live), fields.key_field, settings.partitions)
    sent = {"n": 0}

    def send():
        sent["n"] = asyncio.run(produce(state.bootstrap, settings.events_topic, messages, rate=rate))
    producer = threading.Thread(target=send, daemon=True)
    producer.start()
    started = time.monotonic()
    try:
        while True:
            time.sleep(0.5)
            if worker.poll() is not None:
                click.echo(f"the worker exited with {worker.returncode}; see {out / 'worker.log'}", err=True)
                break
            if duration is not None and time.monotonic() - started >= duration:
                break
            if duration is None and not producer.is_alive() and time.monotonic() - started > len(messages) / rate + 15:
                break
    except KeyboardInterrupt:
        click.echo("\nstopping ...")
    finally:
        stop.set()
        follower.join(5)
        if worker.poll() is None:
            worker.send_signal(signal.SIGTERM)
            try:
                worker.wait(30)
            except subprocess.TimeoutExpired:
                worker.kill()
        log.close()
        broker.stop(out / "broker")
    click.echo(f"sent {sent['n'] or '(interrupted)'} events; {len(alerts)} alerts; broker and worker stopped")


COMMANDS = (broker_cmd, worker_cmd, demo)


def register(group: click.Group) -> click.Group:
    for command in COMMANDS:
        group.add_command(command)
    return group
