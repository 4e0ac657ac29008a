"""A picture of a scored event file: values, anomaly score and alerts over time, one panel per key.

``ember score`` writes a scores file with the event values beside each score (and records which
columns are the key, the time and the values in the Parquet metadata); ``write_report`` turns it
into a PNG. Per key there are two stacked axes sharing the time axis:

- values: the first value field on the left axis, the second (if any) on a right twin axis,
  alerts as red dots on the first value, known anomaly windows (optional) shaded;
- score: the calibrated score in [0, 1], the alert threshold dashed, alerts as red ticks.

Keys with the most alerts come first; beyond ``max_keys`` the figure says how many were left out.
Long series are thinned for drawing by keeping each bucket's lowest and highest point, so a
one-event spike still shows. Matplotlib runs headless (Agg).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

# Metadata keys in a scores file's Parquet schema, written by ``ember score``.
META_KEY = b"ember.scores"
SCORE_COLUMNS = ("score", "threshold", "alert")

_VALUE_COLORS = ("#1f6fb4", "#8c8c8c")
_SCORE_COLOR = "#5b3a94"
_ALERT_COLOR = "#d62728"
_THRESHOLD_COLOR = "#ff7f0e"
_TRUTH_COLOR = "#f6c85f"


@dataclass(frozen=True)
class ScoreColumns:
    """Which columns of a scores table are the key, the time and the event values."""

    key: str = "key"
    time: str = "time"
    values: tuple[str, ...] = ()

    def to_metadata(self) -> dict[bytes, bytes]:
        return {META_KEY: json.dumps({"key": self.key, "time": self.time, "values": list(self.values)}).encode()}

    @classmethod
    def from_schema(cls, schema: pa.Schema) -> "ScoreColumns":
        """From the metadata ``ember score`` writes, or guessed: key/time by name, values = the
        numeric columns that are not scores."""
        meta = (schema.metadata or {}).get(META_KEY)
        if meta:
            d = json.loads(meta)
            return cls(d["key"], d["time"], tuple(d["values"]))
        values = tuple(f.name for f in schema if f.name not in ("key", "time", *SCORE_COLUMNS)
                       and (pa.types.is_integer(f.type) or pa.types.is_floating(f.type)))
        return cls("key", "time", values)


@dataclass(frozen=True)
class ReportSummary:
    path: Path
    keys_total: int
    keys_shown: list[str]
    events: int
    alerts: int


def read_scores(path) -> tuple[pa.Table, ScoreColumns]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such scores file")
    if path.suffix.lower() not in (".parquet", ".pq"):
        raise ValueError(f"{path}: ember report reads a Parquet scores file "
                         "(ember score --output scores.parquet)")
    table = pq.read_table(path)
    cols = ScoreColumns.from_schema(table.schema)
    missing = [c for c in (cols.key, cols.time, *SCORE_COLUMNS) if c not in table.column_names]
    if missing:
        raise ValueError(f"{path}: not an ember scores file: no column(s) {', '.join(missing)} "
                         f"(columns: {', '.join(table.column_names)})")
    return table, cols


def write_report(scores: pa.Table, output, columns: ScoreColumns, *, windows: pa.Table | None = None,
                 max_keys: int = 8, title: str | None = None, max_points: int = 4000) -> ReportSummary:
    """Draw ``scores`` (see module docstring) to ``output`` (PNG). ``windows``: known anomaly
    spans to shade (columns: the key column or ``key``, ``start``, ``end`` in epoch seconds)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    if max_keys < 1:
        raise ValueError(f"max_keys must be at least 1, got {max_keys}")
    keys = np.asarray(scores.column(columns.key).to_pylist(), dtype=object)
    times = _epoch(scores.column(columns.time))
    score = scores.column("score").to_numpy(zero_copy_only=False).astype(np.float64)
    threshold = scores.column("threshold").to_numpy(zero_copy_only=False).astype(np.float64)
    alert = scores.column("alert").to_numpy(zero_copy_only=False).astype(bool)
    values = {v: scores.column(v).to_numpy(zero_copy_only=False).astype(np.float64)
              for v in columns.values[:2] if v in scores.column_names}

    uniq, inverse = np.unique(keys, return_inverse=True) if len(keys) else (np.array([]), np.array([], int))
    alerts_per_key = np.bincount(inverse, weights=alert, minlength=len(uniq)) if len(keys) else np.array([])
    ranked = sorted(range(len(uniq)), key=lambda k: (-alerts_per_key[k], str(uniq[k])))
    shown = ranked[:max_keys]
    truth = _windows_by_key(windows, columns.key)

    rows = max(len(shown), 1)
    fig = plt.figure(figsize=(14, 1.2 + 2.7 * rows), dpi=100)
    outer = fig.add_gridspec(rows, 1, hspace=0.32, top=1 - 1.0 / fig.get_figheight(),
                             bottom=0.45 / fig.get_figheight(), left=0.07, right=0.93)
    # A known anomaly shorter than this (a one-event spike) is widened so it can be seen.
    span = float(np.ptp(times)) if len(times) else 0.0
    min_shade = span / 300.0
    first_ax = None
    for r, k in enumerate(shown):
        sel = np.flatnonzero(inverse == k)
        sel = sel[np.argsort(times[sel], kind="stable")]
        t = _dates(times[sel])
        breaks = _gap_breaks(times[sel])
        inner = outer[r].subgridspec(2, 1, height_ratios=[2.2, 1.0], hspace=0.0)
        ax_v = fig.add_subplot(inner[0], sharex=first_ax)
        first_ax = first_ax or ax_v
        ax_s = fig.add_subplot(inner[1], sharex=first_ax)
        for start, end in truth.get(str(uniq[k]), []):
            pad = max(0.0, min_shade - (end - start)) / 2
            for ax in (ax_v, ax_s):
                ax.axvspan(_dates(np.array([start - pad]))[0], _dates(np.array([end + pad]))[0],
                           color=_TRUTH_COLOR, alpha=0.35, lw=0, zorder=0)
        axes_for_values = [ax_v, ax_v.twinx()] if len(values) > 1 else [ax_v]
        for ax in axes_for_values:   # the lowest value tick would sit on the score axis' 1.0
            ax.yaxis.get_major_locator().set_params(prune="lower", nbins=5)
        for (name, vals), ax, color in zip(values.items(), axes_for_values, _VALUE_COLORS):
            keep = _thin(vals[sel], max_points)
            ax.plot(*_with_breaks(t, vals[sel], keep, breaks), color=color, lw=0.8,
                    alpha=0.95 if ax is ax_v else 0.7)
            ax.set_ylabel(name, color=color, fontsize=8)
            ax.tick_params(axis="y", labelsize=7, colors=color)
        if len(axes_for_values) > 1:   # the first value field (and its alert dots) drawn on top
            ax_v.set_zorder(axes_for_values[1].get_zorder() + 1)
            ax_v.patch.set_visible(False)
        a = sel[alert[sel]]
        if values:
            first_vals = next(iter(values.values()))
            ax_v.scatter(_dates(times[a]), first_vals[a], s=14, color=_ALERT_COLOR, zorder=5, lw=0)
        n_alerts = int(alert[sel].sum())
        ax_v.set_title(f"{uniq[k]}  —  {len(sel)} events, {n_alerts} alert{'s' if n_alerts != 1 else ''}",
                       loc="left", fontsize=9, fontweight="bold", pad=3)
        keep = _thin(score[sel], max_points)
        ax_s.plot(*_with_breaks(t, score[sel], keep, breaks), color=_SCORE_COLOR, lw=0.8)
        ax_s.step(t, threshold[sel], where="post", color=_THRESHOLD_COLOR, lw=0.9, ls="--")
        ax_s.vlines(_dates(times[a]), 0, 1, color=_ALERT_COLOR, lw=0.8, alpha=0.8)
        ax_s.set_ylim(-0.02, 1.05)
        ax_s.set_yticks([0, 0.5, 1])
        ax_s.set_ylabel("score", color=_SCORE_COLOR, fontsize=8)
        ax_s.tick_params(axis="y", labelsize=7)
        ax_v.tick_params(axis="x", labelbottom=False)
        last = r == len(shown) - 1
        ax_s.tick_params(axis="x", labelbottom=last, labelsize=8)
        for ax in (ax_v, ax_s):
            ax.grid(True, axis="x", color="#e6e6e6", lw=0.6)
    if first_ax is not None:
        locator = mdates.AutoDateLocator()
        first_ax.xaxis.set_major_locator(locator)
        first_ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    else:
        fig.text(0.5, 0.5, "no events to show", ha="center", va="center", fontsize=14)

    n_alerts = int(alert.sum())
    head = title or "ember anomaly report"
    note = f"{scores.num_rows} events, {len(uniq)} keys, {n_alerts} alerts (times in UTC)"
    if len(uniq) > len(shown):
        note += f"; showing the {len(shown)} keys with the most alerts, {len(uniq) - len(shown)} more not shown"
    fig.suptitle(head, x=0.07, y=1 - 0.12 / fig.get_figheight(), ha="left", fontsize=13, fontweight="bold")
    fig.text(0.07, 1 - 0.42 / fig.get_figheight(), note, ha="left", fontsize=9, color="#444444")
    handles = [Line2D([], [], color=c, lw=1.2, label=n) for n, c in zip(values, _VALUE_COLORS)]
    handles += [Line2D([], [], color=_SCORE_COLOR, lw=1.2, label="score"),
                Line2D([], [], color=_THRESHOLD_COLOR, lw=1.2, ls="--", label="threshold"),
                Line2D([], [], color=_ALERT_COLOR, marker="o", lw=0, ms=5, label="alert")]
    if truth:
        handles.append(Patch(color=_TRUTH_COLOR, alpha=0.5, label="known anomaly"))
    fig.legend(handles=handles, loc="upper left", ncol=len(handles), fontsize=8, frameon=False,
               bbox_to_anchor=(0.065, 1 - 0.52 / fig.get_figheight()), borderaxespad=0.0)
    out = Path(output)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, format="png")
    plt.close(fig)
    return ReportSummary(out, len(uniq), [str(uniq[k]) for k in shown], scores.num_rows, n_alerts)


def _epoch(col) -> np.ndarray:
    if pa.types.is_timestamp(col.type):
        import pyarrow.compute as pc
        per_second = {"s": 1.0, "ms": 1e3, "us": 1e6, "ns": 1e9}[col.type.unit]
        return pc.cast(col, pa.int64()).to_numpy(zero_copy_only=False).astype(np.float64) / per_second
    return col.to_numpy(zero_copy_only=False).astype(np.float64)


def _dates(epoch_seconds: np.ndarray) -> np.ndarray:
    return (np.asarray(epoch_seconds) * 1e3).astype("datetime64[ms]")


def _gap_breaks(times: np.ndarray) -> np.ndarray:
    """Positions i where the gap times[i] - times[i-1] is a silence (over 20 typical gaps and
    over an hour): lines are broken there rather than drawn across the silence."""
    if len(times) < 3:
        return np.zeros(0, int)
    gaps = np.diff(times)
    typical = float(np.median(gaps))
    return np.flatnonzero(gaps > max(20 * typical, 3600.0)) + 1


def _with_breaks(t: np.ndarray, y: np.ndarray, keep: np.ndarray, breaks: np.ndarray):
    """(x, y) of the kept points with a NaN point inserted at each silence, so the line breaks."""
    tk, yk = t[keep], y[keep].astype(np.float64)
    if not len(breaks):
        return tk, yk
    at = np.searchsorted(keep, breaks)
    return np.insert(tk, at, t[breaks] - np.timedelta64(1, "ms")), np.insert(yk, at, np.nan)


def _thin(values: np.ndarray, max_points: int) -> np.ndarray:
    """Indices to draw: all of them when few, else each bucket's lowest and highest point."""
    n = len(values)
    if n <= max_points:
        return np.arange(n)
    buckets = max_points // 2
    edges = np.linspace(0, n, buckets + 1).astype(int)
    filled = np.where(np.isnan(values), np.nanmean(values) if np.isfinite(values).any() else 0.0, values)
    keep = set()
    for lo, hi in zip(edges[:-1], edges[1:]):
        if hi > lo:
            seg = filled[lo:hi]
            keep.add(lo + int(np.argmin(seg)))
            keep.add(lo + int(np.argmax(seg)))
    return np.array(sorted(keep))


def _windows_by_key(windows: pa.Table | None, key_column: str) -> dict[str, list[tuple[float, float]]]:
    if windows is None or windows.num_rows == 0:
        return {}
    name = key_column if key_column in windows.column_names else "key"
    missing = [c for c in (name, "start", "end") if c not in windows.column_names]
    if missing:
        raise ValueError(f"anomaly windows need columns {key_column!r} (or 'key'), 'start' and 'end'; "
                         f"missing {', '.join(missing)} (columns: {', '.join(windows.column_names)})")
    out: dict[str, list[tuple[float, float]]] = {}
    for key, start, end in zip(windows.column(name).to_pylist(), _epoch(windows.column("start")),
                               _epoch(windows.column("end"))):
        out.setdefault(str(key), []).append((float(start), float(end)))
    return out
