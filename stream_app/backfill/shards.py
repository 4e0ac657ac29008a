"""How a backfill splits events into key-hash shards, and orders the events of one shard.

A stateful model needs every event of a key, in time order, in one place: so shards are sets
of keys, never time slices. Two shard functions, one per kind of source:

- BigQuery: ``ABS(MOD(FARM_FINGERPRINT(key), N))`` computed by BigQuery in the one staging
  query. It equals ``MOD(ABS(FARM_FINGERPRINT(key)), N)`` for every value (MOD truncates
  toward zero, so |x mod N| = |x| mod N) and cannot overflow: ``ABS`` of the INT64 minimum
  is an error in BigQuery, ``ABS`` of a remainder never is. Integer keys are hashed as their
  decimal string (``CAST(key AS STRING)``), byte keys as their bytes.
- Files: FarmHash is not in pyarrow, so files use the first 8 bytes of BLAKE2b of the same
  key bytes (UTF-8 string, decimal string for integers, raw bytes), little-endian, mod N.
  Stable across processes, machines and Python versions (unlike ``hash()``), computed once
  per distinct key (``ShardKeys``). A key lands in the same shard on every run with the same N;
  file shards and BigQuery shards of the same key differ, which nothing relies on.
"""

from __future__ import annotations

import hashlib
import operator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

SHARD_COLUMN = "_ember_shard"


def bigquery_shard_expression(key_sql: str, key_type: str, shards: int) -> str:
    """SQL for the shard of ``key_sql`` (a quoted column) of BigQuery type ``key_type``."""
    if shards < 1:
        raise ValueError(f"shards must be >= 1, got {shards}")
    hashed = key_sql if key_type in ("STRING", "BYTES") else f"CAST({key_sql} AS STRING)"
    return f"ABS(MOD(FARM_FINGERPRINT({hashed}), {int(shards)}))"


def _key_bytes(value: object) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8")
    return str(value).encode("utf-8")  # integers: decimal string, as CAST(key AS STRING)


def key_shard(value: object, shards: int) -> int:
    digest = hashlib.blake2b(_key_bytes(value), digest_size=8).digest()
    return int.from_bytes(digest, "little") % shards


class ShardKeys:
    """Every key seen so far: its shard and its code within the shard.

    Lookups go through a batch's key dictionary (one Python dict lookup per dictionary entry,
    not per row), and a dictionary equal to the previous batch's reuses the previous answer:
    the batches of one Parquet row group share their dictionary.
    """

    def __init__(self, shards: int) -> None:
        if shards < 1:
            raise ValueError(f"shards must be >= 1, got {shards}")
        self.shards = shards
        self._index: dict[object, int] = {}      # key -> key id (first-appearance order)
        # key id -> shard, in the narrowest type (numpy radix-sorts 8- and 16-bit integers)
        self._shard = np.empty(1024, np.uint8 if shards <= 256 else np.uint16 if shards <= 65_536 else np.int64)
        self._code = np.empty(1024, np.int32)    # key id -> code within its shard
        self.keys: list[list[object]] = [[] for _ in range(shards)]   # shard -> keys by code
        self._last: tuple[pa.Array, np.ndarray, np.ndarray] | None = None

    def _add(self, key: object) -> int:
        kid = len(self._index)
        if kid == self._shard.shape[0]:
            self._shard = np.concatenate([self._shard, np.empty_like(self._shard)])
            self._code = np.concatenate([self._code, np.empty_like(self._code)])
        shard = key_shard(key, self.shards)
        self._shard[kid] = shard
        self._code[kid] = len(self.keys[shard])
        self.keys[shard].append(key)
        self._index[key] = kid
        return kid

    def locate(self, dictionary: pa.Array) -> tuple[np.ndarray, np.ndarray]:
        """(shard, code) of every entry of a key dictionary."""
        last = self._last
        if last is not None and last[0].equals(dictionary):
            return last[1], last[2]
        values = dictionary.to_pylist()
        index = self._index
        for key in values:
            if key not in index:
                self._add(key)
        ids = (np.fromiter(operator.itemgetter(*values)(index), np.int64, len(values)) if len(values) > 1
               else np.array([index[v] for v in values], np.int64))
        shard, code = np.take(self._shard, ids), np.take(self._code, ids)
        self._last = (dictionary, shard, code)
        return shard, code

    def rows(self, keys: pa.DictionaryArray) -> tuple[np.ndarray, np.ndarray]:
        """(shard, code) of every row of a dictionary-encoded key column."""
        if keys.null_count:
            raise ValueError(f"{keys.null_count} events have no key (null); every event needs one")
        shard, code = self.locate(keys.dictionary)
        # as intp once: np.take converts other index types for every call
        indices = keys.indices.to_numpy(zero_copy_only=False).astype(np.intp, copy=False)
        return np.take(shard, indices), np.take(code, indices)


def key_codes(keys: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """Small integer codes of the keys (first-appearance order), through Arrow's hash table or
    the dictionary the column already has."""
    if isinstance(keys, pa.ChunkedArray):
        if pa.types.is_dictionary(keys.type):
            keys = pa.chunked_array(pa.table({"k": keys}).unify_dictionaries().column("k").chunks, keys.type)
        keys = keys.combine_chunks() if keys.num_chunks != 1 else keys.chunk(0)
    encoded = keys if pa.types.is_dictionary(keys.type) else pc.dictionary_encode(keys)
    return encoded.indices.to_numpy(zero_copy_only=False)


def _time_numbers(times: pa.ChunkedArray) -> np.ndarray:
    if pa.types.is_timestamp(times.type):
        times = times.cast(pa.int64())
    return times.to_numpy()


def grouped_order(codes: np.ndarray, n_keys: int, times: np.ndarray) -> np.ndarray | None:
    """The row order that groups rows by key code, each key's rows in time order (ties keep
    input order); None when the rows are in that order already.

    A stable radix sort on the codes (numpy radix-sorts 16-bit integers; wider codes take two
    16-bit passes, least significant first), then a check that times already rise within every
    key (usual for exported history); only if not, a full (code, time) sort.
    """
    n = codes.shape[0]
    if n < 2:
        return None
    if not (codes[1:] < codes[:-1]).any():  # grouped already (codes number keys by first appearance)
        if not _falls_within_a_key(codes, times):
            return None
        return np.lexsort((times, codes))
    if n_keys <= 65_536:
        order = np.argsort(codes.astype(np.uint16), kind="stable")
    else:
        wide = codes.astype(np.uint32)
        low = np.argsort((wide & 0xFFFF).astype(np.uint16), kind="stable")
        order = np.take(low, np.argsort(np.take(wide >> 16, low).astype(np.uint16), kind="stable"))
    # Times that never fall in input order (a shard staged from time-ordered history) stay in
    # order within each key through a stable sort; otherwise check the grouped rows.
    if (times[1:] < times[:-1]).any() and _falls_within_a_key(np.take(codes, order), np.take(times, order)):
        order = np.lexsort((times, codes))
    return order


def _falls_within_a_key(codes: np.ndarray, times: np.ndarray) -> bool:
    """Whether some row's time is earlier than the row before it of the same key (rows grouped by key)."""
    return bool(np.any((times[1:] < times[:-1]) & (codes[1:] == codes[:-1])))


def sort_by_key_time(table: pa.Table, key: str, time: str) -> pa.Table:
    """The rows of ``table`` grouped by key, each key's rows in time order (ties keep input order).

    This is the order a stateful model needs; keys come in the order they first appear (a
    lexicographic key order would cost a string sort and mean nothing); see ``grouped_order``.
    """
    if table.num_rows < 2:
        return table
    codes = key_codes(table.column(key))
    order = grouped_order(codes, int(codes.max(initial=0)) + 1, _time_numbers(table.column(time)))
    return table if order is None else table.take(pa.array(order))
