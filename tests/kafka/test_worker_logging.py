"""The worker's logging: Faust's terminal spinner must not turn on debug records everywhere."""
from __future__ import annotations

import logging

import faust

from stream_app.worker import faust_worker


def test_worker_logging_leaves_debug_records_off():
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        app = faust.App("logging-probe", broker="kafka://127.0.0.1:1")
        worker = faust_worker(app, "WARNING")
        worker._setup_logging()      # what the worker does as it starts
        # (Faust's spinner set the root logger to DEBUG: every aiokafka.debug() call made a
        # record for the WARNING handler to drop)
        assert not logging.getLogger("aiokafka.conn").isEnabledFor(logging.DEBUG)
        assert logging.getLogger("stream_app").isEnabledFor(logging.WARNING)
        info = faust_worker(app, "INFO")
        info._setup_logging()
        assert logging.getLogger("stream_app").isEnabledFor(logging.INFO)
        assert not logging.getLogger("faust").isEnabledFor(logging.DEBUG)
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
