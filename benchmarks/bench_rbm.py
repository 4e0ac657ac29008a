"""RBM training speed: one CD-1 epoch of ember's RBM vs scikit-learn's BernoulliRBM, same run.

Same data (100k × 64 binary rows, float32), 64 hidden units, same batch size, one epoch each,
on one thread each (BLAS limited with threadpoolctl, torch.set_num_threads(1)): rows/s per
core, timed as CPU time of the calling thread (``time.thread_time``, as bench_liquid), so
time slices lost to other processes on a shared machine do not count. Each contender runs
``repeats`` times, interleaved, and keeps its best time, because the machines we measure on
are shared and noisy.

The work compared: scikit-learn's epoch is persistent CD-1 (its only algorithm: 5 products
and 2 Bernoulli draws per batch, no shuffling, no momentum, no weight decay). ember runs
with momentum and weight decay 0 like it (its defaults are 0.5 and 1e-4); ``ember-*-pcd1`` is
then the same algorithm, ``ember-*-cd1`` CD-1 from the data. ember's epoch also shuffles
the rows and computes the free-energy statistics behind ``score`` (its fit always does).

    .venv/bin/python -m benchmarks.bench_rbm               # batch 64, numpy and torch
    .venv/bin/python -m benchmarks.bench_rbm --batch-size 10 256 --repeats 5
"""
from __future__ import annotations

import argparse
import platform
import time

import numpy as np

SHAPE = dict(n=100_000, n_features=64, n_hidden=64)


def make_data(n: int = 100_000, n_features: int = 64, seed: int = 0) -> np.ndarray:
    """Binary rows near one of 8 random prototypes (10% of bits flipped), float32."""
    rng = np.random.default_rng(seed)
    protos = rng.random((8, n_features)) < 0.5
    x = protos[rng.integers(0, 8, n)]
    return np.where(rng.random(x.shape) < 0.1, ~x, x).astype(np.float32)


def _one_thread():
    """Limit BLAS (NumPy, scikit-learn) and torch to one thread; returns an undo function."""
    from threadpoolctl import threadpool_limits
    limiter = threadpool_limits(limits=1)
    torch_threads = None
    try:
        import torch
        torch_threads = torch.get_num_threads()
        torch.set_num_threads(1)
    except ImportError:
        pass

    def undo():
        limiter.restore_original_limits()
        if torch_threads is not None:
            import torch
            torch.set_num_threads(torch_threads)
    return undo


def sklearn_epoch_seconds(x: np.ndarray, n_hidden: int, batch_size: int, seed: int = 0) -> float:
    from sklearn.neural_network import BernoulliRBM
    rbm = BernoulliRBM(n_components=n_hidden, learning_rate=0.05, batch_size=batch_size,
                       n_iter=1, random_state=seed)
    start = time.thread_time()
    rbm.fit(x)
    return time.thread_time() - start


def ember_epoch_seconds(x: np.ndarray, n_hidden: int, batch_size: int, backend: str,
                        persistent: bool = False, seed: int = 0) -> float:
    from ember_models import ops
    from ember_models.backend import using_backend
    from ember_models.rbm import RBM
    with using_backend(backend):
        data = ops.from_numpy(x)                 # data already on the backend, as in training
        # the same algorithm as scikit-learn's BernoulliRBM: no momentum, no weight decay
        # (ember's defaults are 0.5 and 1e-4; sklearn has neither)
        rbm = RBM(x.shape[1], n_hidden, k=1, persistent=persistent, lr=0.05,
                  batch_size=batch_size, seed=seed, momentum=0.0, weight_decay=0.0)
        # mlx evaluates lazily on its own threads: wall time there, thread CPU time elsewhere
        clock = time.perf_counter if backend == "mlx" else time.thread_time
        start = clock()
        rbm.fit(data, epochs=1)
        ops.item(ops.sum(rbm.weight))            # mlx is lazy: make sure the work is done
        return clock() - start


def rbm_cd1_vs_sklearn(batch_size: int = 64, backends=("numpy", "torch"), repeats: int = 3,
                       n: int = SHAPE["n"], n_features: int = SHAPE["n_features"],
                       n_hidden: int = SHAPE["n_hidden"]) -> dict:
    """Best-of-``repeats`` epoch times (interleaved) and rows/s; ratios vs scikit-learn.

    Returns {"shape": ..., "batch_size": ..., "rows_per_s": {name: rate},
    "ratio_vs_sklearn": {name: rate / sklearn rate}} with names "sklearn",
    "ember-<backend>-cd1" and "ember-<backend>-pcd1".
    """
    x = make_data(n, n_features)
    contenders = {"sklearn": lambda: sklearn_epoch_seconds(x, n_hidden, batch_size)}
    for backend in backends:
        contenders[f"ember-{backend}-cd1"] = (
            lambda b=backend: ember_epoch_seconds(x, n_hidden, batch_size, b, persistent=False))
        contenders[f"ember-{backend}-pcd1"] = (
            lambda b=backend: ember_epoch_seconds(x, n_hidden, batch_size, b, persistent=True))
    undo = _one_thread()
    try:
        best = {name: float("inf") for name in contenders}
        for _ in range(repeats):
            for name, run in contenders.items():
                best[name] = min(best[name], run())
    finally:
        undo()
    rates = {name: n / seconds for name, seconds in best.items()}
    return {"shape": f"{n}x{n_features}, {n_hidden} hidden, float32, 1 thread",
            "batch_size": batch_size, "rows_per_s": rates,
            "ratio_vs_sklearn": {k: v / rates["sklearn"] for k, v in rates.items()}}


def free_energy_ns_per_row(rows: int = 1_250, n_visible: int = 48, n_hidden: int = 16,
                           visible: str = "gaussian", repeats: int = 7, calls: int = 200) -> float:
    """``RBM.free_energy`` as the pipeline calls it once per detector step (~1,250 keys × 48
    standardised features, gaussian visible units, 16 hidden, float32, numpy): thread CPU ns
    per row, best of ``repeats`` rounds of ``calls`` calls, one thread."""
    from ember_models.backend import using_backend
    from ember_models.rbm import RBM
    rng = np.random.default_rng(0)
    x = rng.normal(size=(rows, n_visible)).astype(np.float32)
    undo = _one_thread()
    try:
        with using_backend("numpy"):
            rbm = RBM(n_visible, n_hidden, visible=visible, seed=0, init_std=0.3)
            rbm.free_energy(x)
            best = float("inf")
            for _ in range(repeats):
                start = time.thread_time()
                for _ in range(calls):
                    rbm.free_energy(x)
                best = min(best, time.thread_time() - start)
    finally:
        undo()
    return best / calls / rows * 1e9


def format_result(res: dict) -> str:
    lines = [f"RBM one epoch, {res['shape']}, batch {res['batch_size']}:"]
    for name, rate in res["rows_per_s"].items():
        lines.append(f"  {name:<20} {rate:>12,.0f} rows/s   {res['ratio_vs_sklearn'][name]:5.2f}x sklearn")
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch-size", type=int, nargs="+", default=[64])
    parser.add_argument("--backends", nargs="+", default=["numpy", "torch"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--rows", type=int, default=SHAPE["n"])
    args = parser.parse_args(argv)
    print(f"machine: {platform.platform()}, {platform.processor() or platform.machine()}")
    # untimed first epoch on a small slice: imports (torch takes seconds) and first calls
    rbm_cd1_vs_sklearn(64, args.backends, repeats=1, n=2_000)
    for bs in args.batch_size:
        print(format_result(rbm_cd1_vs_sklearn(bs, args.backends, args.repeats, n=args.rows)))
    print(f"RBM.free_energy, 1,250 rows x 48 gaussian visible, 16 hidden, numpy: "
          f"{free_energy_ns_per_row():.0f} ns per row")


if __name__ == "__main__":
    main()
