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
import base64
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

DEFAULT_VERSION = "3.9.2"
REPO_ROOT = Path(__file__).resolve().parents[1]

# The SLF4J binding each major version logs through, and the log config it reads.
_BINDINGS = {
    "3": ("org.slf4j", "slf4j-reload4j", "1.7.36"),
    "4": ("org.apache.logging.log4j", "log4j-slf4j-impl", "2.24.3"),
}

_POM = """<?xml version="1.0" encoding="UTF-8"?>
<!-- Written by stream_app/broker.py: only used to let Maven fetch the broker's jars. -->
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>ember.local</groupId>
  <artifactId>kafka-broker-jars</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka_2.13</artifactId>
      <version>{version}</version>
    </dependency>
    <dependency>
      <groupId>{bgroup}</groupId>
      <artifactId>{bartifact}</artifactId>
      <version>{bversion}</version>
    </dependency>
  </dependencies>
</project>
"""

_LOG4J1 = """log4j.rootLogger={level}, stdout
log4j.appender.stdout=org.apache.log4j.ConsoleAppender
log4j.appender.stdout.layout=org.apache.log4j.PatternLayout
log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka=INFO
log4j.logger.org.apache.kafka=INFO
"""

_LOG4J2 = """<?xml version="1.0" encoding="UTF-8"?>
<Configuration status="WARN">
  <Appenders>
    <Console name="stdout" target="SYSTEM_OUT">
      <PatternLayout pattern="[%d] %p %m (%c)%n"/>
    </Console>
  </Appenders>
  <Loggers>
    <Root level="{level}"><AppenderRef ref="stdout"/></Root>
  </Loggers>
</Configuration>
"""


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
        return _pid_alive(self.pid)


def default_cache_dir() -> Path:
    return Path(os.environ.get("EMBER_CACHE_DIR", REPO_ROOT / ".cache"))


def default_run_dir() -> Path:
    return default_cache_dir() / "kafka" / "run"


def _major(version: str) -> str:
    major = version.split(".", 1)[0]
    if major not in _BINDINGS:
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
    bgroup, bartifact, bversion = _BINDINGS[_major(version)]
    home = lib.parent
    home.mkdir(parents=True, exist_ok=True)
    (home / "pom.xml").write_text(
        _POM.format(version=version, bgroup=bgroup, bartifact=bartifact, bversion=bversion)
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


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_properties(data_dir: Path, port: int, controller_port: int) -> str:
    """Single-node KRaft on loopback, every replication setting at 1 (one broker)."""
    props = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.voters": f"1@127.0.0.1:{controller_port}",
        "listeners": f"PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}",
        "advertised.listeners": f"PLAINTEXT://127.0.0.1:{port}",
        "inter.broker.listener.name": "PLAINTEXT",
        "controller.listener.names": "CONTROLLER",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "log.dirs": str(data_dir),
        "num.partitions": "1",
        "default.replication.factor": "1",
        "min.insync.replicas": "1",
        "offsets.topic.replication.factor": "1",
        # Fewer internal partitions than the default 50: faster first group/transaction request
        # on a small machine, and one broker gains nothing from more.
        "offsets.topic.num.partitions": "8",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "transaction.state.log.num.partitions": "8",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        "group.initial.rebalance.delay.ms": "0",
        # Tests kill workers; a short minimum lets them use short session timeouts.
        "group.min.session.timeout.ms": "1000",
        # Topics are created explicitly (by the worker, the tests, the demo) with their
        # partition counts; auto-creation would silently make 1-partition source topics.
        "auto.create.topics.enable": "false",
        "log.retention.hours": "24",
        "log.segment.bytes": str(64 * 1024 * 1024),
    }
    return "".join(f"{k}={v}\n" for k, v in props.items())


def random_cluster_id() -> str:
    """A Kafka cluster id: URL-safe base64 of 16 random bytes (what StorageTool random-uuid prints)."""
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cid.startswith("-"):  # Kafka's own generator avoids these (they look like flags)
            return cid


def _java_cmd(lib: Path, log_config: Path, major: str, main: str, *args: str) -> list[str]:
    log_prop = (
        f"-Dlog4j.configuration=file:{log_config}"
        if major == "3"
        else f"-Dlog4j2.configurationFile={log_config}"
    )
    return [
        "java",
        "-Xmx512m",
        "-Xms128m",
        "-XX:+UseG1GC",
        "-Djava.awt.headless=true",
        log_prop,
        "-cp",
        f"{lib}/*",
        main,
        *args,
    ]


# ----------------------------------------------------------------------------- start / stop


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (our own exited child not yet reaped) counts as dead.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


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
        if pid is not None and not _pid_alive(pid):
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
    log_config.write_text((_LOG4J1 if major == "3" else _LOG4J2).format(level=log_level))

    fmt = subprocess.run(
        _java_cmd(lib, log_config, major, "kafka.tools.StorageTool", "format",
                  "-t", random_cluster_id(), "-c", str(props)),
        capture_output=True,
        text=True,
    )
    if fmt.returncode != 0:
        raise BrokerError(f"kafka.tools.StorageTool format failed:\n{fmt.stdout}{fmt.stderr}")

    log_file = run_dir / "broker.log"
    with open(log_file, "ab") as log:
        proc = subprocess.Popen(
            _java_cmd(lib, log_config, major, "kafka.Kafka", str(props)),
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
        tail = log_file.read_text(errors="replace")[-3000:] if log_file.exists() else ""
        raise BrokerError(f"{exc}\n--- {log_file} (tail) ---\n{tail}") from None
    return state


def stop(run_dir: Path | None = None, timeout_s: float = 20.0) -> bool:
    """Stop the broker recorded in ``run_dir``: SIGTERM, then SIGKILL. True if one was running."""
    run_dir = Path(run_dir or default_run_dir())
    state = read_state(run_dir)
    if state is None:
        return False
    was_alive = state.alive()
    if was_alive:
        _terminate(state.pid, timeout_s)
    (run_dir / "state.json").unlink(missing_ok=True)
    return was_alive


def _terminate(pid: int, timeout_s: float) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        _reap(pid)
        if not _pid_alive(pid):
            return
        time.sleep(0.1)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    for _ in range(50):
        _reap(pid)
        if not _pid_alive(pid):
            return
        time.sleep(0.1)


def _reap(pid: int) -> None:
    """Collect our own child's exit status so it does not linger as a zombie."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


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
