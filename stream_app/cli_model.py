"""``ember train | score | report | run-sample``: the file-driven detector, no server needed.

    ember train --config ember.toml --input history.parquet --model model/
    ember score --model model/ --input events.csv --output scores.parquet
    ember report --scores scores.parquet --output report.png
    ember run-sample --output out/sample     # all of the above on the bundled sample stream

Event files are CSV, Parquet or JSON Lines (see stream_app/files/): malformed rows are
skipped and listed with their file and line; everything else is scored.
"""

from __future__ import annotations

import json
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

import click

from stream_app import model_runs
from stream_app.episodes import Episode, alert_episodes, match_windows
from stream_app.files import FORMATS, EventFileError
from stream_app.report import read_scores, write_report

if TYPE_CHECKING:  # (pyarrow is imported where a command needs it)
    import pyarrow as pa

_BIGQUERY_PREFIXES = ("bq://", "bigquery://", "bigquery:")


def _fail(err: Exception) -> click.ClickException:
    return click.ClickException(str(err))


def _load_config(path):
    from ember_models.config import ConfigError, load_config
    try:
        return load_config(path)
    except ConfigError as err:
        raise _fail(err) from None


def _bigquery_tables(sources: tuple[str, ...], config) -> list[tuple[str, "pa.Table"]]:
    """--source bigquery://PROJECT/DATASET/TABLE (or bq://…) → (name, table), read by the
    backfill's history reader (Storage Read API; emulator or cloud per its environment)."""
    specs = [s for s in sources if s.lower().startswith(_BIGQUERY_PREFIXES)]
    if not specs:
        return []
    from google.api_core.exceptions import GoogleAPIError
    from google.auth.exceptions import GoogleAuthError

    from stream_app.backfill.errors import SourceError
    from stream_app.cli_backfill import read_history
    out = []
    for spec in specs:
        try:
            out.append((spec, read_history(spec, config)))
        except SourceError as err:
            raise _fail(err) from None
        except (GoogleAuthError, GoogleAPIError) as err:
            raise click.ClickException(f"--source {spec}: cannot read from BigQuery: "
                                       f"{str(err).splitlines()[0]}") from None
    return out


def _file_sources(inputs: tuple[str, ...], sources: tuple[str, ...], allow_none: bool = False) -> list[Path]:
    """--input paths and file --source specs → event files. A directory means every event file in it."""
    files: list[Path] = []
    for spec in (*inputs, *(s for s in sources if not s.lower().startswith(_BIGQUERY_PREFIXES))):
        path = Path(spec)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in FORMATS)
            if not found:
                raise click.UsageError(f"{path}: no event files (.csv, .parquet, .jsonl) in this directory")
            files += found
        elif not path.exists():
            raise click.UsageError(f"{path}: no such file")
        else:
            files.append(path)
    if not files and not allow_none:
        raise click.UsageError("give the events to read with --input (or --source)")
    return files


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def _echo_read(report, show: int) -> None:
    click.echo(report.summary(max_rows=show))


def episodes_table(episodes: list[Episode], alerts: list[dict], limit: int = 25) -> str:
    """The alert episodes as an aligned text table, with the top reason at each episode's peak."""
    reason_at = {(a["key"], float(a["time"])): _top_reason(a) for a in alerts}
    header = ("key", "first alert (UTC)", "last alert (UTC)", "alerts", "peak", "top reason at peak")
    rows = [(e.key, _iso(e.start), _iso(e.end), str(e.alerts), f"{e.peak_score:.3f}",
             reason_at.get((e.key, e.peak_time), "")) for e in episodes[:limit]]
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)]
    right = {3, 4}
    fmt = lambda r: "  ".join(c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths)))
    lines = [fmt(header), fmt(tuple("-" * w for w in widths))] + [fmt(r) for r in rows]
    if len(episodes) > limit:
        lines.append(f"... and {len(episodes) - limit} more episodes")
    return "\n".join(lines)


def _top_reason(alert: dict) -> str:
    """The most deviating feature of an alert record, e.g. "latency_ms (+8.2)"."""
    reasons = alert.get("reasons") or alert.get("top_features") or []
    if not reasons:
        return ""
    r = reasons[0]
    name = r.get("feature") or r.get("name") or "?"
    dev = r.get("deviation")
    return f"{name} ({dev:+.1f})" if isinstance(dev, (int, float)) else str(name)


def _write_alerts(alerts: list[dict], path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as f:
        for a in alerts:
            f.write(json.dumps({**a, "time_iso": _iso(float(a["time"]))}) + "\n")
    return path


_progress_option = click.option("--progress/--no-progress", default=None,
                                help="Progress bars (default: when writing to a terminal).")
_missing_option = click.option("--missing-values", type=click.Choice(["keep", "skip"]), default="keep",
                               show_default=True,
                               help="Rows with a missing value: keep them (the model imputes) or skip and report them.")
_show_option = click.option("--show-skipped", default=20, show_default=True, type=int,
                            help="How many skipped rows to list (all go to --skipped-rows).")
_skipped_option = click.option("--skipped-rows", type=click.Path(dir_okay=False),
                               help="Write every skipped row (file, line, reason) to this CSV.")


def _write_skipped(report, path) -> None:
    if path:
        import pyarrow.csv as pacsv
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        pacsv.write_csv(report.bad_rows_table(), path)
        click.echo(f"wrote the {report.rows_skipped} skipped rows to {path}")


@click.command()
@click.option("--config", "config_path", required=True, type=click.Path(exists=True, dir_okay=False),
              help="ember TOML file naming the key, time and value fields.")
@click.option("--input", "inputs", multiple=True, help="History event file or directory (repeatable).")
@click.option("--source", "sources", multiple=True,
              help="Event source (repeatable): a file, a directory of files, or bigquery://PROJECT/DATASET/TABLE.")
@click.option("--model", "model_dir", required=True, type=click.Path(file_okay=False),
              help="Directory to write the trained model to.")
@click.option("--chunk-rows", default=model_runs.DEFAULT_CHUNK_ROWS, show_default=True, type=int)
@_missing_option
@_show_option
@_skipped_option
@_progress_option
def train(config_path, inputs, sources, model_dir, chunk_rows, missing_values, show_skipped, skipped_rows, progress):
    """Fit a detector on historical events and save it to --model."""
    config = _load_config(config_path)
    files = _file_sources(inputs, sources, allow_none=any(s.lower().startswith(_BIGQUERY_PREFIXES)
                                                          for s in sources))
    tables = _bigquery_tables(sources, config)
    try:
        res = model_runs.train(config, files, model_dir, tables=tables, missing_values=missing_values,
                               chunk_rows=chunk_rows, progress=progress)
    except (EventFileError, ValueError) as err:
        raise _fail(err) from None
    _echo_read(res.read, show_skipped)
    _write_skipped(res.read, skipped_rows)
    click.echo(f"trained on {res.events} events of {res.keys} keys (fit {res.fit_seconds:.1f} s, "
               f"key states {res.warm_seconds:.1f} s); model written to {res.model_dir}")


def run_score(model_dir, inputs, output, alerts_path, *, cold, chunk_rows, missing_values, show_skipped,
              skipped_rows, show_alerts, progress):
    try:
        res = model_runs.score(model_dir, inputs, cold=cold, missing_values=missing_values,
                               chunk_rows=chunk_rows, progress=progress)
    except (EventFileError, ValueError, OSError) as err:
        raise _fail(err) from None
    _echo_read(res.read, show_skipped)
    _write_skipped(res.read, skipped_rows)
    model_runs.write_scores(res, output)
    cols = res.columns
    eps = alert_episodes(res.scores.column(cols.key).to_pylist(), res.scores.column(cols.time).to_numpy(),
                         res.scores.column("score").to_numpy(),
                         res.scores.column("alert").to_numpy(zero_copy_only=False))
    keys = len(set(res.scores.column(cols.key).to_pylist()))
    rate = res.events / res.seconds if res.seconds > 0 else float("nan")
    click.echo(f"scored {res.events} events of {keys} keys in {res.seconds:.1f} s ({rate:,.0f} events/s): "
               f"{int(res.scores.column('alert').to_numpy(zero_copy_only=False).sum())} alerts "
               f"in {len(eps)} episodes")
    if eps and show_alerts:
        click.echo(episodes_table(eps, res.alerts, limit=show_alerts))
    click.echo(f"wrote scores to {output}")
    if alerts_path:
        click.echo(f"wrote {len(res.alerts)} alert records to {_write_alerts(res.alerts, alerts_path)}")
    return res, eps


@click.command()
@click.option("--model", "model_dir", required=True, type=click.Path(exists=True, file_okay=False))
@click.option("--input", "inputs", multiple=True, required=True, help="Event file (CSV, Parquet, JSONL); repeatable.")
@click.option("--output", required=True, type=click.Path(dir_okay=False),
              help="Scores file (.parquet, .csv or .jsonl): the events with score, threshold, alert.")
@click.option("--alerts", "alerts_path", type=click.Path(dir_okay=False),
              help="Also write the alert records (with their reasons) as JSON Lines.")
@click.option("--cold", is_flag=True, help="Ignore the key states stored with the model (start every key fresh).")
@click.option("--chunk-rows", default=model_runs.DEFAULT_CHUNK_ROWS, show_default=True, type=int)
@click.option("--show-alerts", default=20, show_default=True, type=int, help="Alert episodes to print.")
@_missing_option
@_show_option
@_skipped_option
@_progress_option
def score(model_dir, inputs, output, alerts_path, cold, chunk_rows, show_alerts, missing_values, show_skipped,
          skipped_rows, progress):
    """Score events with a trained model; malformed rows are listed and skipped."""
    files = _file_sources(inputs, ())
    run_score(model_dir, files, output, alerts_path, cold=cold, chunk_rows=chunk_rows,
              missing_values=missing_values, show_skipped=show_skipped, skipped_rows=skipped_rows,
              show_alerts=show_alerts, progress=progress)


def _read_windows(path):
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq
    p = Path(path)
    return pq.read_table(p) if p.suffix.lower() in (".parquet", ".pq") else pacsv.read_csv(p)


@click.command()
@click.option("--scores", "scores_path", required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--output", required=True, type=click.Path(dir_okay=False), help="PNG file to write.")
@click.option("--windows", "windows_path", type=click.Path(exists=True, dir_okay=False),
              help="Known anomaly windows to shade (CSV/Parquet: key column, start, end in epoch seconds).")
@click.option("--max-keys", default=8, show_default=True, type=int, help="Keys to draw (most alerts first).")
@click.option("--title", default=None)
def report(scores_path, output, windows_path, max_keys, title):
    """Draw values, score and alerts over time, one panel per key, to a PNG."""
    try:
        table, cols = read_scores(scores_path)
        windows = _read_windows(windows_path) if windows_path else None
        summary = write_report(table, output, cols, windows=windows, max_keys=max_keys,
                               title=title or f"ember anomaly report: {Path(scores_path).name}")
    except (OSError, ValueError) as err:
        raise _fail(err) from None
    click.echo(f"wrote {summary.path}: {len(summary.keys_shown)} of {summary.keys_total} keys, "
               f"{summary.events} events, {summary.alerts} alerts")


@click.command("run-sample")
@click.option("--output", default="out/sample", show_default=True, type=click.Path(file_okay=False),
              help="Directory for the sample data, model, scores, alerts and report.")
@click.option("--seed", default=7, show_default=True, type=int)
@click.option("--keys", "n_keys", default=8, show_default=True, type=int)
@click.option("--events-per-key", default=3000, show_default=True, type=int)
@click.option("--train-fraction", default=0.5, show_default=True, type=float,
              help="Share of the time span to train on; the rest (holding every injected anomaly) is scored.")
@_progress_option
def run_sample(output, seed, n_keys, events_per_key, train_fraction, progress):
    """Generate the sample stream, train on its first part, score the rest, show alerts and a report."""
    from ember_models.config import parse_config
    from stream_app.sample import SAMPLE_CONFIG, write_sample

    out = Path(output)
    started = time.perf_counter()
    paths = write_sample(out / "data", seed=seed, n_keys=n_keys, events_per_key=events_per_key,
                         train_fraction=train_fraction)
    config_path = out / "ember.toml"
    config_path.write_text(SAMPLE_CONFIG, encoding="utf-8")
    config = parse_config(SAMPLE_CONFIG, source=str(config_path))
    click.echo(f"sample: {paths['history']} (training part), {paths['live']} (scored part, "
               f"with the injected anomalies), ground truth in {paths['windows']}")

    res = model_runs.train(config, [paths["history"]], out / "model", progress=progress)
    click.echo(f"trained on {res.events} events of {res.keys} keys in {res.fit_seconds + res.warm_seconds:.1f} s "
               f"-> {res.model_dir}")

    scored, eps = run_score(out / "model", [paths["live"]], out / "scores.parquet", out / "alerts.jsonl",
                            cold=False, chunk_rows=model_runs.DEFAULT_CHUNK_ROWS, missing_values="keep",
                            show_skipped=20, skipped_rows=None, show_alerts=40, progress=progress)

    import pyarrow.csv as pacsv
    windows = pacsv.read_csv(paths["windows"])
    cols = scored.columns
    alert_rows = scored.scores.filter(scored.scores.column("alert"))
    alert_times: dict[str, list] = {}
    for k, t in zip(alert_rows.column(cols.key).to_pylist(), alert_rows.column(cols.time).to_pylist()):
        alert_times.setdefault(k, []).append(t)
    match = match_windows(eps, windows, cols.key, alert_times=alert_times)
    click.echo(f"against the ground truth: {match.summary()}")

    summary = write_report(scored.scores, out / "report.png", cols, windows=windows,
                           title="ember run-sample: scored part of the sample stream "
                                 "(shaded: injected anomalies)")
    click.echo(f"report: {summary.path} ({len(summary.keys_shown)} keys); "
               f"all done in {time.perf_counter() - started:.1f} s")


COMMANDS = (train, score, report, run_sample)


def register(group: click.Group) -> click.Group:
    """Add this module's commands to the ``ember`` group."""
    for command in COMMANDS:
        group.add_command(command)
    return group
