"""The README's main job, `ember demo`, run as a user runs it: its own broker, worker and
producer; alerts printed; everything it started stopped afterwards."""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from stream_app import broker

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.kafka


def test_demo_prints_alerts_and_stops_what_it_started(tmp_path):
    out = tmp_path / "demo"
    proc = subprocess.run([sys.executable, "-m", "stream_app.cli", "demo", "--output", str(out),
                           "--keys", "4", "--events-per-key", "1200", "--rate", "1000"],
                          cwd=REPO, capture_output=True, text=True, timeout=420,
                          env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    alerts = [line for line in proc.stdout.splitlines() if line.startswith("ALERT ")]
    assert alerts, proc.stdout[-3000:]
    assert all(re.search(r"score 0\.\d+ +\(threshold", a) for a in alerts)
    summary = re.search(r"sent (\d+) events; (\d+) alerts; broker and worker stopped", proc.stdout)
    assert summary and int(summary.group(1)) > 1000 and int(summary.group(2)) == len(alerts)
    assert broker.read_state(out / "broker") is None or not broker.read_state(out / "broker").alive()
