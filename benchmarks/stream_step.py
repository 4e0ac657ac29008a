"""``Pipeline.step`` as the streaming worker calls it, without Kafka: benchmarks/stream.py's
data and model, micro-batches of ``--batch`` events in arrival (time) order, each key's state
carried between batches as bytes, alerts computed, ``learn=False`` (stream_app.processor);
then ``Pipeline.score`` over the same events in one call. Prints CPU µs per event of each,
the detector's share (``DetectorCore.run_rounds``, one call per chunk of rounds), and the
feature rounds' (a batch takes as many rounds as its busiest key has events), their cost split
into a fixed part and a part per key (least squares over rounds).

    .venv/bin/python benchmarks/stream_step.py --keys 256 --events 100000 --batch 19000
    .venv/bin/python benchmarks/stream_step.py --cap 75     # a key's events beyond 75 per batch wait
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402

from benchmarks.stream import fit_model, make_data  # noqa: E402
from ember_models.features import rounds as feature_rounds  # noqa: E402
from ember_models.pipeline import Pipeline  # noqa: E402
from ember_models.pipeline import core as detector_core  # noqa: E402


def capped_batches(rows: list[dict], batch: int, cap: int) -> list[list[dict]]:
    """Micro-batches of ``batch`` new events in arrival order, where a key's events beyond its
    first ``cap`` of a batch are held back to the front of the next one (the driver-side cap
    docs/performance.md discusses; per-key order kept). Held events drain at the end."""
    out: list[list[dict]] = []
    held: list[dict] = []
    a = 0
    while a < len(rows) or held:
        candidates = held + rows[a:a + batch]
        a += batch
        counts: dict[str, int] = {}
        now, held = [], []
        for r in candidates:  # held events first: a key's order is kept
            k = r["service"]
            n = counts[k] = counts.get(k, 0) + 1
            (now if n <= cap else held).append(r)
        out.append(now)
    return out


def tables(rows: list[dict], batch: int, cap: int | None = None) -> list[pa.Table]:
    if cap is not None:
        return [_table(b) for b in capped_batches(rows, batch, cap) if b]
    return [_table(rows[a:a + batch]) for a in range(0, len(rows), batch)]


def _table(rows: list[dict]) -> pa.Table:
    cols = {k: [r[k] for r in rows] for k in rows[0]}
    return pa.table({k: (pa.array(v, pa.string()) if isinstance(v[0], str)
                         else pa.array(np.asarray(v, np.float64), pa.float64()))
                     for k, v in cols.items()})


def run_step(pipe: Pipeline, tabs: list[pa.Table]) -> int:
    states: dict[str, bytes] = {}
    alerts = 0
    for t in tabs:
        keys = set(t.column("service").to_pylist())
        res = pipe.step(t, {k: states.get(k) for k in keys})
        states.update(res.states)
        alerts += len(res.alerts)
    return alerts


def timed_rounds(pipe: Pipeline, tabs: list[pa.Table]) -> dict[str, list[tuple[int, float]]]:
    """CPU time of each detector call (a chunk of rounds: events in it, seconds) and each
    feature round (keys in the round, seconds)."""
    rec: dict[str, list[tuple[int, float]]] = {"detector": [], "features": []}
    run, it = detector_core.DetectorCore.run_rounds, feature_rounds.FeatureRounds.__iter__

    def timed_run(self, st, starts, t, *a, **k):
        c = time.process_time()
        out = run(self, st, starts, t, *a, **k)
        rec["detector"].append((len(t), time.process_time() - c))
        return out

    def timed_iter(self):
        g = it(self)
        while True:
            c = time.process_time()
            try:
                r0, n, rows = next(g)
            except StopIteration:
                return
            rec["features"].append((n, time.process_time() - c))
            yield r0, n, rows

    detector_core.DetectorCore.run_rounds = timed_run
    feature_rounds.FeatureRounds.__iter__ = timed_iter
    try:
        run_step(pipe, tabs)
    finally:
        detector_core.DetectorCore.run_rounds, feature_rounds.FeatureRounds.__iter__ = run, it
    return rec


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--keys", type=int, default=256)
    ap.add_argument("--events", type=int, default=100_000)
    ap.add_argument("--batch", type=int, default=19_000, help="events per micro-batch")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--cap", type=int, default=None,
                    help="hold a key's events beyond this many per batch back to the next batch")
    args = ap.parse_args()
    history, rows = make_data(args.keys, args.events)
    with tempfile.TemporaryDirectory() as d:
        fit_model(history, Path(d) / "model")
        pipe = Pipeline.load(Path(d) / "model")
    tabs = tables(rows, args.batch, args.cap)
    n = sum(t.num_rows for t in tabs)
    run_step(pipe, tabs)                                   # warm up
    for _ in range(args.repeats):
        c = time.process_time()
        alerts = run_step(pipe, tabs)
        step_us = (time.process_time() - c) / n * 1e6
        c = time.process_time()
        pipe.score(pa.concat_tables(tabs))
        score_us = (time.process_time() - c) / n * 1e6
        print(f"step {step_us:.2f} µs/event (CPU), score {score_us:.2f}; {n} events, "
              f"{len(tabs)} batches (cap {args.cap}), {alerts} alerts")
    rec = timed_rounds(pipe, tabs)
    calls = rec["detector"]
    print(f"detector: {sum(b for _, b in calls) / n * 1e6:.2f} µs/event; {len(calls)} calls "
          f"(chunks of rounds), {n / len(calls):.0f} events per call")
    r = rec["features"]
    m = np.array([a for a, _ in r], np.float64)
    s = np.array([b for _, b in r])
    fixed, per_key = np.linalg.lstsq(np.vstack([np.ones_like(m), m]).T, s * 1e6, rcond=None)[0]
    print(f"features: {s.sum() / n * 1e6:.2f} µs/event; {len(r)} rounds, {n / len(r):.0f} "
          f"keys per round; per round {fixed:.0f} µs + {per_key:.2f} µs per key")
    print(f"load: {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
