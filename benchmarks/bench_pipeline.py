"""Pipeline throughput: ``score`` (backfill: batch = keys, loop over time) and ``step`` on
micro-batches (streaming, states carried as bytes), events per CPU second of this process.

    .venv/bin/python benchmarks/bench_pipeline.py --keys 10000 --events 1000
    .venv/bin/python benchmarks/bench_pipeline.py --keys 1000 --events 200      # quick

Features: the lean set below by default (--features default for the config's default set).
"""
from __future__ import annotations

import argparse
import os
import sys
import time

# the checkout this file is in, before any installed copy (a second worktree measures itself)
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np          # noqa: E402
import pyarrow as pa        # noqa: E402

LEAN = [{"kind": "zscore"}, {"kind": "ewma", "half_lives_s": [600.0, 3600.0], "std": False},
        {"kind": "delta"}, {"kind": "cyclical_time", "periods": ["day"]}]


def events(keys: int, per_key: int, seed: int = 0) -> pa.Table:
    rng = np.random.default_rng(seed)
    n = keys * per_key
    key = np.tile(np.arange(keys), per_key)                 # global time order
    t = np.repeat(np.arange(per_key) * 60.0, keys) + rng.uniform(0, 30, n)
    t = np.maximum.accumulate(t.reshape(per_key, keys), axis=0).reshape(-1)
    names = pa.array([f"host-{i:05d}" for i in range(keys)])
    return pa.table({"host": pa.DictionaryArray.from_arrays(pa.array(key, pa.int32()), names),
                     "ts": t, "cpu": rng.normal(50, 5, n), "lat": rng.gamma(2, 10, n)})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--keys", type=int, default=10000)
    ap.add_argument("--events", type=int, default=1000, help="events per key")
    ap.add_argument("--features", choices=("lean", "default"), default="lean")
    ap.add_argument("--wiring", choices=("autoncp", "full"), default="autoncp")
    ap.add_argument("--batch", type=int, default=1000, help="streaming micro-batch")
    ap.add_argument("--stream-events", type=int, default=50_000)
    args = ap.parse_args()

    from ember_models.config import parse_config
    from ember_models.pipeline import Pipeline, PipelineSettings

    cfg = {"data": {"key_field": "host", "time_field": "ts", "value_fields": ["cpu", "lat"]}}
    if args.features == "lean":
        cfg["features"] = LEAN
    pipe = Pipeline(parse_config(cfg), PipelineSettings(wiring=args.wiring))
    pipe.fit(events(200, 200, seed=1))
    table = events(args.keys, args.events)
    n = table.num_rows
    c0, w0 = time.process_time(), time.perf_counter()
    pipe.score(table)
    cpu, wall = time.process_time() - c0, time.perf_counter() - w0
    print(f"score: {n:,} events ({args.keys:,} keys x {args.events:,}), {args.features} features "
          f"({pipe.core.d}), {args.wiring}: {wall:.1f} s wall, {cpu:.1f} s CPU, "
          f"{n / cpu:,.0f} events per CPU second ({n / wall:,.0f}/s wall)")
    part = table.slice(0, min(args.stream_events, n))
    states: dict = {}
    c0, w0 = time.process_time(), time.perf_counter()
    for start in range(0, part.num_rows, args.batch):
        res = pipe.step(part.slice(start, args.batch), states)
        states.update(res.states)
    cpu, wall = time.process_time() - c0, time.perf_counter() - w0
    print(f"step: {part.num_rows:,} events in micro-batches of {args.batch:,}: "
          f"{part.num_rows / cpu:,.0f} events per CPU second ({part.num_rows / wall:,.0f}/s wall)")


if __name__ == "__main__":
    main()
