"""`ember train / score / report / run-sample` end to end on real files, through click's CliRunner."""

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from stream_app.cli import main
from stream_app.files import EventFields, read_events
from stream_app.sample import SAMPLE_CONFIG, write_sample

REPO = Path(__file__).resolve().parents[1]
FIELDS = EventFields("service", "time", ("requests", "latency_ms"), ("status",))


def run(*args):
    result = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    return result


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    out = tmp_path_factory.mktemp("sample")
    paths = write_sample(out / "data", seed=11, n_keys=3, events_per_key=400)
    (out / "ember.toml").write_text(SAMPLE_CONFIG)
    return out, paths


@pytest.fixture(scope="module")
def model(sample):
    out, paths = sample
    result = run("train", "--config", out / "ember.toml", "--input", paths["history"], "--model", out / "model",
                 "--no-progress")
    assert result.exit_code == 0, result.output
    assert "trained on" in result.output and (out / "model" / "manifest.json").is_file()
    return out / "model"


def _with_malformed_rows(src: Path, dst: Path) -> tuple[list[int], int]:
    """Copy a CSV, corrupting some lines; returns (corrupted line numbers, good data lines)."""
    lines = src.read_text().splitlines()
    bad = {5: lambda l: l.replace(l.split(",")[2], "twelve", 1),         # bad number
           9: lambda l: ",".join(l.split(",")[:3]),                        # ragged
           14: lambda l: l.replace(l.split(",")[1], '"03/04/2024 noon"', 1),  # unparsable time
           20: lambda l: "," + l.split(",", 1)[1],                         # no key
           31: lambda l: l + ",extra"}                                     # ragged
    for n, corrupt in bad.items():
        lines[n - 1] = corrupt(lines[n - 1])
    dst.write_text("\n".join(lines) + "\n")
    return sorted(bad), len(lines) - 1 - len(bad)


def test_example_config_is_the_sample_config():
    assert (REPO / "ember.toml").read_text() == SAMPLE_CONFIG


def test_score_reports_malformed_rows_by_line_and_scores_every_good_row(sample, model, tmp_path):
    _, paths = sample
    events = tmp_path / "events.csv"
    bad_lines, good = _with_malformed_rows(paths["live"], events)
    out = tmp_path / "scores.parquet"
    result = run("score", "--model", model, "--input", events, "--output", out, "--alerts", tmp_path / "alerts.jsonl",
                 "--skipped-rows", tmp_path / "skipped.csv", "--no-progress")
    assert result.exit_code == 0, result.output
    for line in bad_lines:
        assert f"{events}:{line}: " in result.output
    assert f"{good} kept, {len(bad_lines)} skipped" in result.output
    assert "twelve" in result.output and "ragged line" in result.output

    scores = pq.read_table(out)
    expected, _ = read_events(events, FIELDS)
    assert scores.num_rows == good == expected.num_rows
    # every good row is there, with its values, in time order
    order = np.argsort(expected.column("time").to_numpy(), kind="stable")
    for name in ("service", "time", "requests", "latency_ms", "status"):
        assert scores.column(name).to_pylist() == expected.column(name).take(pa.array(order)).to_pylist()
    s = scores.column("score").to_numpy()
    assert np.all((s >= 0) & (s <= 1))
    skipped = (tmp_path / "skipped.csv").read_text().splitlines()
    assert len(skipped) == 1 + len(bad_lines)
    n_alerts = int(scores.column("alert").to_numpy(zero_copy_only=False).sum())
    alerts = [json.loads(l) for l in (tmp_path / "alerts.jsonl").read_text().splitlines()]
    assert len(alerts) == n_alerts
    assert f"{n_alerts} alerts" in result.output


def test_chunked_scoring_equals_one_batch_and_formats_agree(sample, model, tmp_path):
    """Chunk size is a memory/progress knob only; CSV, JSONL and Parquet inputs score the same."""
    _, paths = sample
    table, _ = read_events(paths["live"], FIELDS)
    from stream_app.files import write_events
    jsonl = write_events(table, tmp_path / "live.jsonl", "time")
    outs = {}
    for name, src, chunk in (("csv", paths["live"], 100_000), ("csv_small", paths["live"], 97),
                             ("jsonl", jsonl, 500)):
        out = tmp_path / f"{name}.parquet"
        result = run("score", "--model", model, "--input", src, "--output", out, "--chunk-rows", chunk,
                     "--no-progress")
        assert result.exit_code == 0, result.output
        outs[name] = pq.read_table(out)
    base = outs["csv"].column("score").to_numpy()
    assert base.size == table.num_rows and base.std() > 0
    for name in ("csv_small", "jsonl"):
        # float32 model core: micro-batches round differently from one batch by ~1e-8
        np.testing.assert_allclose(outs[name].column("score").to_numpy(), base, rtol=0, atol=1e-6)
        assert outs[name].column("alert").to_pylist() == outs["csv"].column("alert").to_pylist()


def test_stored_key_states_carry_history_into_scoring(sample, model, tmp_path):
    _, paths = sample
    warm, cold = tmp_path / "warm.parquet", tmp_path / "cold.parquet"
    assert run("score", "--model", model, "--input", paths["live"], "--output", warm, "--no-progress").exit_code == 0
    assert run("score", "--model", model, "--input", paths["live"], "--output", cold, "--cold",
               "--no-progress").exit_code == 0
    assert not np.allclose(pq.read_table(warm).column("score").to_numpy(),
                           pq.read_table(cold).column("score").to_numpy())


def test_report_writes_a_png_per_key_panels(sample, model, tmp_path):
    out, paths = sample
    scores = tmp_path / "scores.parquet"
    assert run("score", "--model", model, "--input", paths["live"], "--output", scores, "--no-progress").exit_code == 0
    sizes = {}
    for keys in (1, 3):
        png = tmp_path / f"report{keys}.png"
        result = run("report", "--scores", scores, "--output", png, "--windows", paths["windows"],
                     "--max-keys", keys)
        assert result.exit_code == 0, result.output
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"{keys} of 3 keys" in result.output
        import matplotlib.image as mpimg
        sizes[keys] = mpimg.imread(png).shape[0]
    assert sizes[3] > 2 * sizes[1]          # one panel per key: taller with more keys


def test_run_sample_end_to_end(tmp_path):
    result = run("run-sample", "--output", tmp_path / "out", "--keys", 3, "--events-per-key", 400, "--no-progress")
    assert result.exit_code == 0, result.output
    for name in ("data/history.parquet", "data/live.csv", "data/windows.csv", "ember.toml", "model/manifest.json",
                 "scores.parquet", "alerts.jsonl", "report.png"):
        assert (tmp_path / "out" / name).is_file(), name
    assert "injected anomalies (" in result.output and "report:" in result.output


def test_errors_name_what_and_where(sample, model, tmp_path):
    out, paths = sample
    bad_cfg = tmp_path / "bad.toml"
    bad_cfg.write_text(SAMPLE_CONFIG.replace('time_field = "time"', 'time_field = ""'))
    result = run("train", "--config", bad_cfg, "--input", paths["history"], "--model", tmp_path / "m")
    assert result.exit_code != 0 and "bad.toml" in result.output and "time_field" in result.output

    no_col = tmp_path / "nocol.csv"
    no_col.write_text("service,when,requests,latency_ms,status\na,1,1,1,ok\n")
    result = run("score", "--model", model, "--input", no_col, "--output", tmp_path / "s.parquet")
    assert result.exit_code != 0 and "nocol.csv: no time column 'time'" in result.output

    result = run("train", "--config", out / "ember.toml", "--source", tmp_path / "nowhere.csv", "--model", tmp_path / "m")
    assert result.exit_code != 0 and "nowhere.csv: no such file" in result.output

    result = run("train", "--config", out / "ember.toml", "--model", tmp_path / "m")
    assert result.exit_code != 0 and "--input" in result.output
