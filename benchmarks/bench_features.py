"""Feature-engine throughput: backfill (one Arrow table sorted by key, time) and streaming
(micro-batches of interleaved keys, state carried as bytes per key).

    .venv/bin/python benchmarks/bench_features.py [--keys 10000] [--events 1000] [--repeats 3]

Events: per key, exponential gaps (mean 60 s), 2 value fields (2% missing), 1 categorical field
(50 values). Rates are events per second of this process's CPU time (the machine is shared,
so wall time mostly measures the neighbours), best of `repeats`; wall time is printed too.
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import time

import numpy as np
import pyarrow as pa

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from ember_models.config import DataConfig, default_features  # noqa: E402
from ember_models.features import FeatureEngine  # noqa: E402

DATA = DataConfig(key_field="key", time_field="time", value_fields=["x", "y"],
                  categorical_fields=["cat"])


def make_events(n_keys: int, n_events: int, seed: int = 0) -> pa.Table:
    """n_keys x n_events events sorted by (key, time)."""
    rng = np.random.default_rng(seed)
    n = n_keys * n_events
    t = (1.6e9 + np.cumsum(rng.exponential(60.0, (n_keys, n_events)), axis=1)).ravel()
    x = rng.normal(size=n)
    x[rng.random(n) < 0.02] = np.nan
    cats = pa.DictionaryArray.from_arrays(pa.array(rng.integers(0, 50, n).astype(np.int32)),
                                          pa.array([f"c{i}" for i in range(50)]))
    keys = pa.DictionaryArray.from_arrays(
        pa.array(np.repeat(np.arange(n_keys, dtype=np.int32), n_events)),
        pa.array([f"host-{i}" for i in range(n_keys)]))
    return pa.table({"key": keys, "time": t, "x": x, "y": rng.normal(size=n), "cat": cats})


def timed(fn, repeats: int):
    best_cpu = best_wall = float("inf")
    for _ in range(repeats):
        c0, w0 = time.process_time(), time.perf_counter()
        result = fn()
        best_cpu = min(best_cpu, time.process_time() - c0)
        best_wall = min(best_wall, time.perf_counter() - w0)
        del result
    return best_cpu, best_wall


def backfill(engine: FeatureEngine, table: pa.Table, repeats: int) -> tuple[float, float]:
    """Arrow table -> float32 features, end to end (reading the columns included)."""
    engine.transform(table.slice(0, min(table.num_rows, 100_000)))     # warm-up
    return timed(lambda: engine.transform(table).values, repeats)


def streaming(engine: FeatureEngine, n_keys: int, batch: int, n_batches: int,
              repeats: int) -> tuple[float, float]:
    """Micro-batches of `batch` events of random keys, each key's state stored as bytes
    (what the Faust driver does per batch: gather blobs, step, scatter blobs)."""
    table = make_events(n_keys, max(1, (batch * n_batches) // n_keys + 1), seed=1)
    order = np.argsort(table.column("time").to_numpy(), kind="stable")
    stream = table.take(pa.array(order[: batch * n_batches]))
    # Keys as plain strings, as a JSON decoder would give them.
    stream = stream.set_column(0, "key", stream.column("key").cast(pa.string()))
    batches = [stream.slice(i * batch, batch) for i in range(n_batches)]

    def run():
        store: dict = {}
        for b in batches:
            _, blobs = engine.step(b, store)
            store.update(blobs)
        return store

    return timed(run, repeats)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--keys", type=int, default=10_000)
    ap.add_argument("--events", type=int, default=1_000, help="events per key (backfill)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--batch", type=int, default=1_000, help="events per streaming micro-batch")
    ap.add_argument("--batches", type=int, default=200)
    args = ap.parse_args(argv)
    print(f"machine: {platform.machine()} {os.cpu_count()} cores, Python "
          f"{platform.python_version()}, NumPy {np.__version__}, load average "
          f"{os.getloadavg()[0]:.1f}")
    table = make_events(args.keys, args.events)
    n = table.num_rows
    sets = {"default": default_features(DATA),
            "default without rolling_time": [s for s in default_features(DATA)
                                             if s.kind != "rolling_time"]}
    for name, specs in sets.items():
        engine = FeatureEngine(DATA, specs)
        cpu, wall = backfill(engine, table, args.repeats)
        print(f"backfill  {name} ({engine.n_features} outputs), {args.keys} keys x "
              f"{args.events} events: {n / cpu / 1e6:.2f} M events/s CPU "
              f"({cpu:.2f} s CPU, {wall:.2f} s wall)")
    engine = FeatureEngine(DATA)
    m = args.batch * args.batches
    cpu, wall = streaming(engine, args.keys, args.batch, args.batches, args.repeats)
    print(f"streaming default, micro-batches of {args.batch} events over {args.keys} keys, "
          f"state as bytes: {m / cpu / 1e3:.0f} k events/s CPU ({cpu:.2f} s CPU, {wall:.2f} s wall)")


if __name__ == "__main__":
    main()
