"""Keep Python's full garbage collections short in a long-running worker.

A worker's heap is mostly what it loaded once: the model, numba's compiled kernels, Faust,
aiokafka, pyarrow (~167,000 objects after a model load and its warm-up). CPython's oldest
generation is collected every so often while micro-batches allocate, and each such collection
walks all of that: 112-122 ms a time in the worker, a pause that every event in flight waits
for (one was behind the slowest alerts of a half-rate run of ``benchmarks/stream.py``;
docs/performance.md, "Session 6"). ``gc.freeze()`` moves the objects alive now to a
permanent generation that collections skip, so a full collection walks only what came later
(0.002 ms right after the freeze here). Reference counting still frees frozen objects; only
reference cycles among them stay until the next ``refreeze``.
"""

from __future__ import annotations

import gc
import logging
import time

log = logging.getLogger(__name__)


def freeze() -> None:
    """Collect what is garbage now, then exempt every object still alive from later
    collections (at start, once the model is loaded and again once Faust runs)."""
    t0 = time.perf_counter()
    gc.collect()
    gc.freeze()
    log.info("heap frozen: %d objects exempt from collection (%.0f ms)",
             gc.get_freeze_count(), (time.perf_counter() - t0) * 1000)


def refreeze() -> None:
    """After a hot reload: the old model's objects were frozen with the rest, so unfreeze,
    collect (one full pause, at reload time only: cycles of the old model go), freeze again."""
    gc.unfreeze()
    freeze()
