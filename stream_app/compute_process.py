"""``Pipeline.step`` in a child process, beside the worker's event loop.

Why: over a backlog the worker's one thread (one GIL) is the limit while the second core of the
machine idles (docs/performance.md, "Session 7": main thread 80-83 % busy, machine 37-46 %
idle). The model step is most of that thread; run in a child process, the event loop meanwhile
takes in, decodes and checks the next micro-batch and sends the last one's outputs
(``stream_app.app``: one batch in the child, one being prepared).

What crosses the pipe: the pipeline (pickled once, and again after a hot reload), then per batch
the events table and the keys' stored states in, the ``StepResult`` out (~2 MB each way for a
12,000-event batch of 256 keys: ~0.5 ms of pickling per side, measured). The child holds nothing
the worker needs to recover: every state it computes comes back with the result and is stored
by the worker as before, so a SIGKILL of either process loses nothing that is not redone from the
committed offsets. The child ends when the worker does: it reads EOF on its pipe (and, on
Linux, gets SIGKILL from the kernel when its parent dies mid-step).

A pipeline that cannot be pickled (a custom loader's object) is stepped in the worker's own
thread, as without this module.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import multiprocessing.connection
import os
import pickle
import signal
import socket
import subprocess
import sys
import threading
from typing import Any

log = logging.getLogger(__name__)

_SET, _STEP = "set", "step"
_POOL_ENV = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


class ComputeProcessError(RuntimeError):
    """The compute process died or could not start; the worker stops (nothing was acked)."""


def wanted(setting: str) -> bool:
    """``compute_process`` = "auto": on when this process may run on two cores or more."""
    if setting != "auto":
        return setting == "on"
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        cores = os.cpu_count() or 1
    return cores >= 2


class ComputeProcess:
    """One child process that runs ``pipeline.step(table, states)``, one request at a time."""

    def __init__(self, threads: int = 1):
        # A fresh interpreter (``python -m stream_app.compute_process``), not a fork of a process
        # with Kafka threads, nor multiprocessing's "spawn", which re-imports the worker's main
        # module in the child. It sees this process's import path (a custom pipeline loader's
        # modules, the tests' fake pipeline) and holds only its end of the socket pair.
        mine, theirs = socket.socketpair()
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(p or os.getcwd() for p in sys.path))
        # BLAS/OpenMP pools sized before NumPy loads in the child (threadpoolctl, below, sees only
        # libraries already loaded): measured, a second OpenBLAS thread spinning beside the step
        # doubled the child's CPU per event (8 vs 2.5-2.9 us) for nothing
        env.update({name: str(threads) for name in _POOL_ENV})
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "stream_app.compute_process", str(theirs.fileno()),
             str(threads), str(os.getpid())],
            pass_fds=[theirs.fileno()], env=env, stdin=subprocess.DEVNULL)
        theirs.close()  # only the child holds its end: the parent's death is EOF there
        self._conn = multiprocessing.connection.Connection(mine.detach())
        self._io = threading.Lock()  # one request on the pipe at a time
        self._sent: Any = None       # the pipeline the child holds
        self._local: Any = None      # a pipeline that would not pickle: stepped here
        self._setting: concurrent.futures.Future | None = None

    @property
    def pid(self) -> int | None:
        return self._proc.pid

    def load(self, pipeline: Any) -> None:
        """Hand ``pipeline`` to the child in the background (spawn, imports and warm-up take a
        few seconds the first time: started with the worker, not on its first batch)."""
        if pipeline is self._sent or pipeline is self._local:
            return
        try:
            blob = pickle.dumps(pipeline, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as exc:  # noqa: BLE001 - any reason it cannot cross: step it here
            log.warning("the pipeline cannot be pickled (%r): it is stepped in the worker's "
                        "own thread", exc)
            self._local = pipeline
            return
        self._local = None
        self._sent = pipeline
        done = concurrent.futures.Future()
        threading.Thread(target=self._call_into, args=(done, _SET, blob),
                         name="ember-compute-load", daemon=True).start()
        self._setting = done

    async def step(self, pipeline: Any, table: Any, states: Any) -> Any:
        """``pipeline.step(table, states)``, computed in the child; exceptions re-raised here."""
        self.load(pipeline)
        if self._local is not None:
            return pipeline.step(table, states)
        if self._setting is not None:
            setting, self._setting = self._setting, None
            try:
                await asyncio.wrap_future(setting)
            except ComputeProcessError:
                raise
            except Exception as exc:  # noqa: BLE001 - it would not load there: step it here
                log.warning("the compute process could not load the pipeline (%r): it is "
                            "stepped in the worker's own thread", exc)
                self._sent, self._local = None, pipeline
                return pipeline.step(table, states)
        return await asyncio.to_thread(self._call, _STEP, (table, states))

    def _call_into(self, done: concurrent.futures.Future, kind: str, payload: Any) -> None:
        try:
            done.set_result(self._call(kind, payload))
        except BaseException as exc:  # noqa: BLE001 - handed to whoever awaits it
            done.set_exception(exc)

    def _call(self, kind: str, payload: Any) -> Any:
        with self._io:
            try:
                self._conn.send((kind, payload))
                status, value = self._conn.recv()
            except (EOFError, OSError) as exc:
                try:
                    code = self._proc.wait(timeout=1.0)
                except subprocess.TimeoutExpired:
                    code = None
                raise ComputeProcessError(
                    f"the compute process (pid {self._proc.pid}) is gone (exit code {code}) "
                    f"during a {kind!r} request: {exc!r}") from None
        if status == "error":
            raise value
        return value

    def close(self, timeout: float = 5.0) -> None:
        """Stop the child: it exits when its pipe closes; killed if it does not in ``timeout``."""
        try:
            self._conn.close()
        except OSError:
            pass
        try:
            self._proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait(5.0)


# ---- the child ------------------------------------------------------------------------------
def _serve(conn: Any, threads: int, parent: int) -> None:  # pragma: no cover - in the child
    _die_with(parent)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C stops the worker, which closes us
    import numpy  # noqa: F401 - loaded first, so that the limit below reaches its BLAS
    import scipy.linalg.cython_blas  # noqa: F401 - and scipy's, which numba's np.dot calls
    from threadpoolctl import threadpool_limits

    from stream_app import heap

    threadpool_limits(limits=threads)
    pipeline: Any = None
    while True:
        try:
            kind, payload = conn.recv()
        except (EOFError, OSError):
            return  # the worker closed the pipe or died
        try:
            if kind == _SET:
                pipeline = pickle.loads(payload)
                warm_up = getattr(pipeline, "warm_up", None)
                if callable(warm_up):
                    warm_up()
                heap.refreeze()  # the model out of full collections' way, as in the worker
                reply: tuple = ("ok", None)
            else:
                reply = ("ok", pipeline.step(*payload))
        except Exception as exc:  # noqa: BLE001 - the worker re-raises it
            reply = ("error", _portable(exc))
        try:
            conn.send(reply)
        except Exception as exc:  # noqa: BLE001 - a result that will not pickle
            if isinstance(exc, (BrokenPipeError, ConnectionResetError)):
                return
            conn.send(("error", RuntimeError(f"compute process: cannot return the {kind} "
                                             f"result: {exc!r}")))


def _portable(exc: Exception) -> Exception:
    try:
        pickle.loads(pickle.dumps(exc))
        return exc
    except Exception:  # noqa: BLE001
        return RuntimeError(f"{type(exc).__name__}: {exc}")


def _die_with(parent: int) -> None:  # pragma: no cover - in the child
    """Linux: SIGKILL this process when the worker dies, even in the middle of a step."""
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent:  # the worker died before the line above
        os._exit(0)


def _main(argv: list[str]) -> None:  # pragma: no cover - in the child
    fd, threads, parent = (int(a) for a in argv)
    _serve(multiprocessing.connection.Connection(fd), threads, parent)


if __name__ == "__main__":  # pragma: no cover - started by ComputeProcess
    _main(sys.argv[1:])
