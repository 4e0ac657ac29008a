"""Backfill throughput: local Parquet → scores, events per second per core (numpy backend).

    .venv/bin/python benchmarks/backfill.py                     # 10k keys x 1k events (10M)
    .venv/bin/python benchmarks/backfill.py --keys 1000 --events 200   # quick
    .venv/bin/python benchmarks/backfill.py --repeat 5          # the median of 5 end-to-end runs

What is measured, in one process limited to one thread (Arrow, BLAS) so the figure is per core
(reported per wall second and per CPU second of the process: on a shared machine the CPU-second
figure is the per-core one, wall time also counts other people's processes and file syncs):

1. backfill: ``run_backfill(FileSource(parquet dir), ParquetSink, pipeline, shards, local=True)``
   end to end: one pass staging the files into per-shard Arrow files, then per shard read → sort
   by (key, time) → ``Pipeline.score`` → Parquet write. Reported with the time per phase
   (measured again on one shard; wall and CPU) so it is clear where the time goes. ``--shards``
   defaults to 8, the CLI's default (~1,250 keys per detector step here); fewer, larger shards
   were not faster end to end (docs/performance.md, "Backfill").
2. streaming path: ``Pipeline.step`` on micro-batches of ``--batch`` events in event-time order,
   carrying every key's state between batches as the streaming worker does (no Kafka: the
   model-core cost of the streaming path), over the first ``--stream-events`` events.

The ratio backfill / streaming is printed; both figures come from the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

# the checkout this file is in, before any installed copy (a second worktree measures itself)
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def limit_threads(threads: int) -> None:
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(threads)


class PhaseTimer:
    """``with timer("name"):`` records (wall seconds, CPU seconds of the process) per name."""

    def __init__(self) -> None:
        self.seconds: dict[str, tuple[float, float]] = {}

    def __call__(self, name: str):
        import contextlib

        @contextlib.contextmanager
        def timed():
            wall, cpu = time.perf_counter(), time.process_time()
            yield
            self.seconds[name] = (time.perf_counter() - wall, time.process_time() - cpu)

        return timed()


def make_events(keys: int, per_key: int, directory: Path, files: int, seed: int = 0):
    """keys x per_key events, 2 value fields, spread over ``files`` Parquet files in time order
    (as exported history usually is: each file a time slice with every key mixed)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    names = pa.array([f"host-{k:05d}" for k in range(keys)])
    gaps = rng.exponential(60.0, size=(keys, per_key)) + 1.0
    times = 1_700_000_000.0 + np.cumsum(gaps, axis=1)
    order = np.argsort(times, axis=None, kind="stable")  # global time order
    key_idx = (order // per_key).astype(np.int32)
    t = times.ravel()[order]
    cpu = rng.normal(50.0, 5.0, size=keys * per_key)
    lat = rng.gamma(2.0, 10.0, size=keys * per_key)
    directory.mkdir(parents=True, exist_ok=True)
    n = keys * per_key
    step = -(-n // files)
    for i in range(files):
        sl = slice(i * step, min(n, (i + 1) * step))
        pq.write_table(pa.table({
            "host": names.take(pa.array(key_idx[sl])),
            "ts": pa.array(t[sl]),
            "cpu": pa.array(cpu[sl]),
            "latency_ms": pa.array(lat[sl]),
        }), directory / f"events-{i:03d}.parquet")
    return n


def make_pipeline(history):
    from ember_models.config import parse_config
    from ember_models.pipeline import Pipeline

    config = parse_config({"data": {"key_field": "host", "time_field": "ts", "value_fields": ["cpu", "latency_ms"]}})
    return Pipeline(config).fit(history)


def streaming_rate(pipe, events, batch: int) -> tuple[float, float, int]:
    """(events per wall second, events per CPU second) of Pipeline.step over micro-batches in
    time order, states carried per key."""
    states: dict[str, bytes] = {}
    key_col = events.column("host")
    start, cpu = time.perf_counter(), time.process_time()
    for lo in range(0, events.num_rows, batch):
        chunk = events.slice(lo, batch)
        keys = set(key_col.slice(lo, batch).to_pylist())
        res = pipe.step(chunk, {k: states.get(k) for k in keys})
        states.update(res.states)
    n = events.num_rows
    return n / (time.perf_counter() - start), n / (time.process_time() - cpu), n


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--keys", type=int, default=10_000)
    p.add_argument("--events", type=int, default=1_000, help="events per key")
    p.add_argument("--shards", type=int, default=8)
    p.add_argument("--keys-per-step", type=int, default=None,
                   help="keys per Pipeline.score call within a shard (default: the backfill's, 2,500)")
    p.add_argument("--files", type=int, default=16)
    p.add_argument("--batch", type=int, default=1_000, help="streaming micro-batch size")
    p.add_argument("--stream-events", type=int, default=200_000, help="events timed on the streaming path")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeat", type=int, default=1,
                   help="run the end-to-end backfill this many times; the median run is the figure "
                        "(on a shared host one run's CPU time swings with the other tenants)")
    p.add_argument("--workdir", default=None)
    p.add_argument("--json", default=None, help="also write the figures to this file")
    args = p.parse_args(argv)
    limit_threads(args.threads)

    import pyarrow as pa
    import pyarrow.parquet as pq

    pa.set_cpu_count(args.threads)
    pa.set_io_thread_count(args.threads)
    from ember_models import backend

    backend.set_backend("numpy")
    from stream_app.backfill import EventFields, FileSource, LocalManifest, ParquetSink, TimeRange, run_backfill
    from stream_app.backfill.shard_task import score_table
    from stream_app.backfill.sink import RunInfo

    work = Path(args.workdir or tempfile.mkdtemp(prefix="ember-bench-backfill-"))
    try:
        t0 = time.perf_counter()
        n = make_events(args.keys, args.events, work / "in", args.files)
        gen_s = time.perf_counter() - t0
        first = pq.read_table(sorted((work / "in").iterdir())[0])
        pipe = make_pipeline(first.slice(0, 50_000))
        fields = EventFields.from_pipeline(pipe)
        print(f"{n:,} events ({args.keys:,} keys x {args.events:,}) in {args.files} Parquet files, "
              f"{sum(f.stat().st_size for f in (work / 'in').iterdir()) / 2**20:.0f} MiB, made in {gen_s:.1f} s")

        runs = []  # (wall seconds, CPU seconds) per end-to-end run
        for i in range(max(1, args.repeat)):
            tag = "" if i == 0 else f"-{i}"
            source = FileSource(work / "in", fields, staging_dir=work / f"stage{tag}")
            cpu0 = time.process_time()
            result = run_backfill(source, ParquetSink(work / f"out{tag}"), pipe, shards=args.shards,
                                  run_id="bench", manifest=LocalManifest(work / f"state{tag}"),
                                  progress=False, cleanup=False,
                                  **({"keys_per_step": args.keys_per_step} if args.keys_per_step else {}))
            runs.append((result.seconds, time.process_time() - cpu0))
            assert result.rows == n, (result.rows, n)
            if args.repeat > 1:
                print(f"  run {i + 1}: {n / runs[-1][0]:,.0f} events/s wall, {n / runs[-1][1]:,.0f} per CPU second",
                      flush=True)
            if i:
                for d in (f"stage{tag}", f"out{tag}", f"state{tag}"):
                    shutil.rmtree(work / d, ignore_errors=True)
        # the median run by CPU time (the first when there is one); its figures are reported
        wall_s, cpu_s = sorted(runs, key=lambda r: r[1])[(len(runs) - 1) // 2]
        backfill_rate = n / wall_s
        source = FileSource(work / "in", fields, staging_dir=work / "stage")

        # Where the time goes, on one shard (again, separately timed): wall and CPU seconds.
        plan = source.prepare("bench", args.shards, TimeRange())
        phase = PhaseTimer()
        with phase("stage"):
            source_phase = FileSource(work / "in", fields, staging_dir=work / "stage2")
            source_phase.prepare("phase", args.shards, TimeRange())
        with phase("read_sort"):
            table = source.read_shard(plan, 0)
        with phase("score"):
            scores, _ = score_table(pipe, table, False, 0,
                                    **({"keys_per_step": args.keys_per_step} if args.keys_per_step else {}))
        with phase("write"):
            phase_sink, phase_run = ParquetSink(work / "phase-out"), RunInfo("phase", args.shards, pipe.model_version)
            phase_sink.open(phase_run)
            phase_sink.write_shard(phase_run, 0, scores, [])
        rows0 = table.num_rows

        stream_events = pa.concat_tables(pq.read_table(f) for f in sorted((work / "in").iterdir())[:4])
        stream_events = stream_events.slice(0, min(args.stream_events, stream_events.num_rows))
        stream_rate, stream_cpu_rate, stream_n = streaming_rate(pipe, stream_events, args.batch)
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)

    figures = {
        "events": n, "keys": args.keys, "events_per_key": args.events, "shards": args.shards, "threads": args.threads,
        "backfill_runs": len(runs), "backfill_cpu_seconds_all": [round(c, 2) for _, c in runs],
        "backfill_seconds": round(wall_s, 2), "backfill_events_per_s": round(backfill_rate),
        "backfill_cpu_seconds": round(cpu_s, 2), "backfill_events_per_cpu_s": round(n / cpu_s),
        **{f"phase_{name}_events_per_s": round((n if name == "stage" else rows0) / wall)
           for name, (wall, _) in phase.seconds.items()},
        **{f"phase_{name}_cpu_ns_per_event": round(cpu / (n if name == "stage" else rows0) * 1e9)
           for name, (_, cpu) in phase.seconds.items()},
        "streaming_events_per_s": round(stream_rate), "streaming_events_per_cpu_s": round(stream_cpu_rate),
        "streaming_events": stream_n, "streaming_batch": args.batch,
        "ratio_backfill_to_streaming_wall": round(backfill_rate / stream_rate, 2),
        "ratio_backfill_to_streaming_cpu": round((n / cpu_s) / stream_cpu_rate, 2),
        "load_average_1m": round(os.getloadavg()[0], 2),
        "machine": f"{platform.machine()} {platform.processor() or ''} {os.cpu_count()} cpus, Python {platform.python_version()}",
    }
    cpu_rate = n / cpu_s
    print(f"backfill  {backfill_rate:>12,.0f} events/s wall, {cpu_rate:,.0f} per CPU second "
          f"({n:,} events in {wall_s:.1f} s wall / {cpu_s:.1f} s CPU, {args.threads} thread(s), {args.shards} shards"
          + (f"; median of {len(runs)} runs, best {n / min(c for _, c in runs):,.0f} per CPU second" if len(runs) > 1 else "")
          + ")")
    wall = {name: (n if name == "stage" else rows0) / w for name, (w, _) in phase.seconds.items()}
    cpu_ns = {name: c / (n if name == "stage" else rows0) * 1e9 for name, (_, c) in phase.seconds.items()}
    print(f"  phases  stage {wall['stage']:,.0f}/s | read+sort {wall['read_sort']:,.0f}/s | "
          f"score {wall['score']:,.0f}/s | write {wall['write']:,.0f}/s  (wall, per phase, one shard of {rows0:,})")
    print(f"  CPU     stage {cpu_ns['stage']:.0f} | read+sort {cpu_ns['read_sort']:.0f} | score {cpu_ns['score']:.0f} | "
          f"write {cpu_ns['write']:.0f} ns per event  (the same phases, CPU time of the process)")
    print(f"streaming {stream_rate:>12,.0f} events/s wall, {stream_cpu_rate:,.0f} per CPU second "
          f"(Pipeline.step, micro-batches of {args.batch}, {stream_n:,} events)")
    print(f"ratio     {cpu_rate / stream_cpu_rate:.1f}x backfill / streaming per CPU second ({backfill_rate / stream_rate:.1f}x wall); "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cpus")
    print(f"goal      >= 1,000,000 events/s per core: {'met' if cpu_rate >= 1e6 else 'not met'} per CPU second, "
          f"{'met' if backfill_rate >= 1e6 else 'not met'} in wall time")
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
