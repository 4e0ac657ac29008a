"""Start and stop a local BigQuery emulator (PyPI ``bqemulator``) as a separate process.

Why a process and not bqemulator's in-process pytest plugin: the backfill talks to BigQuery
through the real client libraries over real sockets (REST + gRPC Storage Read), exactly as it
would talk to Google, and a separate process keeps the emulator's DuckDB threads, gRPC server
and memory out of the process under test.

Offline start needs one preparation: bqemulator runs ``INSTALL spatial`` at boot, which
downloads the DuckDB spatial extension unless it is already in DuckDB's extension directory
(``$HOME/.duckdb/extensions/<duckdb version>/<platform>/``). The ``duckdb-extension-spatial``
wheel ships that file; ``duckdb_extensions.import_extension`` installs it from the wheel, after
which ``INSTALL spatial`` is a no-op. The optional Avro extension is switched off
(``BQEMU_ENABLE_FORMAT_EXTENSIONS=false``) so the emulator never tries the network.

Command line (wrapped by ``scripts/bqemulator``)::

    python -m stream_app.backfill.emulator start [--state-dir DIR]   # prints EMBER_BQ_* lines
    python -m stream_app.backfill.emulator stop  [--state-dir DIR]
    python -m stream_app.backfill.emulator status [--state-dir DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path

from ..processes import free_port, log_tail, pid_alive, terminate

DEFAULT_PROJECT = "ember-local"
DEFAULT_STATE_DIR = Path("var/bqemulator")
STATE_FILE = "emulator.json"
LOG_FILE = "emulator.log"

# Environment variables through which tests and tools find a running emulator.
ENV_REST = "EMBER_BQ_ENDPOINT"  # http://127.0.0.1:PORT (REST API)
ENV_GRPC = "EMBER_BQ_GRPC_ENDPOINT"  # 127.0.0.1:PORT (Storage Read API)
ENV_PROJECT = "EMBER_BQ_PROJECT"


class EmulatorError(RuntimeError):
    """The emulator could not be prepared, started, reached or stopped."""


@dataclass(frozen=True)
class EmulatorHandle:
    """A running emulator: where it listens and which process it is."""

    pid: int
    rest_url: str
    grpc_endpoint: str
    project: str
    log_path: str

    def env(self) -> dict[str, str]:
        return {ENV_REST: self.rest_url, ENV_GRPC: self.grpc_endpoint, ENV_PROJECT: self.project}


def install_spatial_extension() -> Path:
    """Install DuckDB's spatial extension from its wheel into DuckDB's extension directory.

    Returns the installed file. Idempotent. Raises EmulatorError naming the missing wheel.
    """
    try:
        import duckdb
        import duckdb_extensions
    except ImportError as exc:  # pragma: no cover - dependency error path
        raise EmulatorError(
            f"cannot prepare bqemulator offline: {exc}; install duckdb==1.5.5, "
            "duckdb-extension-spatial==1.5.5 and duckdb-extensions"
        ) from exc
    con = duckdb.connect()
    try:
        row = con.sql(
            "SELECT installed, install_path FROM duckdb_extensions() WHERE extension_name = 'spatial'"
        ).fetchone()
        if row is None or not row[0]:
            try:
                duckdb_extensions.import_extension("spatial", con=con)
            except ModuleNotFoundError as exc:
                raise EmulatorError(
                    "the duckdb-extension-spatial wheel is not installed (needed to start "
                    f"bqemulator offline, matching duckdb {duckdb.__version__}): {exc}"
                ) from exc
            row = con.sql(
                "SELECT installed, install_path FROM duckdb_extensions() "
                "WHERE extension_name = 'spatial'"
            ).fetchone()
        if row is None or not row[0]:
            raise EmulatorError("DuckDB spatial extension still not installed after import_extension")
        return Path(row[1])
    finally:
        con.close()


def _rest_ready(rest_url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{rest_url}/readyz", timeout=2) as resp:
            return resp.status == 200 and json.loads(resp.read()).get("status") == "ok"
    except (urllib.error.URLError, OSError, ValueError):
        return False


def _grpc_ready(endpoint: str) -> bool:
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    with grpc.insecure_channel(endpoint) as channel:
        try:
            grpc.channel_ready_future(channel).result(timeout=2)
            reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=2)
        except (grpc.FutureTimeoutError, grpc.RpcError):
            return False
        return reply.status == health_pb2.HealthCheckResponse.SERVING


def start_emulator(
    state_dir: Path | str = DEFAULT_STATE_DIR,
    project: str = DEFAULT_PROJECT,
    timeout: float = 90.0,
    attempts: int = 3,
) -> EmulatorHandle:
    """Start bqemulator on free loopback ports, wait until REST and gRPC answer, record it.

    The process runs in its own session (it outlives a shell that started it) and is stopped
    by :func:`stop_emulator` through its pid. A lost race for a free port is retried.
    """
    state_dir = Path(state_dir).resolve()
    state_dir.mkdir(parents=True, exist_ok=True)
    install_spatial_extension()
    last_error = ""
    for _ in range(attempts):
        rest_port, grpc_port = free_port(), free_port()
        while grpc_port == rest_port:
            grpc_port = free_port()
        log_path = state_dir / LOG_FILE
        env = dict(os.environ)
        env["BQEMU_ENABLE_FORMAT_EXTENSIONS"] = "false"
        env.pop("BQEMU_DATA_DIR", None)
        cmd = [
            sys.executable, "-m", "bqemulator", "start",
            "--rest-host", "127.0.0.1", "--rest-port", str(rest_port),
            "--grpc-host", "127.0.0.1", "--grpc-port", str(grpc_port),
            "--ephemeral", "--project", project,
            "--log-level", "warning", "--log-format", "console",
        ]  # fmt: skip
        with open(log_path, "ab") as log:
            proc = subprocess.Popen(
                cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env=env, start_new_session=True,
            )  # fmt: skip
        handle = EmulatorHandle(
            pid=proc.pid,
            rest_url=f"http://127.0.0.1:{rest_port}",
            grpc_endpoint=f"127.0.0.1:{grpc_port}",
            project=project,
            log_path=str(log_path),
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                last_error = f"bqemulator exited with code {proc.returncode}:\n{log_tail(log_path)}"
                break
            if _rest_ready(handle.rest_url) and _grpc_ready(handle.grpc_endpoint):
                (state_dir / STATE_FILE).write_text(json.dumps(asdict(handle), indent=2))
                return handle
            time.sleep(0.2)
        else:
            terminate(proc.pid)
            raise EmulatorError(
                f"bqemulator did not become ready within {timeout:.0f}s "
                f"(REST {handle.rest_url}, gRPC {handle.grpc_endpoint}); log:\n{log_tail(log_path)}"
            )
    raise EmulatorError(f"bqemulator failed to start after {attempts} attempts: {last_error}")


def stop_emulator(handle_or_state_dir: EmulatorHandle | Path | str = DEFAULT_STATE_DIR) -> bool:
    """Stop the emulator (SIGTERM, then SIGKILL after 10 s) by its pid. False if none was running."""
    if isinstance(handle_or_state_dir, EmulatorHandle):
        pid, state_file = handle_or_state_dir.pid, None
    else:
        state_file = Path(handle_or_state_dir).resolve() / STATE_FILE
        if not state_file.exists():
            return False
        pid = int(json.loads(state_file.read_text())["pid"])
    was_running = pid_alive(pid)
    terminate(pid)
    if state_file is not None:
        state_file.unlink(missing_ok=True)
    return was_running


def running_emulator(state_dir: Path | str = DEFAULT_STATE_DIR) -> EmulatorHandle | None:
    """The emulator recorded in ``state_dir`` if its process is alive and answers."""
    state_file = Path(state_dir).resolve() / STATE_FILE
    if not state_file.exists():
        return None
    handle = EmulatorHandle(**json.loads(state_file.read_text()))
    if pid_alive(handle.pid) and _rest_ready(handle.rest_url):
        return handle
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bqemulator", description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=["start", "stop", "status"])
    parser.add_argument("--state-dir", default=str(DEFAULT_STATE_DIR))
    parser.add_argument("--project", default=DEFAULT_PROJECT)
    parser.add_argument("--timeout", type=float, default=90.0)
    args = parser.parse_args(argv)
    if args.action == "start":
        handle = running_emulator(args.state_dir)
        if handle is None:
            try:
                handle = start_emulator(args.state_dir, args.project, args.timeout)
            except EmulatorError as exc:
                print(f"error: {exc}", file=sys.stderr)
                return 1
        for name, value in handle.env().items():
            print(f"export {name}={value}")
        return 0
    if args.action == "stop":
        stopped = stop_emulator(args.state_dir)
        print("stopped" if stopped else "not running")
        return 0
    handle = running_emulator(args.state_dir)
    if handle is None:
        print("not running")
        return 1
    print(f"running pid={handle.pid} rest={handle.rest_url} grpc={handle.grpc_endpoint}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
