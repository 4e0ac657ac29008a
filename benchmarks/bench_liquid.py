"""Liquid network speed: ember (NumPy backend) vs ncps (torch), same run, same shapes.

Shapes (issue 3): AutoNCP wiring of 32 units / 4 motor outputs, 16 inputs.

- CfC streaming step, batch 1: ember ``cell.step(x, h, dt)`` (what the streaming path runs
  per event) vs ncps ``WiredCfCCell(x, h, ts)`` under ``torch.no_grad()`` (ncps' fastest
  per-event path; its ``CfC`` module call is slower still and reported beside it).
- CfC batched inference, batch 256 × 64 steps: ember ``CfC(x, dt)`` with per-sample
  elapsed times vs ncps ``CfC(x)`` with no timespans (ncps' sequence wrapper cannot take
  (batch, time) timespans for batch > 1: it squeezes them to (batch,), which does not broadcast
  against (batch, units); so ncps is timed on its cheaper constant-time path).
- LTC batched inference, batch 256 × 64 steps, 6 ODE unfolds, same arrangement.

Both on one thread (threadpoolctl for BLAS, ``torch.set_num_threads(1)``): per-core rates,
timed as CPU time of the calling thread (``time.thread_time``), so time slices lost to other
processes on a shared machine do not count (cache and memory contention still do). Each
contender runs ``repeats`` rounds, interleaved, best round kept.
Both models hold the same weights (``from_ncps``), and the outputs are checked equal first.

    .venv/bin/python -m benchmarks.bench_liquid
    .venv/bin/python -m benchmarks.bench_liquid --repeats 5 --step-seconds 1.0
"""
from __future__ import annotations

import argparse
import platform
import time

import numpy as np

SHAPE = dict(units=32, outputs=4, inputs=16, batch=256, steps=64)


def _one_thread():
    from threadpoolctl import threadpool_limits
    limiter = threadpool_limits(limits=1)
    import torch
    previous = torch.get_num_threads()
    torch.set_num_threads(1)

    def undo():
        limiter.restore_original_limits()
        torch.set_num_threads(previous)
    return undo


def _models(kind: str, seed: int = 0):
    """(ncps model, the same model in ember) with identical weights."""
    import torch
    from ncps import torch as nt
    from ncps.wirings import AutoNCP
    from ember_models.liquid import from_ncps
    torch.manual_seed(seed)
    wiring = AutoNCP(SHAPE["units"], SHAPE["outputs"], seed=seed)
    ref = (nt.CfC if kind == "cfc" else nt.LTC)(SHAPE["inputs"], wiring).eval()
    return ref, from_ncps(ref).eval()


def _best_interleaved(fns: dict, repeats: int) -> dict:
    best = {k: float("inf") for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            best[k] = min(best[k], fn())
    return best


def cfc_step_vs_ncps(repeats: int = 7, seconds: float = 0.2) -> dict:
    """Batch-1 streaming steps per second: ember cell.step vs ncps cell and module."""
    import torch
    from ember_models.backend import using_backend
    with using_backend("numpy"):
        ref, ours = _models("cfc")
        cell, ncell = ours.cell, ref.rnn_cell
        rng = np.random.default_rng(0)
        xs = rng.normal(size=(64, 1, SHAPE["inputs"])).astype(np.float32)
        dts = rng.uniform(0.1, 2.0, size=(64, 1, 1)).astype(np.float32)
        xts, tts = torch.from_numpy(xs), torch.from_numpy(dts)

        def rate(step_fn):
            n, start = 0, time.thread_time()
            while True:
                for i in range(64):
                    step_fn(i)
                n += 64
                elapsed = time.thread_time() - start
                if elapsed >= seconds:
                    return elapsed / n   # seconds per step

        state = {"h": cell.initial_state(1), "th": torch.zeros(1, cell.state_size)}

        def ember_step(i):
            _, state["h"] = cell.step(xs[i], state["h"], dts[i])

        def ncps_cell_step(i):
            with torch.no_grad():
                _, state["th"] = ncell(xts[i], state["th"], tts[i])

        def ncps_module_step(i):
            with torch.no_grad():
                _, state["th"] = ref(xts[i][None], state["th"], timespans=tts[i][None])

        best = _best_interleaved({"ember": lambda: rate(ember_step),
                                  "ncps_cell": lambda: rate(ncps_cell_step),
                                  "ncps_module": lambda: rate(ncps_module_step)}, repeats)
    steps = {k: 1.0 / v for k, v in best.items()}
    return {"ember_steps_s": steps["ember"], "ncps_cell_steps_s": steps["ncps_cell"],
            "ncps_module_steps_s": steps["ncps_module"],
            "ratio": steps["ember"] / steps["ncps_cell"]}


def batched_vs_ncps(kind: str, repeats: int = 7) -> dict:
    """Sequences per second for batch × steps inference: ember vs ncps."""
    import torch
    from ember_models.backend import using_backend
    b, t, f = SHAPE["batch"], SHAPE["steps"], SHAPE["inputs"]
    rng = np.random.default_rng(1)
    x = rng.normal(size=(b, t, f)).astype(np.float32)
    dt = rng.uniform(0.1, 2.0, size=(b, t)).astype(np.float32)
    xt = torch.from_numpy(x)
    with using_backend("numpy"):
        ref, ours = _models(kind)
        with torch.no_grad():   # same function: equal outputs at dt = 1
            y_ref = ref(xt[:4])[0].numpy()
        y_ours = ours(x[:4], np.ones_like(dt[:4]))[0]
        np.testing.assert_allclose(y_ours, y_ref, atol=1e-4)

        def ember():
            start = time.thread_time()
            ours(x, dt)
            return time.thread_time() - start

        def ncps():
            start = time.thread_time()
            with torch.no_grad():
                ref(xt)
            return time.thread_time() - start

        best = _best_interleaved({"ember": ember, "ncps": ncps}, repeats)
    return {"ember_s": best["ember"], "ncps_s": best["ncps"], "ratio": best["ncps"] / best["ember"],
            "ember_seq_s": b / best["ember"], "ncps_seq_s": b / best["ncps"]}


def run_all(repeats: int = 7, step_seconds: float = 0.2) -> dict:
    undo = _one_thread()
    try:
        return {"cfc_step": cfc_step_vs_ncps(repeats, step_seconds),
                "cfc_batched": batched_vs_ncps("cfc", repeats),
                "ltc_batched": batched_vs_ncps("ltc", repeats)}
    finally:
        undo()


def report(results: dict) -> str:
    s, c, l = results["cfc_step"], results["cfc_batched"], results["ltc_batched"]
    b, t = SHAPE["batch"], SHAPE["steps"]
    return "\n".join([
        f"liquid vs ncps, AutoNCP({SHAPE['units']}, {SHAPE['outputs']}), {SHAPE['inputs']} inputs, "
        f"one thread, {platform.machine()} {platform.processor() or ''}".rstrip(),
        f"  CfC step, batch 1:      ember {s['ember_steps_s']:9.0f} steps/s   ncps cell "
        f"{s['ncps_cell_steps_s']:7.0f}/s (module {s['ncps_module_steps_s']:.0f}/s)   "
        f"ratio {s['ratio']:.1f}x (goal >= 10x)",
        f"  CfC batch {b} x {t}:     ember {c['ember_s'] * 1e3:7.1f} ms   ncps {c['ncps_s'] * 1e3:7.1f} ms"
        f"   ratio {c['ratio']:.1f}x (goal >= 2x)",
        f"  LTC batch {b} x {t}:     ember {l['ember_s'] * 1e3:7.1f} ms   ncps {l['ncps_s'] * 1e3:7.1f} ms"
        f"   ratio {l['ratio']:.1f}x (goal >= 5x)",
    ])


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--step-seconds", type=float, default=0.2)
    args = p.parse_args(argv)
    print(report(run_all(args.repeats, args.step_seconds)))


if __name__ == "__main__":
    main()
