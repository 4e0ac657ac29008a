"""Feature engine cost per round (one round = one event of each of n keys), the way the
pipeline drives it: ``FeatureEngine.rounds`` with all keys in one block, features keys-last
(``--rows`` for the (n, d) rows of ``step_events``, one transposition per round more).

    .venv/bin/python benchmarks/feature_rounds.py --keys 156 --events 300      # streaming regime
    .venv/bin/python benchmarks/feature_rounds.py --keys 1250 --events 200     # a backfill shard
    .venv/bin/python benchmarks/feature_rounds.py --keys 4 --per-feature       # the fixed cost

Each round is timed on its own (wall clock) and the least time of each round over
``--repeats`` runs is kept, then averaged over the rounds: on a machine shared with other
people's work a preempted round is replaced by an undisturbed run of the same round, which
makes before/after comparisons of a few percent visible (CPU time of a whole run moves ±15 %
there). Data as ``backfill.py``'s: default features, 2 value fields, gaps 1 + Exp(60 s);
``--missing`` adds missing values and a categorical field. ``--per-feature`` times each
feature's ``step`` the same way, per round (stateless features run once per span of rounds:
their spans' cost spread over all rounds).
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

from ember_models.config import DataConfig  # noqa: E402
from ember_models.features import FeatureEngine  # noqa: E402


def make_events(n_keys: int, per_key: int, missing: float, seed: int = 0):
    """(key index, times, values (N, 2), categories (N, 1)), rows grouped by key in time order."""
    rng = np.random.default_rng(seed)
    gaps = rng.exponential(60.0, size=(n_keys, per_key)) + 1.0
    t = (1_700_000_000.0 + np.cumsum(gaps, axis=1)).ravel()
    x = rng.normal(50.0, 5.0, size=t.size)
    y = rng.gamma(2.0, 10.0, size=t.size)
    if missing:
        x[rng.random(t.size) < missing] = np.nan
        y[rng.random(t.size) < missing / 2] = np.inf
    cats = rng.integers(-1, 50, (t.size, 1))
    return np.repeat(np.arange(n_keys), per_key), t, np.stack([x, y], 1), cats


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--keys", type=int, default=1250)
    ap.add_argument("--events", type=int, default=300, help="events per key = rounds")
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--missing", type=float, default=0.0,
                    help="share of missing values (and a categorical field) instead of none")
    ap.add_argument("--per-feature", action="store_true")
    ap.add_argument("--rows", action="store_true", help="features as (n, d) rows per round")
    args = ap.parse_args(argv)
    key_index, times, values, cats = make_events(args.keys, args.events, args.missing)
    data = DataConfig(key_field="key", time_field="time", value_fields=["x", "y"],
                      categorical_fields=["cat"] if args.missing else [])
    engine = FeatureEngine(data)
    rounds_n = args.events
    per_feature: dict[str, np.ndarray] = {}
    current = [0]
    if args.per_feature:
        for f in engine.features:
            per_feature[f.prefix] = np.full(rounds_n, np.inf)

            def timed(*a, step=f.step, best=per_feature[f.prefix]):
                t0 = time.perf_counter()
                result = step(*a)
                r = current[0]
                best[r] = min(best[r], time.perf_counter() - t0)
                return result
            f.step = timed
    best = np.full(rounds_n, np.inf)
    for _ in range(args.repeats):
        state = engine.init_state(args.keys)
        kw = {} if args.rows else {"keys_last": True}
        rounds = engine.rounds(state, key_index, times, values, cats if args.missing else None,
                               block_keys=args.keys, **kw)
        it = iter(rounds)
        for r in range(rounds_n):
            current[0] = r
            t0 = time.perf_counter()
            next(it)
            best[r] = min(best[r], time.perf_counter() - t0)
        rounds.state()
    print(f"machine: {platform.machine()} {os.cpu_count()} cores, Python "
          f"{platform.python_version()}, NumPy {np.__version__}, load average "
          f"{os.getloadavg()[0]:.1f}")
    print(f"{args.keys} keys x {rounds_n} rounds, {engine.n_features} features"
          f"{f', {args.missing:.0%} missing' if args.missing else ''}: "
          f"{best.mean() * 1e6:.1f} us per round, {best.mean() / args.keys * 1e9:.0f} ns per event "
          f"(least of {args.repeats} per round)")
    # per round, over all rounds (a stateless feature's spans spread over the rounds)
    amortised = {name: b[np.isfinite(b)].sum() / rounds_n for name, b in per_feature.items()}
    for name, b in sorted(per_feature.items(), key=lambda kv: -amortised[kv[0]]):
        ran = np.isfinite(b)
        note = "" if ran.all() else (f"  (once per span: {b[ran].mean() * 1e6:.1f} us in "
                                     f"{ran.sum()} of {rounds_n} rounds)")
        print(f"  {name:18s} {amortised[name] * 1e6:7.1f} us{note}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
