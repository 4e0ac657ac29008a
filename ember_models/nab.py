"""The NAB detector contract (../shared/eval/nab/README.md): one NAB CSV (timestamp,value) on
stdin, one anomaly score in [0, 1] per data row on stdout, in order.

    python -m ember_models.nab < data.csv        (the ``ember nab DATA_FILE`` command reads a file)

The series is one key of an unfitted ``Pipeline`` with the default settings: everything it
knows it learns online from the rows before the one being scored (the probationary rows are its
warm-up; the global models learn every LEARN_EVERY rows), so the score of row i depends on
rows <= i only. It never reads NAB_ROWS,
NAB_DATA_FILE or NAB_PROBATIONARY_ROWS: no per-file tuning.
"""
from __future__ import annotations

import datetime as dt
import io
import sys

import numpy as np
import pyarrow as pa


class NabInputError(ValueError):
    """A NAB CSV that cannot be read: names the line and the problem."""


def read_nab_csv(text: str) -> tuple[np.ndarray, np.ndarray]:
    """(epoch seconds, values) of a NAB data CSV with header ``timestamp,value``."""
    lines = text.splitlines()
    if not lines or "timestamp" not in lines[0].lower():
        raise NabInputError("line 1: expected the header 'timestamp,value'")
    times, values = [], []
    for lineno, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        try:
            stamp, value = line.rsplit(",", 1)
            t = dt.datetime.fromisoformat(stamp.strip())
        except ValueError:
            raise NabInputError(f"line {lineno}: expected 'timestamp,value', got {line!r}") \
                from None
        if t.tzinfo is None:
            t = t.replace(tzinfo=dt.timezone.utc)
        times.append(t.timestamp())
        try:
            values.append(float(value))
        except ValueError:
            raise NabInputError(f"line {lineno}: value {value.strip()!r} is not a number") \
                from None
    return np.asarray(times, np.float64), np.asarray(values, np.float64)


# The feature set the NAB scores in docs/detection.md were measured with (the default set of
# ember_models.config at the time), pinned so that a change of the defaults does not silently
# change the benchmark.
NAB_FEATURES = [
    {"kind": "count"}, {"kind": "time_since_last"},
    {"kind": "event_rate", "half_lives_s": [600.0, 3600.0]},
    {"kind": "cyclical_time", "periods": ["day", "week"]},
    {"kind": "impute", "strategy": "last"}, {"kind": "delta"}, {"kind": "rate"},
    {"kind": "welford"}, {"kind": "zscore", "clip": 5.0},
    {"kind": "ewma", "half_lives_s": [600.0, 3600.0, 21600.0], "std": True},
    {"kind": "rolling_count", "sizes": [8, 64]},
    {"kind": "rolling_time", "windows_s": [3600.0], "buckets": 6},
]


def nab_pipeline():
    """An unfitted pipeline for one NAB series, default settings (no per-file anything)."""
    from .config import parse_config
    from .pipeline import Pipeline
    cfg = parse_config({"data": {"key_field": "series", "time_field": "timestamp",
                                 "value_fields": ["value"]}, "features": NAB_FEATURES},
                       source="<nab>")
    return Pipeline(cfg)


LEARN_EVERY = 64    # rows between online updates of the global models (a fixed schedule)


def nab_scores(times: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Scores of one series, computed online: the rows are stepped through the pipeline in
    chunks of LEARN_EVERY, and after each chunk is scored the global models (motor readout,
    RBM) learn from it, so row i is scored by what rows < i taught (no look-ahead)."""
    pipe = nab_pipeline()
    table = pa.table({"series": pa.array(["nab"] * len(times), pa.string()),
                      "timestamp": times, "value": values})
    out, states = [], {}
    for start in range(0, len(times), LEARN_EVERY):
        res = pipe.step(table.slice(start, LEARN_EVERY), states, learn=True)
        states = res.states
        out.append(res.scores["score"].to_numpy())
    return np.concatenate(out) if out else np.zeros(0)


def run(stdin=None, stdout=None) -> int:
    stdin = stdin or sys.stdin
    stdout = stdout or sys.stdout
    try:
        times, values = read_nab_csv(stdin.read())
    except NabInputError as exc:
        print(f"ember nab: {exc}", file=sys.stderr)
        return 2
    scores = nab_scores(times, values)
    buf = io.StringIO()
    for s in scores:
        buf.write(repr(float(s)))
        buf.write("\n")
    stdout.write(buf.getvalue())
    stdout.flush()
    return 0


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] not in ("-",):
        with open(argv[0], encoding="utf-8") as f:
            return run(f)
    return run()


if __name__ == "__main__":
    sys.exit(main())
