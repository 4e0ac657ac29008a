"""The NAB detector contract: CSV on stdin → one score in [0, 1] per row, causal."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def nab_csv(n=1200, spike_at=900, seed=0) -> str:
    rng = np.random.default_rng(seed)
    t0 = np.datetime64("2014-04-01T00:00:00")
    lines = ["timestamp,value"]
    for i in range(n):
        v = 20 + 5 * np.sin(2 * np.pi * i / 288) + rng.normal(0, 0.5)
        if i == spike_at:
            v += 30
        lines.append(f"{str(t0 + np.timedelta64(300 * i, 's')).replace('T', ' ')},{v:.3f}")
    return "\n".join(lines) + "\n"


def run(text: str):
    return subprocess.run([sys.executable, "-m", "ember_models.nab"], input=text.encode(),
                          capture_output=True, cwd=ROOT, timeout=300)


def scores_of(p) -> np.ndarray:
    assert p.returncode == 0, p.stderr.decode()
    return np.array([float(x) for x in p.stdout.decode().split()])


def test_one_score_per_row_in_range_and_spike_stands_out():
    s = scores_of(run(nab_csv()))
    assert s.shape == (1200,)
    assert np.all((s >= 0) & (s < 1))
    assert s[900] > 0.5 and s[900] == s[700:].max()
    assert np.sum(s >= s[900]) < 5          # no big tie at the top


def test_no_look_ahead():
    text = nab_csv()
    full = scores_of(run(text))
    half = scores_of(run("\n".join(text.splitlines()[:601]) + "\n"))
    np.testing.assert_array_equal(half, full[:600])


def test_bad_row_names_the_line():
    lines = nab_csv(50).splitlines()
    lines[7] = "2014-04-01 00:30:00,abc"
    p = run("\n".join(lines) + "\n")
    assert p.returncode != 0
    assert "line 8" in p.stderr.decode() and "abc" in p.stderr.decode()
