"""Per-shard staging files of a file backfill: written in one pass over the input, read per shard.

Layout of a staging directory (one per run):

- ``shard-<i>.arrow``: an uncompressed Arrow IPC stream of the shard's events, in input order,
  with the key column as **int32 codes** local to the shard (0, 1, 2, … in the order the
  shard's keys first appear);
- ``shard-<i>.keys.arrow``: the shard's keys, code ``c`` at row ``c`` (written when staging ends);
- ``_schema.arrow``: the schema read back (key as a dictionary), for shards no event fell into.

Why codes and not the input's dictionary column: an input batch's key dictionary holds every key
of its Parquet row group (all shards' keys), and an IPC stream writes a dictionary again each
time it changes, so each shard file carried every batch's whole dictionary and reading a shard
meant unifying ~80 dictionaries of 10,000 strings. Codes make staging and reading a shard move
only numbers, and the codes are already the small integers the (key, time) sort wants.

Staging is uncompressed: the files live for one run, on the local disk, and are read once; a
codec would cost CPU on both sides to save page-cache bytes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa

from stream_app.backfill.shards import ShardKeys, grouped_order

CODE_TYPE = pa.int32()


def shard_path(staging: Path, shard: int) -> Path:
    return staging / f"shard-{shard:05d}.arrow"


def keys_path(staging: Path, shard: int) -> Path:
    return staging / f"shard-{shard:05d}.keys.arrow"


class ShardStager:
    """Writes input batches into per-shard staging files.

    Memory: the key directory, and buffered rows: at most ``flush_rows`` per shard, and at most
    ``max_held_batches`` input batches held (a buffered slice keeps its whole batch alive, so
    with many shards, each getting a few rows of every batch, everything is flushed every
    ``max_held_batches`` batches).
    """

    def __init__(self, staging: Path, shards: int, key_field: str, flush_rows: int = 65_536,
                 max_held_batches: int = 16) -> None:
        self.staging = staging
        self.shards = shards
        self.key_field = key_field
        self.flush_rows = flush_rows
        self.max_held_batches = max_held_batches
        self._held_batches = 0
        self.keys = ShardKeys(shards)
        self.rows = np.zeros(shards, np.int64)
        self.schema: pa.Schema | None = None       # as read back: key as a dictionary
        self._staged: pa.Schema | None = None      # as written: key as codes
        self._writers: dict[int, pa.ipc.RecordBatchStreamWriter] = {}
        self._pending: list[list[pa.RecordBatch]] = [[] for _ in range(shards)]
        self._pending_rows = np.zeros(shards, np.int64)

    def write(self, batch: pa.RecordBatch) -> None:
        if batch.num_rows == 0:
            return
        k = batch.schema.get_field_index(self.key_field)
        if self.schema is None:
            value_type = batch.schema.field(k).type.value_type
            self.schema = batch.schema.set(k, pa.field(self.key_field, pa.dictionary(CODE_TYPE, value_type)))
            self._staged = batch.schema.set(k, pa.field(self.key_field, CODE_TYPE, nullable=False))
        shard, code = self.keys.rows(batch.column(k))
        # rows grouped by shard, input order kept within a shard (shard ids are 8/16-bit:
        # numpy radix-sorts them)
        order = np.argsort(shard, kind="stable")
        bounds = np.zeros(self.shards + 1, np.int64)
        np.cumsum(np.bincount(shard, minlength=self.shards), out=bounds[1:])
        columns = [pa.array(np.take(code, order), CODE_TYPE) if i == k else col.take(order)
                   for i, col in enumerate(batch.columns)]
        grouped = pa.RecordBatch.from_arrays(columns, schema=self._staged)
        for i in np.flatnonzero(bounds[1:] > bounds[:-1]).tolist():
            lo, hi = int(bounds[i]), int(bounds[i + 1])
            self._pending[i].append(grouped.slice(lo, hi - lo))
            self._pending_rows[i] += hi - lo
            self.rows[i] += hi - lo
            if self._pending_rows[i] >= self.flush_rows:
                self._flush(i)
        self._held_batches += 1
        if self._held_batches >= self.max_held_batches:
            for i in range(self.shards):
                self._flush(i)
            self._held_batches = 0

    def _flush(self, i: int) -> None:
        if not self._pending[i]:
            return
        writer = self._writers.get(i)
        if writer is None:
            writer = self._writers[i] = pa.ipc.new_stream(str(shard_path(self.staging, i)), self._staged)
        # one record batch per flush: a shard reads back as few large chunks
        writer.write_batch(pa.concat_batches(self._pending[i]) if len(self._pending[i]) > 1 else self._pending[i][0])
        self._pending[i].clear()
        self._pending_rows[i] = 0

    def finish(self) -> list[int]:
        """Flush and close every shard file and write each shard's keys; returns rows per shard."""
        try:
            for i in range(self.shards):
                self._flush(i)
        finally:
            self.close()
        if self.schema is not None:
            value_type = self.schema.field(self.key_field).type.value_type
            for i, keys in enumerate(self.keys.keys):
                if keys:
                    with pa.ipc.new_stream(str(keys_path(self.staging, i)), pa.schema([("key", value_type)])) as w:
                        w.write_table(pa.table({"key": pa.array(keys, value_type)}))
        return self.rows.tolist()

    def close(self) -> None:
        writers, self._writers = self._writers, {}
        for writer in writers.values():
            writer.close()


def read_staged_shard(staging: Path, shard: int, schema: pa.Schema, key_field: str, time_field: str) -> pa.Table:
    """One shard's events grouped by key, each key's in time order; the key as a dictionary.

    ``schema``: the events' schema with the key as a dictionary (what the file source yields).
    """
    path = shard_path(staging, shard)
    if not path.exists():  # no event fell into this shard
        return schema.empty_table()
    with pa.memory_map(str(path)) as source:
        table = pa.ipc.open_stream(source).read_all()
    with pa.memory_map(str(keys_path(staging, shard))) as source:
        keys = pa.ipc.open_stream(source).read_all().column(0).combine_chunks()
    k = table.schema.get_field_index(key_field)
    codes = table.column(k).to_numpy()
    times = table.column(time_field)
    order = grouped_order(codes, len(keys), times.cast(pa.int64()).to_numpy() if pa.types.is_timestamp(times.type)
                          else times.to_numpy())
    rest = table.drop_columns([key_field])
    if order is not None:
        codes = np.take(codes, order)
        rest = rest.take(order)
    key = pa.DictionaryArray.from_arrays(pa.array(codes, CODE_TYPE), keys)
    columns = {name: (key if name == key_field else rest.column(name)) for name in table.column_names}
    return pa.table(columns, schema=schema)
