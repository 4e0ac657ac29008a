"""A pipeline loader for worker processes in tests: the real Pipeline, scoring each shard only
after ``EMBER_TEST_SHARD_SLEEP_S`` seconds, so a test can kill a worker in the middle of a shard."""

from __future__ import annotations

import os
import time

from ember_models.pipeline import Pipeline


class SlowPipeline:
    def __init__(self, pipe: Pipeline, sleep_s: float):
        self._pipe, self._sleep_s = pipe, sleep_s

    def __getattr__(self, name):
        return getattr(self._pipe, name)

    def score(self, table, states=None):
        time.sleep(self._sleep_s)
        return self._pipe.score(table, states)

    def step(self, events, states):
        time.sleep(self._sleep_s)
        return self._pipe.step(events, states)


def load(model_dir: str) -> SlowPipeline:
    return SlowPipeline(Pipeline.load(model_dir), float(os.environ.get("EMBER_TEST_SHARD_SLEEP_S", "0")))
