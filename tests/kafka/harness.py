"""Worker subprocesses and topic reading for the streaming integration tests."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stream_app.processes import free_port
from stream_app.produce import read_topic

REPO = Path(__file__).resolve().parents[2]
TESTS_KAFKA = Path(__file__).resolve().parent


@dataclass
class Topics:
    events: str
    alerts: str
    dlq: str
    scores: str


@dataclass
class WorkerProc:
    """``python -m stream_app.worker`` in a subprocess with its own datadir, port and log."""

    env: dict[str, str]
    datadir: Path
    log_path: Path
    web_port: int = field(default_factory=free_port)
    proc: subprocess.Popen | None = None

    def start(self) -> "WorkerProc":
        env = dict(os.environ)
        env.update(self.env)
        env["EMBER_DATADIR"] = str(self.datadir)
        env["EMBER_WEB_PORT"] = str(self.web_port)
        env["PYTHONPATH"] = os.pathsep.join([str(TESTS_KAFKA), str(REPO), env.get("PYTHONPATH", "")])
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "stream_app.worker"], cwd=REPO, env=env,
                                     stdout=self.log, stderr=subprocess.STDOUT)
        return self

    def health(self) -> dict[str, Any] | None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.web_port}/health", timeout=2) as r:
                return json.loads(r.read())
        except Exception:
            return None

    def metrics(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.web_port}/metrics", timeout=5) as r:
            return r.read().decode()

    def metric(self, name: str) -> float:
        """An unlabelled sample of /metrics (0 when absent)."""
        for line in self.metrics().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
        return 0.0

    def children(self) -> list[int]:
        """Pids of the worker's child processes (its compute process)."""
        assert self.proc is not None
        out = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == self.proc.pid:
                    out.append(int(stat.parent.name))
            except (OSError, ValueError, IndexError):
                continue
        return out

    def wait_assigned(self, timeout_s: float = 90.0, partitions: int | None = None) -> list[int]:
        """Wait until the worker holds partitions (``partitions`` of them, if given)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self.check_alive()
            h = self.health()
            if h and h["assigned_partitions"] and (partitions is None or len(h["assigned_partitions"]) == partitions):
                return h["assigned_partitions"]
            time.sleep(0.3)
        raise AssertionError(f"worker got no partitions in {timeout_s} s; log:\n{self.tail()}")

    def processed(self) -> int:
        h = self.health()
        return sum(int(v) + 1 for v in h["positions"].values()) if h else 0

    def check_alive(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            raise AssertionError(f"worker exited ({self.proc and self.proc.returncode}); log:\n{self.tail()}")

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self, timeout_s: float = 30.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)

    def dump_tasks(self) -> None:
        """Ask a live worker to log every asyncio task's stack (mode's SIGUSR1 "cry"), so a
        timeout shows where a stuck worker waits."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGUSR1)
            time.sleep(1.5)

    def tail(self, n: int = 6000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-n:]
        except OSError:
            return ""

    def state_log(self) -> str:
        """The log lines that say where its states came from: rebalances, what table recovery
        read (highwater tables), each partition's stored cursor, ranges read back."""
        keep = re.compile(r"Revoking|Highwater|Reading Starts|^\| (\S*changelog|〃)|Worker ready|"
                          r"stored cursor|read back|Aborted tx|restart", re.M)
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(line[:200] for line in lines if keep.search(line))


def worker_env(bootstrap: str, topics: Topics, model_dir: Path, group: str, **extra: Any) -> dict[str, str]:
    env = {
        "EMBER_KAFKA_BOOTSTRAP": bootstrap,
        "EMBER_APP_ID": group,
        "EMBER_EVENTS_TOPIC": topics.events,
        "EMBER_ALERTS_TOPIC": topics.alerts,
        "EMBER_DEAD_LETTER_TOPIC": topics.dlq,
        "EMBER_SCORES_TOPIC": topics.scores,
        "EMBER_MODEL_DIR": str(model_dir),
        "EMBER_SESSION_TIMEOUT_S": "6",
        "EMBER_HEARTBEAT_INTERVAL_S": "0.5",
        "EMBER_COMMIT_INTERVAL_S": "0.5",
        "EMBER_MODEL_POLL_S": "1",
        "EMBER_LOG_LEVEL": "INFO",
    }
    env.update({f"EMBER_{k.upper()}": str(v) for k, v in extra.items()})
    return env


def read_json(bootstrap: str, topic: str, *, committed: bool = False, expect: int | None = None,
              idle_s: float = 2.0, timeout_s: float = 120.0) -> list[Any]:
    msgs = asyncio.run(read_topic(bootstrap, topic, expect=expect, idle_s=idle_s, timeout_s=timeout_s,
                                  isolation_level="read_committed" if committed else "read_uncommitted"))
    return [json.loads(m.value) for m in msgs]


def read_scores_with_workers(bootstrap: str, topic: str, committed: bool = False) -> dict:
    """(key, time) → [(score, source offset, producing worker)] from the scores topic."""
    msgs = asyncio.run(read_topic(bootstrap, topic, idle_s=0.5,
                                  isolation_level="read_committed" if committed else "read_uncommitted"))
    out: dict = {}
    for m in msgs:
        who = dict(m.headers or ()).get("ember-worker", b"?").decode()
        for s in json.loads(m.value):
            out.setdefault((s["key"], s["time"]), []).append((s["score"], s["offset"], who))
    return out


def scores_by_event(score_messages: list[list[dict]], with_offsets: bool = False) -> dict:
    """(key, time) → every score seen for it (more than one = a duplicate); with_offsets:
    (score, source offset) pairs."""
    out: dict[tuple[str, float], list] = {}
    for batch in score_messages:
        for s in batch:
            out.setdefault((s["key"], s["time"]), []).append((s["score"], s["offset"]) if with_offsets else s["score"])
    return out


def wait_for(predicate, timeout_s: float, what: str, every: float = 0.3, workers=()):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for w in workers:
            w.check_alive()
        value = predicate()
        if value:
            return value
        time.sleep(every)
    # What a stuck worker did before it stopped (its log's warnings and the lines that say
    # where its states came from), then where each task waits: the dump alone fills the tail.
    before = [(w.log_path.name, w.tail(6000), w.state_log()) for w in workers]
    for w in workers:
        w.dump_tasks()
    logs = "\n".join(f"--- {name}: state lines\n{states}\n--- {name}: log before the task "
                     f"dump\n{tail}" for name, tail, states in before)
    dumps = "\n".join(w.tail(12000) for w in workers)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}\n{logs}\n"
                         f"--- task dumps\n{dumps}")
