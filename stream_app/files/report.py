"""What reading event files found: the rows kept, and each skipped row with where it is and why."""

from __future__ import annotations

from dataclasses import dataclass, field

import pyarrow as pa


@dataclass(frozen=True)
class BadRow:
    """One skipped row: where it is and why."""

    file: str
    line: int            # 1-based line number (CSV, JSONL; the CSV header is line 1) or row number (Parquet)
    reason: str
    unit: str = "line"   # "line" or "row"

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.reason}" if self.unit == "line" else \
            f"{self.file} row {self.line}: {self.reason}"


@dataclass
class ReadReport:
    """What reading one or more event files found."""

    files: list[str] = field(default_factory=list)
    rows_read: int = 0                                   # data rows seen (malformed ones included)
    rows_kept: int = 0
    bad_rows: list[BadRow] = field(default_factory=list)
    missing_values: dict[str, int] = field(default_factory=dict)   # kept rows with a missing value, per field

    @property
    def rows_skipped(self) -> int:
        return len(self.bad_rows)

    def merge(self, other: "ReadReport") -> "ReadReport":
        self.files += other.files
        self.rows_read += other.rows_read
        self.rows_kept += other.rows_kept
        self.bad_rows += other.bad_rows
        for name, n in other.missing_values.items():
            self.missing_values[name] = self.missing_values.get(name, 0) + n
        return self

    def summary(self, max_rows: int = 20) -> str:
        """A few lines for a person: counts, then the skipped rows (the first ``max_rows``)."""
        lines = [f"read {self.rows_read} rows from {len(self.files)} file(s): {self.rows_kept} kept, "
                 f"{self.rows_skipped} skipped"]
        missing = {k: v for k, v in self.missing_values.items() if v}
        if missing:
            lines.append("missing values kept (imputed by the model): "
                         + ", ".join(f"{k}: {v}" for k, v in missing.items()))
        for bad in self.bad_rows[:max_rows]:
            lines.append(f"  skipped {bad}")
        if self.rows_skipped > max_rows:
            lines.append(f"  ... and {self.rows_skipped - max_rows} more skipped rows")
        return "\n".join(lines)

    def bad_rows_table(self) -> pa.Table:
        return pa.table({"file": [b.file for b in self.bad_rows], "line": [b.line for b in self.bad_rows],
                         "unit": [b.unit for b in self.bad_rows], "reason": [b.reason for b in self.bad_rows]})
