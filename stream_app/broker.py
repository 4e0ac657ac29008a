"""A local single-node Apache Kafka broker (KRaft mode) started from Maven Central jars.

Used by the tests, the benchmarks and ``ember demo``; never needed in production, where the
worker points at a real cluster. The steps:

1. ``fetch``: Maven copies ``org.apache.kafka:kafka_2.13:<version>`` and an SLF4J binding with
   their runtime dependencies into ``<cache>/kafka/<version>/lib`` (``<cache>`` is the project's
   git-ignored ``.cache/``; Maven's own repository lives in ``<cache>/m2``).
2. ``start``: picks two free loopback ports, writes ``server.properties`` (broker + controller in
   one process, every replication factor 1), formats the log dir with ``kafka.tools.StorageTool``,
   starts ``java ... kafka.Kafka server.properties`` and waits until the broker answers a metadata
   request. A ``state.json`` in the run dir records the pid and the bootstrap address.
3. ``stop``: SIGTERM to the pid (the broker shuts down cleanly in ~2 s), SIGKILL if it lingers.

Command line: ``python -m stream_app.broker start|stop|status|fetch`` (``scripts/kafka`` wraps it).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

from .broker_files import BINDINGS, LOG4J1, LOG4J2, POM, java_cmd, random_cluster_id, server_properties
from .processes import free_port, log_tail, pid_alive, terminate

DEFAULT_VERSION = "3.9.2"
REPO_ROOT = Path(__file__).resolve().parents[1]

class BrokerError(RuntimeError):
    """The local broker could not be fetched, started or reached."""


@dataclass
class BrokerState:
    """What ``state.json`` records about a running broker."""

    pid: int
    bootstrap: str
    controller_port: int
    version: str
    run_dir: str
    log_file: str
    started_at: float

    def alive(self) -> bool:
        return pid_alive(self.pid)


def default_cache_dir() -> Path:
    return Path(os.environ.get("EMBER_CACHE_DIR", REPO_ROOT / ".cache"))


def default_run_dir() -> Path:
    return default_cache_dir() / "kafka" / "run"


def _major(version: str) -> str:
    major = version.split(".", 1)[0]
    if major not in BINDINGS:
        raise BrokerError(f"Kafka version {version!r}: only 3.x and 4.x are supported")
    return major


# ----------------------------------------------------------------------------- fetch


def lib_dir(version: str = DEFAULT_VERSION, cache_dir: Path | None = None) -> Path:
    return (cache_dir or default_cache_dir()) / "kafka" / version / "lib"


def fetch(version: str = DEFAULT_VERSION, cache_dir: Path | None = None, quiet: bool = True) -> Path:
    """Fetch the broker jars for ``version`` with Maven (once); return the lib directory."""
    cache_dir = cache_dir or default_cache_dir()
    lib = lib_dir(version, cache_dir)
    marker = lib / ".complete"
    if marker.exists():
        return lib
    mvn = shutil.which("mvn")
    if mvn is None:
        raise BrokerError("Maven (mvn) is not on PATH: it is needed once to fetch the Kafka jars")
    if shutil.which("java") is None:
        raise BrokerError("java is not on PATH: the Kafka broker needs a JDK/JRE 17+")
    bgroup, bartifact, bversion = BINDINGS[_major(version)]
    home = lib.parent
    home.mkdir(parents=True, exist_ok=True)
    (home / "pom.xml").write_text(
        POM.format(version=version, bgroup=bgroup, bartifact=bartifact, bversion=bversion)
    )
    if lib.exists():  # a half-finished earlier fetch
        shutil.rmtree(lib)
    cmd = [
        mvn,
        "-B",
        *(["-q"] if quiet else []),
        "dependency:copy-dependencies",
        "-DincludeScope=runtime",
        f"-DoutputDirectory={lib}",
        f"-Dmaven.repo.local={cache_dir / 'm2'}",
    ]
    proc = subprocess.run(cmd, cwd=home, capture_output=True, text=True)
    jars = list(lib.glob("*.jar")) if lib.exists() else []
    if proc.returncode != 0 or not any(j.name.startswith("kafka_2.13-") for j in jars):
        raise BrokerError(
            f"fetching Kafka {version} with Maven failed (exit {proc.returncode}):\n"
            f"{proc.stdout[-3000:]}{proc.stderr[-3000:]}"
        )
    marker.write_text(f"{len(jars)} jars\n")
    return lib


# ----------------------------------------------------------------------------- config


# ----------------------------------------------------------------------------- start / stop


def read_state(run_dir: Path | None = None) -> BrokerState | None:
    path = (run_dir or default_run_dir()) / "state.json"
    if not path.exists():
        return None
    return BrokerState(**json.loads(path.read_text()))


async def _answers_metadata(bootstrap: str, timeout_s: float) -> bool:
    from aiokafka.admin import AIOKafkaAdminClient

    # "Unable connect" is the expected answer while the broker boots: keep it off the terminal.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=int(timeout_s * 1000))
    try:
        await asyncio.wait_for(admin.start(), timeout_s)
        cluster = await asyncio.wait_for(admin.describe_cluster(), timeout_s)
        return bool(cluster.get("brokers"))
    except Exception:
        return False
    finally:
        try:
            await admin.close()
        except Exception:
            pass
        logging.getLogger("aiokafka").setLevel(logging.NOTSET)


def wait_until_ready(bootstrap: str, timeout_s: float = 60.0, pid: int | None = None) -> float:
    """Block until the broker at ``bootstrap`` answers a metadata request; return seconds waited."""
    t0 = time.monotonic()
    while True:
        if pid is not None and not pid_alive(pid):
            raise BrokerError(f"the broker process {pid} exited before it became ready")
        if asyncio.run(_answers_metadata(bootstrap, 2.0)):
            return time.monotonic() - t0
        if time.monotonic() - t0 > timeout_s:
            raise BrokerError(f"no metadata answer from {bootstrap} within {timeout_s:.0f} s")
        time.sleep(0.2)


def start(
    run_dir: Path | None = None,
    version: str = DEFAULT_VERSION,
    cache_dir: Path | None = None,
    port: int | None = None,
    timeout_s: float = 90.0,
    log_level: str = "INFO",
) -> BrokerState:
    """Start a fresh broker whose files live in ``run_dir``; return once it answers metadata.

    ``run_dir`` is wiped first (the broker keeps nothing between starts). A broker already
    recorded as running there is an error: stop it first.
    """
    run_dir = Path(run_dir or default_run_dir())
    major = _major(version)
    existing = read_state(run_dir)
    if existing is not None and existing.alive():
        raise BrokerError(
            f"a broker is already running from {run_dir} (pid {existing.pid}, "
            f"{existing.bootstrap}); stop it first"
        )
    lib = fetch(version, cache_dir)
    if run_dir.exists():
        shutil.rmtree(run_dir)
    data_dir = run_dir / "data"
    data_dir.mkdir(parents=True)
    port = port or free_port()
    controller_port = free_port()
    while controller_port == port:
        controller_port = free_port()
    props = run_dir / "server.properties"
    props.write_text(server_properties(data_dir, port, controller_port))
    log_config = run_dir / ("log4j.properties" if major == "3" else "log4j2.xml")
    log_config.write_text((LOG4J1 if major == "3" else LOG4J2).format(level=log_level))

    fmt = subprocess.run(
        java_cmd(lib, log_config, major, "kafka.tools.StorageTool", "format",
                  "-t", random_cluster_id(), "-c", str(props)),
        capture_output=True,
        text=True,
    )
    if fmt.returncode != 0:
        raise BrokerError(f"kafka.tools.StorageTool format failed:\n{fmt.stdout}{fmt.stderr}")

    log_file = run_dir / "broker.log"
    with open(log_file, "ab") as log:
        proc = subprocess.Popen(
            java_cmd(lib, log_config, major, "kafka.Kafka", str(props)),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # Ctrl-C in a terminal goes to us; we stop it ourselves
        )
    state = BrokerState(
        pid=proc.pid,
        bootstrap=f"127.0.0.1:{port}",
        controller_port=controller_port,
        version=version,
        run_dir=str(run_dir),
        log_file=str(log_file),
        started_at=time.time(),
    )
    (run_dir / "state.json").write_text(json.dumps(asdict(state), indent=1))
    try:
        wait_until_ready(state.bootstrap, timeout_s, pid=proc.pid)
    except BrokerError as exc:
        stop(run_dir)
        raise BrokerError(f"{exc}\n--- {log_file} (tail) ---\n{log_tail(log_file)}") from None
    return state


def stop(run_dir: Path | None = None, timeout_s: float = 20.0) -> bool:
    """Stop the broker recorded in ``run_dir``: SIGTERM, then SIGKILL. True if one was running."""
    run_dir = Path(run_dir or default_run_dir())
    state = read_state(run_dir)
    if state is None:
        return False
    was_alive = state.alive()
    if was_alive:
        terminate(state.pid, timeout_s)
    (run_dir / "state.json").unlink(missing_ok=True)
    return was_alive


@contextmanager
def given_or_started(run_dir: Path) -> Iterator[tuple[str, bool]]:
    """(bootstrap, started here): the broker ``EMBER_KAFKA_BOOTSTRAP`` names, else a fresh one
    whose files live in ``run_dir``, stopped on leaving the block (the benchmarks' broker)."""
    given = os.environ.get("EMBER_KAFKA_BOOTSTRAP")
    if given:
        yield given, False
        return
    state = start(run_dir)
    try:
        yield state.bootstrap, True
    finally:
        stop(run_dir)


def status(run_dir: Path | None = None) -> BrokerState | None:
    """The running broker recorded in ``run_dir``, or None."""
    state = read_state(run_dir)
    if state is None or not state.alive():
        return None
    return state


# ----------------------------------------------------------------------------- command line


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="scripts/kafka", description="Local single-node Kafka (KRaft) for ember."
    )
    parser.add_argument("command", choices=["start", "stop", "status", "fetch", "env"])
    parser.add_argument("--version", default=os.environ.get("EMBER_KAFKA_VERSION", DEFAULT_VERSION))
    parser.add_argument("--run-dir", type=Path, default=None, help="default: .cache/kafka/run")
    parser.add_argument("--port", type=int, default=None, help="broker port (default: a free one)")
    args = parser.parse_args(argv)
    try:
        if args.command == "fetch":
            t0 = time.monotonic()
            lib = fetch(args.version, quiet=False)
            print(f"Kafka {args.version}: {len(list(lib.glob('*.jar')))} jars in {lib} "
                  f"({time.monotonic() - t0:.1f} s)")
        elif args.command == "start":
            t0 = time.monotonic()
            state = start(args.run_dir, args.version, port=args.port)
            print(f"Kafka {state.version} running: bootstrap {state.bootstrap}, pid {state.pid}, "
                  f"log {state.log_file} (ready in {time.monotonic() - t0:.1f} s)")
            print(f"export EMBER_KAFKA_BOOTSTRAP={state.bootstrap}")
        elif args.command == "stop":
            print("stopped" if stop(args.run_dir) else "no broker was running")
        elif args.command == "status":
            state = status(args.run_dir)
            if state is None:
                print("no broker running")
                return 1
            print(f"Kafka {state.version} running: bootstrap {state.bootstrap}, pid {state.pid}")
        elif args.command == "env":
            state = status(args.run_dir)
            if state is None:
                print("no broker running", file=sys.stderr)
                return 1
            print(f"export EMBER_KAFKA_BOOTSTRAP={state.bootstrap}")
    except BrokerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
