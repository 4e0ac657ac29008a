"""stream_app.processes: the pid handling the broker and the emulator share."""
import socket
import subprocess
import sys
import time

from stream_app.processes import free_port, log_tail, pid_alive, terminate


def test_terminate_stops_a_process_and_reaps_it():
    proc = subprocess.Popen(["sleep", "60"])
    assert pid_alive(proc.pid)
    terminate(proc.pid, grace_s=5)
    assert not pid_alive(proc.pid)


def test_terminate_kills_a_process_that_ignores_sigterm():
    code = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('ready', flush=True); time.sleep(60)"
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    t0 = time.monotonic()
    terminate(proc.pid, grace_s=0.5)
    assert not pid_alive(proc.pid)
    assert time.monotonic() - t0 < 5


def test_exited_child_not_yet_reaped_counts_as_dead():
    proc = subprocess.Popen(["true"])
    deadline = time.monotonic() + 5
    while pid_alive(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.05)   # a zombie until reaped: pid_alive must already say False
    assert not pid_alive(proc.pid)
    proc.wait()


def test_free_port_can_be_bound(tmp_path):
    port = free_port()
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))
    log = tmp_path / "x.log"
    log.write_text("\n".join(f"line {i}" for i in range(100)))
    assert log_tail(log, 2) == "line 98\nline 99"
    assert log_tail(tmp_path / "missing.log") == "(no log)"
