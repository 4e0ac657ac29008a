"""The compute process (stream_app.compute_process): the same step results as in this thread,
errors re-raised, a new model handed over, and no child left behind."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time

import pyarrow as pa
import pytest

from fake_pipeline import FakePipeline
from stream_app.compute_process import ComputeProcess, ComputeProcessError, wanted
from stream_app.processes import pid_alive


def events(n: int, t0: float = 1000.0) -> pa.Table:
    keys = [f"k{i % 3}" for i in range(n)]
    return pa.table({
        "service": pa.array(keys, pa.string()),
        "time": pa.array([t0 + i for i in range(n)], pa.float64()),
        "requests": pa.array([100.0 + (i % 7) * (50 if i == n - 2 else 1) for i in range(n)]),
        "latency_ms": pa.array([10.0 + (i % 3) for i in range(n)]),
        "status": pa.array(["ok"] * n, pa.string()),
    })


class Broken(FakePipeline):
    def step(self, events, states):
        raise ValueError("broken on purpose")


class Unpicklable(FakePipeline):
    def __init__(self):
        super().__init__("local-1")
        self.lock = threading.Lock()  # locks do not pickle


@pytest.fixture
def compute():
    c = ComputeProcess()
    yield c
    c.close()


def run(coro):
    return asyncio.run(coro)


def test_steps_in_the_child_give_the_results_of_this_thread(compute):
    pipe = FakePipeline(threshold=0.5)
    here_states: dict = {}
    there_states: dict = {}
    for b in range(3):
        table = events(90, t0=1000.0 + 90 * b)
        here = pipe.step(table, here_states)
        there = run(compute.step(pipe, table, there_states))
        assert there.scores.equals(here.scores)
        assert there.alerts == here.alerts
        assert there.states == here.states
        here_states, there_states = here.states, there.states
    assert compute._local is None  # it did cross
    assert compute.pid != os.getpid() and pid_alive(compute.pid)


def test_an_error_in_the_step_is_raised_in_the_worker_and_the_child_goes_on(compute):
    with pytest.raises(ValueError, match="broken on purpose"):
        run(compute.step(Broken(), events(10), {}))
    pipe = FakePipeline("fake-2")  # a new model: handed over, then stepped
    assert run(compute.step(pipe, events(10), {})).scores.num_rows == 10


def test_a_new_model_is_handed_over_before_its_first_step(compute):
    a, b = FakePipeline("a", threshold=0.99), FakePipeline("b", threshold=0.01)
    table = events(90)
    ra, rb = run(compute.step(a, table, {})), run(compute.step(b, table, {}))
    assert ra.alerts == a.step(table, {}).alerts and rb.alerts == b.step(table, {}).alerts
    assert len(rb.alerts) > len(ra.alerts) and compute._local is None


def test_a_pipeline_that_does_not_pickle_is_stepped_in_this_thread(compute):
    pipe = Unpicklable()
    res = run(compute.step(pipe, events(12), {}))
    assert res.scores.equals(pipe.step(events(12), {}).scores)
    assert compute._local is pipe


def _refuse_to_load():
    raise ImportError("not importable in the child")


class LoadsOnlyHere(FakePipeline):
    def __reduce__(self):  # pickles, but unpickling (in the child) fails
        return (_refuse_to_load, ())


def test_a_pipeline_the_child_cannot_load_is_stepped_in_this_thread(compute):
    pipe = LoadsOnlyHere("here-1")
    res = run(compute.step(pipe, events(12), {}))
    assert res.scores.equals(FakePipeline("here-1").step(events(12), {}).scores)
    assert compute._local is pipe
    other = FakePipeline("there-2")  # the child still serves the next model
    assert run(compute.step(other, events(12), {})).scores.num_rows == 12
    assert compute._local is None and compute._sent is other


def test_a_dead_child_is_an_error_not_a_hang(compute):
    run(compute.step(FakePipeline(), events(5), {}))
    os.kill(compute.pid, signal.SIGKILL)
    with pytest.raises(ComputeProcessError, match="is gone"):
        run(compute.step(FakePipeline(), events(5), {}))


def test_the_child_ends_when_the_worker_closes_it():
    c = ComputeProcess()
    run(c.step(FakePipeline(), events(5), {}))
    pid = c.pid
    c.close()
    deadline = time.monotonic() + 10
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not pid_alive(pid)


def test_auto_means_two_cores_or_more():
    assert wanted("on") and not wanted("off")
    assert wanted("auto") == (len(os.sched_getaffinity(0)) >= 2)
