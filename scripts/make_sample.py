#!/usr/bin/env python
"""Write ember's sample data set (stream_app.sample) to files.

    python scripts/make_sample.py [--out data/sample] [--seed 7] [--train-fraction 0.5]

Writes, under --out:
  events.parquet   the whole stream (time as float epoch seconds)
  events.csv       the same rows, time as ISO 8601 UTC strings
  history.parquet  the rows before the split time (normal data, for `ember train`)
  live.csv         the rows from the split time on (holds every injected anomaly, for `ember score`)
  labels.csv       the ground truth: one row per anomalous event (service, time, kind, window_id)
  windows.csv      one row per injected anomaly (window_id, service, kind, start, end)
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import click  # noqa: E402

from stream_app.sample import write_sample  # noqa: E402


@click.command()
@click.option("--out", "out_dir", default="data/sample", show_default=True, type=click.Path(file_okay=False))
@click.option("--seed", default=7, show_default=True, type=int)
@click.option("--keys", "n_keys", default=8, show_default=True, type=int)
@click.option("--events-per-key", default=3000, show_default=True, type=int)
@click.option("--train-fraction", default=0.5, show_default=True, type=float)
def main(out_dir, seed, n_keys, events_per_key, train_fraction):
    paths = write_sample(Path(out_dir), seed=seed, n_keys=n_keys, events_per_key=events_per_key,
                         train_fraction=train_fraction)
    for name, path in paths.items():
        click.echo(f"{name:>8}: {path}")


if __name__ == "__main__":
    main()
