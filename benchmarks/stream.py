"""Streaming throughput and latency through a real Kafka broker, next to raw aiokafka passthrough.

    .venv/bin/python benchmarks/stream.py                 # starts a local broker (scripts/kafka)
    EMBER_KAFKA_BOOTSTRAP=host:port .venv/bin/python benchmarks/stream.py --events 200000

For each message format (``--formats json:1,json:100,arrow:100``: one JSON event per message,
JSON arrays of 100 events, Arrow IPC streams of 100 rows), on the same broker in the same run:

1. **raw passthrough**: one aiokafka consumer (consumer group, manual commits) reads the backlog
   of event messages with ``getmany``, produces every message unchanged to another topic, waits
   for the broker's acks and commits — per ``getmany`` batch. Nothing is decoded. Twice: with
   aiokafka's default producer batch (16 KB, the ``ratio`` column) and with 1 MB batches
   (``raw 1MB``): batch messages of ~10 KB go one per produce batch with the default.
2. **ember worker**: one ``python -m stream_app.worker`` (Faust, the real fitted Pipeline,
   at-least-once by default) is started on the same backlog; events/s is measured as the raw
   client's is, from its first batch to its last (``/metrics``, ``/health``: the events done
   after the first time any is seen, over the time from then to the last batch). The rate
   from the moment it holds its partitions (Faust's table recovery, agent start and first
   fetch included) and that start-up time are printed beside it.
3. **latency**: with the worker idle, fresh events (later in time, 1 % spiked) are produced at
   ``--latency-fractions`` of the worker's measured rate (default one half) and at
   ``--latency-rates`` (events/s; lowest first, each once the worker has caught up with the one
   before) for ``--latency-seconds``; for each alert, latency = alert received − its event's message sent
   (the alert names the source partition and offset). p50 / p99 (and apart, the p99 of the
   events sent in the phase's first second and after it: the worker idles while this process
   makes the phase's rows, and its first batches after that ran up to ~2x slower per event),
   the slowest 1 % with the time they were sent and their time to detection (a cluster names
   a stall), and the worker's own split of the phase
   (CPU, batch and step time per event, cores used by its two processes). This process
   freezes its heap first (``gc.freeze``): its rows are millions of objects, and collections
   of them mid-run took a core from the broker and the worker.

Prints one table and the ratio worker / raw per format. Events are the generated sample
(stream_app.sample) over ``--keys`` keys, with 1 % of events spiked so alerts are frequent.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

import numpy as np
import pyarrow.compute as pc

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer  # noqa: E402
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

from stream_app import broker  # noqa: E402
from stream_app.produce import encode_messages, produce  # noqa: E402
from stream_app.topics import ensure_topics, wait_for_coordinators  # noqa: E402

CONFIG = {"data": {"key_field": "service", "time_field": "time",
                   "value_fields": ["requests", "latency_ms"], "categorical_fields": ["status"]},
          "model": {"warmup_events": 50}}


# ----------------------------------------------------------------------------- data


def make_data(keys: int, events: int, seed: int = 11):
    """(history table to fit on, live rows with 1 % spikes)."""
    from stream_app.sample import make_sample

    per_key = max(200, int(events / keys / 0.8) + 1)
    sample = make_sample(seed=seed, n_keys=keys, events_per_key=per_key)
    t = sample.events.column("time")
    split = sample.split_time(0.2)
    history = sample.events.filter(pc.less(t, split))
    rows = sample.events.filter(pc.greater_equal(t, split)).to_pylist()[:events]
    rng = np.random.default_rng(seed)
    for i in rng.choice(len(rows), size=len(rows) // 100, replace=False):
        rows[i]["requests"] = rows[i]["requests"] * 20 + 3000
    return history, rows


def later_rows(rows: list[dict], n: int, cycles: int, seed: int = 5) -> tuple[list[dict], int]:
    """``n`` fresh events for the latency runs: ``rows`` again, each pass over them shifted
    past every event sent so far (``cycles`` passes were made before). 1 % are spiked, larger
    at every pass, so they still alert once the model's tails have seen the earlier spikes.
    Returns the events and the passes made in all."""
    span = rows[-1]["time"] - rows[0]["time"] + 1.0
    rng = np.random.default_rng(seed + cycles)
    out = []
    for i in range(n):
        cycle = cycles + 1 + i // len(rows)
        row = dict(rows[i % len(rows)])
        row["time"] += span * cycle
        if rng.random() < 0.01:
            row["requests"] = (row["requests"] * 30 + 5000) * (cycle + 1)
        out.append(row)
    return out, cycles + 1 + (n - 1) // len(rows)


def fit_model(history, model_dir: Path) -> str:
    from ember_models.config import parse_config
    from ember_models.pipeline import Pipeline

    pipe = Pipeline(parse_config(CONFIG)).fit(history)
    pipe.save(model_dir)
    return pipe.model_version


# ----------------------------------------------------------------------------- kafka helpers


def machine_seconds() -> tuple[float, float]:
    """(CPU seconds all processes have used so far, on every core: Linux /proc/stat, not idle,
    waiting for I/O or stolen; seconds the hypervisor ran something else while this VM had
    work: "steal"). The first, with the worker's own, says whether the machine is full (broker,
    this script's producer and reader, the worker); the second, whether the VM itself was held
    up (a stall no process here can show)."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    ticks = [int(x) for x in fields[:8]]  # user nice system idle iowait irq softirq steal
    hz = os.sysconf("SC_CLK_TCK")
    return (sum(ticks) - ticks[3] - ticks[4] - ticks[7]) / hz, ticks[7] / hz


async def produce_all(bootstrap: str, topic: str, messages, rate: float | None = None,
                      sent_at: dict | None = None, linger_ms: int = 5) -> None:
    """``stream_app.produce.produce``, recording each message's send time by (partition, offset)."""
    on_sent = None if sent_at is None else \
        (lambda md, t: sent_at.__setitem__((md.partition, md.offset), t))
    await produce(bootstrap, topic, messages, rate=rate, linger_ms=linger_ms, on_sent=on_sent)


async def raw_passthrough(bootstrap: str, src: str, dst: str, n_messages: int, per_message: float,
                          batch_bytes: int = 16384) -> float:
    """consume (getmany) → produce every message → wait for acks → commit; events/s.
    ``batch_bytes``: the producer's ``max_batch_size`` (aiokafka's default 16 KB holds one JSON
    array of 100 events, ~9.6 KB, per produce batch: 1 MB passes 3-10x more here)."""
    group = f"raw-{uuid.uuid4().hex[:6]}"
    await wait_for_coordinators(bootstrap, group_ids=[group])
    consumer = AIOKafkaConsumer(src, bootstrap_servers=bootstrap, group_id=group,
                                enable_auto_commit=False, auto_offset_reset="earliest",
                                max_partition_fetch_bytes=8 * 1024 * 1024)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, acks="all",
                                max_request_size=16 * 1024 * 1024, max_batch_size=batch_bytes)
    await consumer.start()
    await producer.start()
    try:
        seen, t_first = 0, None
        while seen < n_messages:
            batch = await consumer.getmany(timeout_ms=1000, max_records=1000)
            if not batch:
                continue
            if t_first is None:
                t_first = time.perf_counter()
            futures = []
            for tp, msgs in batch.items():
                for m in msgs:
                    futures.append(await producer.send(dst, m.value, key=m.key, partition=tp.partition))
                seen += len(msgs)
            await asyncio.gather(*futures)
            await consumer.commit()
        elapsed = time.perf_counter() - t_first
    finally:
        await consumer.stop()
        await producer.stop()
    return n_messages * per_message / elapsed


# ----------------------------------------------------------------------------- the worker


class Worker:
    def __init__(self, bootstrap: str, topics: dict[str, str], model_dir: Path, workdir: Path,
                 guarantee: str, batch_size: int, max_wait: float):
        self.port = broker.free_port()
        env = dict(os.environ)
        env.update({
            "EMBER_KAFKA_BOOTSTRAP": bootstrap, "EMBER_APP_ID": f"bench-{uuid.uuid4().hex[:6]}",
            "EMBER_EVENTS_TOPIC": topics["events"], "EMBER_ALERTS_TOPIC": topics["alerts"],
            "EMBER_DEAD_LETTER_TOPIC": topics["dlq"], "EMBER_MODEL_DIR": str(model_dir),
            "EMBER_DATADIR": str(workdir / "data"), "EMBER_WEB_PORT": str(self.port),
            "EMBER_PROCESSING_GUARANTEE": guarantee, "EMBER_BATCH_SIZE": str(batch_size),
            "EMBER_BATCH_MAX_WAIT_S": str(max_wait), "EMBER_MODEL_POLL_S": "0",
            "PYTHONPATH": os.pathsep.join([str(REPO)] + ([os.environ["PYTHONPATH"]] if os.environ.get("PYTHONPATH") else [])),
        })
        self.log = open(workdir / "worker.log", "ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "stream_app.worker"], cwd=REPO, env=env,
                                     stdout=self.log, stderr=subprocess.STDOUT)

    def _get(self, path: str) -> str | None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=2) as r:
                return r.read().decode()
        except Exception:
            return None

    def samples(self) -> list:
        """Every sample of the worker's /metrics now (none while it does not answer)."""
        text = self._get("/metrics") or ""
        return [x for family in text_string_to_metric_families(text) for x in family.samples]

    def metric(self, name: str) -> float:
        """An unlabelled sample's value (0 until the worker reports it)."""
        return next((x.value for x in self.samples() if x.name == name and not x.labels), 0.0)

    def histograms(self) -> dict[str, dict[float, float]]:
        """The worker's latency histograms: name -> {bucket upper bound: cumulative count}."""
        out: dict[str, dict[float, float]] = {}
        for x in self.samples():
            if x.name.startswith("ember_") and x.name.endswith("_bucket"):
                out.setdefault(x.name[:-len("_bucket")], {})[float(x.labels["le"])] = x.value
        return out

    def events_done(self) -> float:
        return self.metric("ember_events_total")

    def cpu_seconds(self) -> float:
        """User + system CPU time so far of the worker process and its children (its compute
        process: stream_app.compute_process), from Linux /proc."""
        return sum(self._cpu_by_process().values())

    def _cpu_by_process(self) -> dict[int, float]:
        tick = os.sysconf("SC_CLK_TCK")
        out: dict[int, float] = {}
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            pid = int(stat.parent.name)
            if pid == self.proc.pid or int(fields[1]) == self.proc.pid:  # itself, or its child
                out[pid] = (int(fields[11]) + int(fields[12])) / tick
        return out

    _SUMS = ("events_total", "batches_total", "batch_seconds_sum", "pipeline_step_seconds_sum",
             "state_write_seconds_sum", "compute_process_batches_total")

    def snapshot(self) -> dict[str, float]:
        """The /metrics counters ``breakdown`` splits, the CPU time and the wall clock now."""
        values = {name: 0.0 for name in self._SUMS}
        for x in self.samples():
            if x.name.startswith("ember_") and x.name[6:] in values and not x.labels:
                values[x.name[6:]] = x.value
        cpu = self._cpu_by_process()
        values["cpu"] = sum(cpu.values())
        values["cpu_main"] = cpu.get(self.proc.pid, 0.0)
        values["wall"] = time.monotonic()
        values["machine_busy"], values["machine_steal"] = machine_seconds()
        return values

    @staticmethod
    def breakdown(before: dict[str, float], after: dict[str, float]) -> str:
        """Where the worker's time went between two snapshots, per event; the cores its main
        and compute processes used; the share of the wall time a batch was in flight (up to
        two overlap: one stepping in the compute process, the next being prepared)."""
        d = {k: after[k] - before[k] for k in after}
        n = max(d["events_total"], 1.0)
        us = {k: d[k] / n * 1e6 for k in ("batch_seconds_sum", "pipeline_step_seconds_sum",
                                           "state_write_seconds_sum", "cpu", "cpu_main")}
        wall = max(d["wall"], 1e-9)
        return (f"{d['batches_total']:.0f} batches of {n / max(d['batches_total'], 1):.0f} events "
                f"({d['compute_process_batches_total']:.0f} in the compute process); per event: "
                f"worker CPU {us['cpu']:.2f} µs (main process {us['cpu_main']:.2f}), batch "
                f"{us['batch_seconds_sum']:.2f} µs (step {us['pipeline_step_seconds_sum']:.2f}, state "
                f"writes {us['state_write_seconds_sum']:.2f}); cores used: main process "
                f"{d['cpu_main'] / wall:.2f}, compute process {(d['cpu'] - d['cpu_main']) / wall:.2f}; "
                f"batches in flight {d['batch_seconds_sum'] / wall:.0%} of the time (two overlap); "
                f"machine busy {d['machine_busy'] / wall:.2f} of {os.cpu_count()} cores "
                f"(stolen by the hypervisor: {d['machine_steal'] / wall:.2f})")

    def wait_ready(self, timeout_s: float = 120) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("worker exited; see worker.log")
            h = self._get("/health")
            if h and json.loads(h)["assigned_partitions"]:
                return
            time.sleep(0.2)
        raise RuntimeError("worker did not get partitions")

    def throughput(self, n_events: int, timeout_s: float = 900) -> tuple[float, float, float]:
        """(events/s from the first batch, events/s from now, seconds from now to the first
        batch). Now: the worker holds its partitions and the backlog is waiting. "From the
        first batch": the events done after the first time any is seen (polled every 10 ms)
        over the time from then to the last batch, as the raw client is timed from its first
        ``getmany``. The end is the worker's own clock (``last_batch_at``)."""
        t_start = time.time()
        t_first = d_first = None
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            done = self.events_done()
            if t_first is None and done > 0:
                t_first, d_first = time.time(), done
            if done >= n_events:
                end = json.loads(self._get("/health"))["last_batch_at"]
                with_start = done / (end - t_start)
                if done <= d_first or end <= t_first:  # all of it in the first batch seen
                    return with_start, with_start, t_first - t_start
                return (done - d_first) / (end - t_first), with_start, t_first - t_start
            if self.proc.poll() is not None:
                raise RuntimeError("worker exited; see worker.log")
            time.sleep(0.01 if t_first is None else 0.25)
        raise RuntimeError(f"worker processed {self.events_done():.0f} of {n_events} events in {timeout_s} s")

    def wait_caught_up(self, n_events: int, timeout_s: float = 300) -> None:
        deadline = time.monotonic() + timeout_s
        while self.events_done() < n_events:
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError(f"worker processed {self.events_done():.0f} of {n_events} events")
            time.sleep(0.25)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


async def measure_latency(bootstrap: str, topics: dict[str, str], messages, rate_msgs: float,
                          caught_up) -> list[tuple[float, float, float]]:
    """(sent, latency, detection) in seconds of each alert of ``messages`` produced at
    ``rate_msgs`` ("sent": since the first send; "detection": from the send to the alert's
    ``detected_at``, the worker's clock: the rest of the latency is the way out); alerts are
    read until ``caught_up()`` (the worker has processed every event) and 1 s more, so the
    alerts of a queue that built up count too."""
    sent_at: dict[tuple[int, int], float] = {}
    latencies: list[tuple[float, float, float]] = []
    consumer = AIOKafkaConsumer(topics["alerts"], bootstrap_servers=bootstrap, auto_offset_reset="latest",
                                group_id=f"lat-{uuid.uuid4().hex[:6]}", enable_auto_commit=False)
    await consumer.start()
    await consumer.seek_to_end()
    received: list[tuple[float, tuple[int, int], float]] = []
    done = asyncio.Event()

    async def read_alerts():
        while not done.is_set():
            batch = await consumer.getmany(timeout_ms=100)
            now = time.time()
            for msgs in batch.values():
                for m in msgs:
                    alert = json.loads(m.value)
                    src = alert["source"]
                    received.append((now, (src["partition"], src["offset"]), alert["detected_at"]))

    reader = asyncio.create_task(read_alerts())
    # a latency-minded producer: linger 1 ms (the send time is taken when send() is called)
    await produce_all(bootstrap, topics["events"], messages, rate=rate_msgs, sent_at=sent_at, linger_ms=1)
    while not await asyncio.to_thread(caught_up):
        await asyncio.sleep(0.25)
    await asyncio.sleep(1.0)
    done.set()
    await reader
    await consumer.stop()
    t0 = min(sent_at.values(), default=0.0)
    for t_recv, src, detected in received:
        if src in sent_at:
            latencies.append((sent_at[src] - t0, t_recv - sent_at[src], detected - sent_at[src]))
    return latencies


# ----------------------------------------------------------------------------- main


def percentile_ms(seconds: list[float], q: float) -> float:
    """The q-th percentile in ms (NaN for no value)."""
    return float(np.percentile(seconds, q)) * 1000 if seconds else float("nan")


def histogram_split(before: dict, after: dict) -> str:
    """Worker-side split of a latency phase: per histogram, the bucket bound that holds the
    median and the 99th percentile of the observations made between the two snapshots."""
    parts = []
    for name in ("ember_batch_delay_seconds", "ember_batch_seconds", "ember_pipeline_step_seconds",
                 "ember_state_write_seconds"):
        b, a = before.get(name, {}), after.get(name, {})
        counts = sorted((le, a[le] - b.get(le, 0.0)) for le in a)
        total = counts[-1][1] if counts else 0.0
        if not total:
            continue
        q = {p: next(le for le, c in counts if c >= p * total) for p in (0.5, 0.99)}
        parts.append(f"{name[6:].replace('_seconds', '')} {total:.0f}: p50 <= {q[0.5] * 1000:g} ms, "
                     f"p99 <= {q[0.99] * 1000:g} ms")
    return "; ".join(parts)


def machine() -> str:
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} cores ({cpu}), Python {platform.python_version()}, {platform.system()}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", default="60000,600000",
                    help="events per format (comma-separated, matching --formats; the last for the rest)")
    ap.add_argument("--keys", type=int, default=256)
    ap.add_argument("--partitions", type=int, default=4)
    ap.add_argument("--formats", default="json:1,json:100",
                    help="message formats, comma-separated: json:N (an object, N=1, or arrays of N) "
                         "or arrow:N (Arrow IPC streams of N rows)")
    ap.add_argument("--per-message", default=None, help="JSON only, events per message (old spelling "
                    "of --formats json:N,...)")
    ap.add_argument("--batch-size", type=int, default=1000, help="worker micro-batch (messages)")
    ap.add_argument("--max-wait", type=float, default=0.01, help="worker batch_max_wait_s")
    ap.add_argument("--guarantee", default="at_least_once", choices=["at_least_once", "exactly_once"])
    ap.add_argument("--latency-seconds", type=float, default=10.0)
    ap.add_argument("--latency-fractions", default="0.5",
                    help="measure latency at these fractions of the worker's max rate (comma-separated)")
    ap.add_argument("--latency-rates", default="",
                    help="and at these rates, events/s (comma-separated): to compare settings or "
                         "versions at the same load, which fractions of a measured rate are not")
    ap.add_argument("--keep", action="store_true", help="keep the work directory (worker logs, broker data)")
    args = ap.parse_args()
    spec = ",".join(f"json:{x}" for x in args.per_message.split(",")) if args.per_message else args.formats
    formats = [(f.split(":")[0], int(f.split(":")[1])) for f in spec.split(",")]
    counts = [int(x) for x in args.events.split(",")]
    counts += counts[-1:] * (len(formats) - len(counts))  # the last count for formats not given one
    fractions = [float(x) for x in args.latency_fractions.split(",") if x]
    fixed_rates = [float(x) for x in args.latency_rates.split(",") if x]

    work = Path(tempfile.mkdtemp(prefix="ember-bench-"))
    kafka = contextlib.ExitStack()  # closed in the finally below: a broker started here stops
    bootstrap, started = kafka.enter_context(broker.given_or_started(work / "kafka"))
    print(f"machine: {machine()}; Kafka {broker.DEFAULT_VERSION if started else '(external)'} at {bootstrap}")
    try:
        t0 = time.perf_counter()
        history, rows = make_data(args.keys, max(counts))
        version = fit_model(history, work / "model")
        print(f"data: up to {len(rows)} events, {args.keys} keys; model {version} fitted on "
              f"{history.num_rows} events ({time.perf_counter() - t0:.1f} s)")
        results = []
        for (fmt, per), count in zip(formats, counts):
            fmt_rows = rows[:count]
            msgs = encode_messages(fmt_rows, "service", args.partitions, per, fmt)
            tag = uuid.uuid4().hex[:6]
            names = {k: f"bench-{tag}-{k}" for k in ("raw-in", "raw-out", "events", "alerts", "dlq")}
            asyncio.run(ensure_topics(bootstrap, {n: args.partitions for n in names.values()}))
            asyncio.run(produce_all(bootstrap, names["raw-in"], msgs))
            raw = asyncio.run(raw_passthrough(bootstrap, names["raw-in"], names["raw-out"], len(msgs),
                                              len(fmt_rows) / len(msgs)))
            raw_1m = asyncio.run(raw_passthrough(bootstrap, names["raw-in"], names["raw-out"], len(msgs),
                                                 len(fmt_rows) / len(msgs), batch_bytes=1 << 20))

            asyncio.run(produce_all(bootstrap, names["events"], msgs))
            wdir = work / f"worker-{fmt}-{per}"
            wdir.mkdir()
            topics = {"events": names["events"], "alerts": names["alerts"], "dlq": names["dlq"]}
            print(f"{fmt}:{per}: {len(msgs)} messages, {sum(len(m[2]) for m in msgs) / len(fmt_rows):.0f} "
                  f"bytes per event; raw {raw:.0f} events/s (1 MB producer batches: {raw_1m:.0f}); load average {os.getloadavg()}", flush=True)
            w = Worker(bootstrap, topics, work / "model", wdir, args.guarantee, args.batch_size, args.max_wait)
            cycles = 0  # passes over the rows made so far (each later in time than the last)
            try:
                w.wait_ready()
                snap = w.snapshot()
                ember, with_start, start_s = w.throughput(len(fmt_rows))
                print(f"  ember {ember:.0f} events/s from its first batch ({with_start:.0f} from holding its "
                      f"partitions; first batch done {start_s:.2f} s after); {w.breakdown(snap, w.snapshot())}; "
                      f"load average {os.getloadavg()}", flush=True)
                sent = len(fmt_rows)
                phases = sorted([(ember * f, f"{f:g} of max rate") for f in fractions]
                                + [(r, f"{r:.0f} events/s") for r in fixed_rates])
                for rate, phase in phases:  # lowest rate first
                    lat_rows, cycles = later_rows(fmt_rows, max(int(rate * args.latency_seconds), 1), cycles)
                    lat_msgs = encode_messages(lat_rows, "service", args.partitions, per, fmt)
                    sent += len(lat_rows)
                    # This process holds every row made (millions of objects): it was seen at a
                    # full core for 0.2-0.4 s in the middle of latency runs (full collections of
                    # them), CPU the broker and the worker share. Frozen, collections skip them.
                    gc.collect()
                    gc.freeze()
                    hist0, snap = w.histograms(), w.snapshot()
                    lat = asyncio.run(measure_latency(
                        bootstrap, topics, lat_msgs, rate_msgs=len(lat_msgs) / args.latency_seconds,
                        caught_up=lambda n=sent: w.events_done() >= n or w.proc.poll() is not None))
                    w.wait_caught_up(sent)  # no backlog left for the next rate (or the worker died)
                    print(f"  latency at {phase}, worker side: {w.breakdown(snap, w.snapshot())}; "
                          f"{histogram_split(hist0, w.histograms())}", flush=True)
                    worst = sorted(lat, key=lambda x: -x[1])[:max(len(lat) // 100, 3)]
                    print("  slowest alerts (sent at s: latency ms, of which to detection): "
                          + ", ".join(f"{t:.2f}: {d * 1000:.0f} ({det * 1000:.0f})"
                                      for t, d, det in sorted(worst)), flush=True)
                    first = [d for t, d, _ in lat if t < 1.0]
                    rest = [d for t, d, _ in lat if t >= 1.0]
                    print(f"  p99 ms of the events sent in the first second: {percentile_ms(first, 99):.1f} "
                          f"({len(first)} alerts); after it: {percentile_ms(rest, 99):.1f} ({len(rest)})", flush=True)
                    lat = [d for _, d, _ in lat]
                    p50, p99 = percentile_ms(lat, 50), percentile_ms(lat, 99)
                    results.append((f"{fmt}:{per}", raw, ember, ember / raw, raw_1m, rate, len(lat), p50, p99))
            finally:
                w.stop()
        print()
        print(f"{'format':>10} {'raw ev/s':>10} {'ember ev/s':>11} {'ratio':>6} {'raw 1MB':>9} {'ratio':>6} "
              f"{'lat rate':>9} {'alerts':>7} {'p50 ms':>7} {'p99 ms':>7}")
        for per, raw, ember, ratio, raw_1m, rate, n, p50, p99 in results:
            print(f"{per:>10} {raw:>10.0f} {ember:>11.0f} {ratio:>6.2f} {raw_1m:>9.0f} {ember / raw_1m:>6.2f} "
                  f"{rate:>9.0f} {n:>7} {p50:>7.1f} {p99:>7.1f}")
        print(f"load average at the end: {os.getloadavg()}")
        print(f"(worker: {args.guarantee}, batch {args.batch_size} messages / {args.max_wait * 1000:.0f} ms, "
              f"{args.partitions} partitions, 1 worker process; raw: 1 aiokafka process)")
    finally:
        kafka.close()
        if args.keep:
            print(f"kept {work} (worker logs, broker data)")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
