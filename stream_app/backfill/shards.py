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
  per distinct key of a batch. A key lands in the same shard on every run with the same N;
  file shards and BigQuery shards of the same key differ, which nothing relies on.
"""

from __future__ import annotations

import hashlib

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


class FileShardFunction:
    """Shard ids for arrays of keys, caching the shard of every key seen (keys repeat a lot)."""

    def __init__(self, shards: int) -> None:
        if shards < 1:
            raise ValueError(f"shards must be >= 1, got {shards}")
        self.shards = shards
        self._cache: dict[object, int] = {}

    def __call__(self, keys: pa.Array | pa.ChunkedArray) -> np.ndarray:
        if isinstance(keys, pa.ChunkedArray):
            keys = keys.combine_chunks()
        if self.shards == 1:
            return np.zeros(len(keys), dtype=np.int32)
        if keys.null_count:
            raise ValueError(f"{keys.null_count} events have no key (null); every event needs one")
        encoded = keys if pa.types.is_dictionary(keys.type) else pc.dictionary_encode(keys)
        cache, shards = self._cache, self.shards
        uniques = encoded.dictionary.to_pylist()
        lookup = np.empty(len(uniques), dtype=np.int32)
        for i, key in enumerate(uniques):
            shard = cache.get(key)
            if shard is None:
                shard = cache[key] = key_shard(key, shards)
            lookup[i] = shard
        indices = encoded.indices.to_numpy(zero_copy_only=False)
        return lookup[indices]


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


def sort_by_key_time(table: pa.Table, key: str, time: str) -> pa.Table:
    """The rows of ``table`` grouped by key, each key's rows in time order (ties keep input order).

    This is the order a stateful model needs; keys come in the order they first appear (a
    lexicographic key order would cost a string sort and mean nothing). Two cheap steps: a
    stable counting/radix sort on integer key codes, then a check that times already rise
    within every key (usual for exported history); only if not, a full (key, time) sort.
    """
    n = table.num_rows
    if n < 2:
        return table
    codes = key_codes(table.column(key))
    times = _time_numbers(table.column(time))
    narrow = codes.astype(np.uint16) if codes.max(initial=0) < 65_536 else codes  # numpy radix-sorts 16-bit
    order = np.argsort(narrow, kind="stable")
    t, c = times[order], codes[order]
    if np.any((t[1:] < t[:-1]) & (c[1:] == c[:-1])):
        order = np.lexsort((times, codes))
    if np.array_equal(order, np.arange(n)):
        return table
    return table.take(pa.array(order))
