"""Model-core throughput against the reference libraries, measured in the same run.

    .venv/bin/python benchmarks/model_core.py [--repeats N]

Shapes (issue 3): AutoNCP 32 units / 4 outputs with 16 inputs for the liquid networks (ncps is
the reference); RBM 100k x 64 inputs, 64 hidden, float32 (scikit-learn BernoulliRBM is the
reference). Each line prints both rates and the ratio; goals: CfC batch-1 step >= 10x ncps,
CfC batched (256 x 64) >= 2x, LTC batched >= 5x, RBM CD-1 epoch >= 2x scikit-learn.
"""
from __future__ import annotations

import argparse
import os
import platform
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks import bench_liquid, bench_rbm  # noqa: E402


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--rbm-batch-sizes", type=int, nargs="+", default=[10, 64, 256])
    args = ap.parse_args(argv)
    print(f"machine: {platform.machine()} {platform.processor() or ''} "
          f"{os.cpu_count()} cores, Python {platform.python_version()}, "
          f"load average {os.getloadavg()[0]:.1f}")
    print("== liquid networks vs ncps ==")
    print(bench_liquid.report(bench_liquid.run_all(repeats=args.repeats)))
    print("== RBM CD-1 epoch vs scikit-learn BernoulliRBM ==")
    for bs in args.rbm_batch_sizes:
        res = bench_rbm.rbm_cd1_vs_sklearn(batch_size=bs, backends=("numpy",),
                                           repeats=args.repeats)
        print(bench_rbm.format_result(res))


if __name__ == "__main__":
    main()
