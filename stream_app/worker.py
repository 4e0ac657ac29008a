"""Run one streaming worker: ``python -m stream_app.worker [--config stream.toml]``.

Settings come from ``EMBER_*`` environment variables and the optional TOML file (see
``stream_app.settings``). Before Faust starts, the worker loads the model (failing early with
a clear message) and creates the topics it needs; Faust then joins the consumer group, restores
the per-key state of its partitions from the changelog, and scores until SIGTERM / SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path
from typing import Any

from . import heap
from .model_watch import ModelHolder, ModelLoadError
from .settings import StreamSettings
from .topics import TopicError, ensure_topics

log = logging.getLogger("stream_app.worker")


class WorkerSetupError(RuntimeError):
    """The worker cannot start: the message says what to fix."""


def prepare_topics(settings: StreamSettings) -> int:
    """Create missing topics (if allowed); check they are co-partitioned; return the partitions."""
    wanted = settings.topic_partitions()
    try:
        counts = asyncio.run(_topic_counts(settings, wanted))
    except TopicError as exc:
        raise WorkerSetupError(f"Kafka at {settings.kafka_bootstrap}: {exc}") from None
    except Exception as exc:  # connection refused, auth failures, ...
        raise WorkerSetupError(f"cannot reach Kafka at {settings.kafka_bootstrap}: {exc!r}") from None
    n = counts[settings.events_topic]
    differing = {t: c for t, c in counts.items() if c != n}
    if differing:
        raise WorkerSetupError(
            f"topic {settings.events_topic!r} has {n} partitions but {differing} differ: outputs are "
            "co-partitioned with the events (same partition number), so all need the same count"
        )
    return n


async def _topic_counts(settings: StreamSettings, wanted: dict[str, int]) -> dict[str, int]:
    kw = settings.client_kwargs()
    if settings.create_topics:
        return await ensure_topics(settings.kafka_bootstrap, wanted,
                                   replication_factor=settings.replication_factor, **kw)
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap, **kw)
    await admin.start()
    try:
        described = await admin.describe_topics(list(wanted))
    finally:
        await admin.close()
    counts = {t["topic"]: len(t["partitions"]) for t in described if t["error_code"] == 0}
    missing = sorted(set(wanted) - set(counts))
    if missing:
        raise TopicError(f"topics {missing} do not exist and create_topics is off")
    return counts


def limit_compute_threads(threads: int) -> None:
    """Cap the threads of NumPy's BLAS (and any OpenMP pool) in this process. Measured here
    (docs/performance.md, "Streaming"): with the default of one BLAS thread per core, a worker
    sharing 2 cores with the broker scored batch messages 4-5x slower than with one thread
    (threads spinning for a core that Faust, the broker or another worker holds). threadpoolctl
    reaches only libraries already loaded: scipy's BLAS (which the reservoir's compiled loop
    calls through numba, ember_models/liquid/keys_last_kernel.py) is loaded first."""
    import scipy.linalg.cython_blas  # noqa: F401
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=threads)


def build(settings: StreamSettings) -> Any:
    """Load the model, prepare the topics, and return the Faust app (not started)."""
    from .app import create_app

    limit_compute_threads(settings.compute_threads)

    holder = ModelHolder(settings.pipeline_loader, settings.model_dir)
    try:
        holder.load()
    except ModelLoadError as exc:
        raise WorkerSetupError(str(exc)) from None
    partitions = prepare_topics(settings)
    return create_app(settings, holder, partitions)


def run(settings: StreamSettings) -> None:
    """Run a worker in this process until it is stopped (SIGTERM / SIGINT)."""
    app = build(settings)
    heap.freeze()  # the model and every module loaded: out of the garbage collector's way
    # mode's Worker already dumps every task's stack on SIGUSR1 ("cry"): kill -USR1 <pid>.
    faust_worker(app, settings.log_level).execute_from_commandline()


def faust_worker(app: Any, log_level: str) -> Any:
    """The Faust worker that runs ``app``, logging at ``log_level``."""
    import faust

    worker = faust.Worker(app, loglevel=log_level.lower(), quiet=True, redirect_stdouts=False)
    # No terminal spinner: Faust installs it with quiet=True too, and with it sets the root
    # logger to DEBUG (the spinner turns on every record), so every debug call of aiokafka,
    # Faust and mode built a record that the WARNING handler then dropped: 0.8-2.1 % of the
    # worker's CPU in py-spy profiles at 30 k and ~100 k events/s (docs/performance.md).
    worker.spinner = None
    return worker


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stream_app.worker",
                                     description="Run one ember streaming worker.")
    parser.add_argument("--config", type=Path, default=None, help="TOML settings file")
    parser.add_argument("--log-level", default=None)
    args = parser.parse_args(argv)
    overrides = {"log_level": args.log_level} if args.log_level else {}
    try:
        settings = StreamSettings.load(args.config, **overrides)
        run(settings)
    except WorkerSetupError as exc:
        print(f"ember worker: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
