"""Read Parquet or CSV files for a backfill: a file, or a directory of many, in bounded memory.

The same two steps as BigQuery (see ``source.py``): ``prepare`` scans the files once with
``pyarrow.dataset`` (projected to the event columns, filtered to the time range, batch by
batch) and writes each batch's rows to the Arrow IPC file of their shard in a staging
directory; ``read_shard`` reads one shard file and sorts it by (key, time) (the files' form:
``staging.py``). Memory holds one input batch plus at most ``flush_rows`` buffered rows per
shard and the distinct keys while staging, and one shard while scoring. With one shard
there is nothing to split: the shard is read from the files.

Resuming reuses a staging directory that was completed (it holds a ``_COMPLETE`` marker
written last, after every shard file was closed).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from stream_app.backfill.estimate import DryRunReport, scoring_seconds
from stream_app.backfill.errors import SourceError
from stream_app.backfill.fields import check_arrow_schema
from stream_app.backfill.shards import sort_by_key_time
from stream_app.backfill.staging import ShardStager, read_staged_shard
from stream_app.backfill.source import ScanPlan
from stream_app.backfill.timerange import TimeRange
from stream_app.event_fields import EventFields

_FORMATS = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv"}
COMPLETE = "_COMPLETE"
# bumped when the staging files change form: a staging directory of another form is redone
STAGING_FORMAT = 2


def _detect_format(path: Path) -> str:
    if path.is_file():
        fmt = _FORMATS.get(path.suffix.lower())
        if fmt is None:
            raise SourceError(f"{path}: unknown file type {path.suffix!r} (use .parquet or .csv)")
        return fmt
    found = {_FORMATS[p.suffix.lower()] for p in path.rglob("*") if p.is_file() and p.suffix.lower() in _FORMATS}
    if not found:
        raise SourceError(f"{path}: no .parquet or .csv files in this directory")
    if len(found) > 1:
        raise SourceError(f"{path}: holds both Parquet and CSV files; pass format= to choose one")
    return found.pop()


class FileSource:
    def __init__(
        self,
        path: str | os.PathLike,
        fields: EventFields,
        format: str | None = None,
        staging_dir: str | os.PathLike | None = None,
        batch_rows: int = 131_072,
        flush_rows: int = 65_536,
    ) -> None:
        self.path = Path(path)
        self.fields = fields
        if not self.path.exists():
            raise SourceError(f"event files {self.path} do not exist")
        self.format = format or _detect_format(self.path)
        if self.format not in ("parquet", "csv"):
            raise SourceError(f"format {self.format!r}: use 'parquet' or 'csv'")
        self.staging_dir = Path(staging_dir) if staging_dir else Path(tempfile.gettempdir()) / "ember-backfill"
        self.batch_rows = int(batch_rows)
        self.flush_rows = int(flush_rows)
        self._dataset: ds.Dataset | None = None

    def describe(self) -> str:
        return f"{self.format}:{self.path}"

    def spec(self) -> dict[str, Any]:
        return {"kind": "files", "path": str(self.path.resolve()), "format": self.format,
                "fields": self.fields.to_dict(), "staging_dir": str(self.staging_dir.resolve()),
                "batch_rows": self.batch_rows, "flush_rows": self.flush_rows}

    # -- dataset ---------------------------------------------------------------------------

    def dataset(self) -> ds.Dataset:
        if self._dataset is None:
            fmt: Any = self.format
            if self.format == "parquet":
                # Keys as dictionaries: sharding, staging and sorting then move small integers,
                # not strings (the pipeline decodes them once).
                fmt = ds.ParquetFileFormat(read_options=ds.ParquetReadOptions(dictionary_columns=[self.fields.key_field]))
            if self.format == "csv":
                import pyarrow.csv as pacsv

                # Event keys are names, never numbers to be parsed: read the key as a string.
                convert = pacsv.ConvertOptions(column_types={self.fields.key_field: pa.string()})
                fmt = ds.CsvFileFormat(convert_options=convert)
            try:
                self._dataset = ds.dataset(str(self.path), format=fmt)
            except (pa.ArrowInvalid, OSError) as exc:
                raise SourceError(f"cannot read {self.format} files at {self.path}: {exc}") from exc
        return self._dataset

    def check(self) -> None:
        check_arrow_schema(self.fields, self.dataset().schema, f"{self.format} files at {self.path}")

    def _filter(self, time_range: TimeRange) -> ds.Expression | None:
        t = self.dataset().schema.field(self.fields.time_field).type
        expr = None
        for value, op in ((time_range.since, "ge"), (time_range.until, "lt")):
            if value is None:
                continue
            if pa.types.is_timestamp(t):
                bound = pa.scalar(value, type=pa.timestamp("us", tz="UTC")).cast(t)
            else:
                bound = pa.scalar(self.fields.numeric_time(value), type=pa.float64())
            field = ds.field(self.fields.time_field)
            cond = field >= bound if op == "ge" else field < bound
            expr = cond if expr is None else expr & cond
        return expr

    def _batches(self, time_range: TimeRange):
        self.check()
        scanner = self.dataset().scanner(
            columns=list(self.fields.columns), filter=self._filter(time_range),
            batch_size=self.batch_rows, batch_readahead=2, fragment_readahead=1,
        )  # fmt: skip
        try:
            for batch in scanner.to_batches():
                yield self._normalise(batch)
        except pa.ArrowInvalid as exc:
            raise SourceError(f"reading {self.format} files at {self.path}: {exc}") from exc

    def _normalise(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        """Decimal values as float64, other dictionary columns decoded, and the key column
        dictionary-encoded: what the pipeline reads, in the form that is cheap to move."""
        columns, changed = [], False
        for name, col in zip(batch.schema.names, batch.columns):
            if name == self.fields.key_field:
                if not pa.types.is_dictionary(col.type):
                    col, changed = pc.dictionary_encode(col), True
            elif pa.types.is_decimal(col.type):
                col, changed = pc.cast(col, pa.float64()), True
            elif pa.types.is_dictionary(col.type):
                col, changed = col.dictionary_decode(), True
            columns.append(col)
        return pa.RecordBatch.from_arrays(columns, names=batch.schema.names) if changed else batch

    # -- dry run ---------------------------------------------------------------------------

    def dry_run(self, shards: int, time_range: TimeRange, workers: int = 1, run_id: str = "RUN") -> DryRunReport:
        self.check()
        dataset = self.dataset()
        size = sum(os.path.getsize(f) for f in dataset.files)
        rows = None
        if self.format == "parquet":
            rows = sum(frag.metadata.num_rows for frag in dataset.get_fragments())
        return DryRunReport(
            source=self.describe(), shards=shards, time_range=time_range.describe(),
            bytes_scanned=size, bytes_basis=f"size of {len(dataset.files)} file(s)", rows=rows,
            query_cost_usd=None, read_cost_usd=None, est_seconds=scoring_seconds(rows, workers),
            workers=workers, staging=str(self._staging_path(run_id)) if shards > 1 else None,
        )

    # -- scan once, read per shard ---------------------------------------------------------

    def _staging_path(self, run_id: str) -> Path:
        return self.staging_dir / run_id

    def prepare(self, run_id: str, shards: int, time_range: TimeRange) -> ScanPlan:
        if shards < 1:
            raise ValueError(f"shards must be >= 1, got {shards}")
        self.check()
        if shards == 1:
            return ScanPlan(run_id, 1, time_range, None, {"rows": None})
        staging = self._staging_path(run_id)
        marker = staging / COMPLETE
        expected = {"format": STAGING_FORMAT, "shards": shards, "time_range": time_range.to_dict(), "source": self.spec()["path"]}
        if marker.exists():
            done = json.loads(marker.read_text())
            if {k: done.get(k) for k in expected} == expected:
                return ScanPlan(run_id, shards, time_range, str(staging), {"rows": done["rows"], "reused": True})
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        rows = self._stage(staging, shards, time_range)
        marker.write_text(json.dumps({**expected, "rows": rows}))
        return ScanPlan(run_id, shards, time_range, str(staging), {"rows": rows, "reused": False})

    def _stage(self, staging: Path, shards: int, time_range: TimeRange) -> list[int]:
        stager = ShardStager(staging, shards, self.fields.key_field, self.flush_rows)
        try:
            for batch in self._batches(time_range):
                stager.write(batch)
        except BaseException:
            stager.close()
            raise
        rows = stager.finish()
        schema = stager.schema or self._projected_schema()
        self._schema_file(staging).write_bytes(schema.serialize().to_pybytes())
        return rows

    @staticmethod
    def _schema_file(staging: Path) -> Path:
        return staging / "_schema.arrow"

    def read_shard(self, plan: ScanPlan, shard: int) -> pa.Table:
        if not 0 <= shard < plan.shards:
            raise ValueError(f"shard {shard} is outside 0..{plan.shards - 1}")
        key, time = self.fields.key_field, self.fields.time_field
        if plan.staging is None:
            table = pa.Table.from_batches(list(self._batches(plan.time_range)),
                                          schema=self._projected_schema())
            return self.fields.time_in_seconds(sort_by_key_time(table, key, time))
        staging = Path(plan.staging)
        if not (staging / COMPLETE).exists():
            raise SourceError(f"staging directory {staging} of run {plan.run_id} is missing or incomplete; "
                              "run the backfill again to restage it")
        schema = pa.ipc.read_schema(pa.py_buffer(self._schema_file(staging).read_bytes()))
        return self.fields.time_in_seconds(read_staged_shard(staging, shard, schema, key, time))

    def _projected_schema(self) -> pa.Schema:
        schema = self.dataset().schema
        fields = []
        for name in self.fields.columns:
            f = schema.field(name)
            if name == self.fields.key_field:
                if not pa.types.is_dictionary(f.type):
                    f = f.with_type(pa.dictionary(pa.int32(), f.type))
            elif pa.types.is_decimal(f.type):
                f = f.with_type(pa.float64())
            elif pa.types.is_dictionary(f.type):
                f = f.with_type(f.type.value_type)
            fields.append(f)
        return pa.schema(fields)

    def cleanup(self, plan: ScanPlan) -> None:
        if plan.staging:
            shutil.rmtree(plan.staging, ignore_errors=True)
