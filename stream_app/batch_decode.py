"""A micro-batch of event messages decoded and checked column by column.

The per-event path (``schemas.decode_message`` + the checks in ``processor``) makes a Python
object per event and runs each rule per event: ~5 µs an event, as long as the whole pipeline
step for batch messages (docs/performance.md, "Streaming"). Here each JSON message is decoded
into typed records (``stream_app.json_events``: the types are checked as it decodes) and the
rest is checked per column: numbers converted, finiteness, event time and per-key order tested
with NumPy. It decides only the common case — every event valid, no replayed event, each key on
its own partition, each key's times in order up to ``max_out_of_order_s`` — and returns None for
anything else, and the per-event path, which is the definition of every rule and writes the dead
letters, handles that batch. So both give the same result (tests/kafka/test_batch_decode.py
holds them to it).

Arrow IPC messages (``stream_app.arrow_messages``) arrive typed: their columns are checked with
a few vectorised calls each (no null key or time, no NaN/inf value) and used as they are; runs
of JSON messages and Arrow messages in one micro-batch are concatenated in arrival order.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from itertools import repeat
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from . import arrow_messages, json_events
from .schemas import _TIME_SCALE, EventSchema
from .stored_state import StoredState, StoredStateError


@dataclass
class Accepted:
    """The events of a batch that go to the pipeline, as columns in arrival order, and what
    the driver keeps per key."""

    keys: pa.Array             # string
    times: np.ndarray          # float64 epoch seconds, as scored (a late event at its key's latest)
    values: list[np.ndarray]   # per value field, float64, NaN = missing
    categories: list[pa.Array]  # per categorical field, string (null = missing)
    partitions: np.ndarray     # int64
    offsets: np.ndarray        # int64
    stored: dict[str, StoredState | None]
    latest: dict[str, float] = field(default_factory=dict)
    cursor: dict[str, tuple[int, int]] = field(default_factory=dict)  # key -> (offset, index)
    partition_of: dict[str, int] = field(default_factory=dict)
    late: int = 0

    def __len__(self) -> int:
        return len(self.keys)


def load_stored(load_state: Callable[[str, int], bytes | None], key: str, partition: int) -> StoredState | None:
    blob = load_state(key, partition)
    try:
        return StoredState.from_bytes(blob, key) if blob is not None else None
    except StoredStateError:
        return None  # unreadable: start the key fresh rather than stop the stream


@dataclass
class _Chunk:
    """Columns of consecutive messages of one format, in arrival order, types checked."""

    keys: pa.Array            # string, no nulls
    times: np.ndarray         # float64 epoch seconds
    values: list[np.ndarray]  # float64, NaN = missing
    categories: list[pa.Array]
    partitions: np.ndarray
    offsets: np.ndarray
    indices: np.ndarray       # position in a batch message, -1 for a one-event message


@dataclass
class Decoded:
    """A batch's messages as typed columns in arrival order (no per-key check yet: that needs
    the stored states, ``accept_decoded``)."""

    messages: Sequence[Any]    # what was decoded (the driver reuses it only for the same list)
    keys: pa.Array
    times: np.ndarray
    values: list[np.ndarray]
    categories: list[pa.Array]
    partitions: np.ndarray
    offsets: np.ndarray
    indices: np.ndarray

    def same_messages(self, messages: Sequence[Any]) -> bool:
        mine = self.messages
        return len(mine) == len(messages) and all(a is b for a, b in zip(mine, messages))


def accept_columns(
    messages: Sequence[Any],
    schema: EventSchema,
    limits: Any,
    events_partitions: int,
    partition_for: Callable[[str, int], int],
    load_state: Callable[[str, int], bytes | None],
    now: float,
) -> Accepted | None:
    """The batch's events as :class:`Accepted`, or None when any event needs the per-event
    path (a dead letter, a replay, a late event beyond the limit, ...)."""
    decoded = decode_columns(messages, schema, limits, now)
    if decoded is None:
        return None
    return accept_decoded(decoded, limits, events_partitions, partition_for, load_state)


def decode_columns(messages: Sequence[Any], schema: EventSchema, limits: Any, now: float
                   ) -> Decoded | None:
    """The state-free half of ``accept_columns``: decode and type-check the columns (None: the
    batch needs the per-event path). The streaming driver runs it on the next batch while the
    model steps the current one (stream_app.app)."""
    chunks: list[_Chunk | None] = []
    run: list[Any] = []  # consecutive messages of one format (Arrow: of one schema)
    tables: list[pa.Table] = []  # the run's Arrow tables (none: a run of JSON messages)
    max_bytes = limits.max_payload_bytes

    def end_run() -> None:
        chunks.append(_arrow_chunk(run, tables, schema) if tables else _json_chunk(run, schema))

    for m in messages:
        raw = m.value
        if not raw or len(raw) > max_bytes:
            return None
        table = None
        if raw[:4] == arrow_messages.MAGIC:
            try:
                table = arrow_messages.read_message(raw, max_bytes)
            except arrow_messages.ArrowMessageError:
                return None
        same = (not tables) if table is None else bool(tables) and table.schema.equals(tables[0].schema)
        if run and not same:
            end_run()
            run, tables = [], []
        run.append(m)
        if table is not None:
            tables.append(table)
    if run:
        end_run()
    if not chunks or any(c is None for c in chunks):
        return None
    if len(chunks) == 1:
        c = chunks[0]
        keys, times, values, categories = c.keys, c.times, c.values, c.categories
        partitions, offsets, indices = c.partitions, c.offsets, c.indices
    else:
        keys = pa.concat_arrays([c.keys for c in chunks])
        times = np.concatenate([c.times for c in chunks])
        values = [np.concatenate([c.values[j] for c in chunks]) for j in range(len(schema.value_fields))]
        categories = [pa.concat_arrays([c.categories[j] for c in chunks])
                      for j in range(len(schema.categorical_fields))]
        partitions = np.concatenate([c.partitions for c in chunks])
        offsets = np.concatenate([c.offsets for c in chunks])
        indices = np.concatenate([c.indices for c in chunks])
    # times: finite, not in the future
    if not np.isfinite(times).all() or (times > now + limits.max_future_s).any():
        return None
    return Decoded(list(messages), keys, times, values, categories, partitions, offsets, indices)


def _json_chunk(messages: Sequence[Any], schema: EventSchema) -> _Chunk | None:
    """Each message decoded into typed records (json_events: the types are checked as it
    decodes), then the columns."""
    dec = json_events.decoder_for(schema)
    records: list = []
    parts: list[int] = []
    offs: list[int] = []
    idxs: list[int] = []
    for m in messages:
        try:
            got, single = dec.decode(m.value)
        except json_events.DecodeError:
            return None
        n = len(got)
        if not n:
            return None
        records.extend(got)
        if single:
            idxs.append(-1)
        else:
            idxs.extend(range(n))
        parts.extend(repeat(m.partition, n))
        offs.extend(repeat(m.offset, n))
    # keys: text or integers (as decimal text)
    keys = dec.column(records, schema.key_field)
    if set(map(type, keys)) != {str}:
        keys = list(map(str, keys))
    if not _usable_smallest_key(min(keys)):
        return None
    try:
        times = np.array(dec.column(records, schema.time_field), np.float64) \
            * _TIME_SCALE[schema.time_unit]
    except OverflowError:
        return None
    values = []
    for name in schema.value_fields:
        try:
            typed = pa.array(dec.column(records, name), pa.float64())
        except (pa.ArrowInvalid, OverflowError):
            return None
        arr = typed.to_numpy(zero_copy_only=False)  # null -> NaN (missing, imputed)
        bad = ~np.isfinite(arr)
        if bad.any() and (typed.null_count == 0
                          or (bad & typed.is_valid().to_numpy(zero_copy_only=False)).any()):
            return None  # numbers beyond float64
        values.append(arr)
    categories = [pa.array(dec.column(records, name), pa.string())
                  for name in schema.categorical_fields]
    return _Chunk(pa.array(keys, pa.string()), times, values, categories, np.array(parts, np.int64),
                  np.array(offs, np.int64), np.array(idxs, np.int64))


def _arrow_chunk(messages: Sequence[Any], tables: list[pa.Table], schema: EventSchema) -> _Chunk | None:
    """Arrow IPC messages of one schema as one table's columns, with no null key or time and
    no NaN/inf value (checked once for the run, not per message)."""
    table = tables[0] if len(tables) == 1 else pa.concat_tables(tables)
    try:
        cols = arrow_messages.columns(table, schema, schema.missing_values)
    except arrow_messages.ArrowMessageError:
        return None
    if cols.keys.null_count or not cols.times_valid.all():
        return None
    if not _usable_smallest_key(pc.min(cols.keys).as_py()):
        return None
    for arr, ok in zip(cols.values, cols.values_valid):
        finite = np.isfinite(arr)
        if not finite.all() and ((~finite & ok).any() or schema.missing_values != "impute"):
            return None
    counts = np.array([t.num_rows for t in tables], np.int64)
    starts = np.cumsum(counts) - counts
    n = len(cols)
    return _Chunk(cols.keys, cols.times, cols.values, cols.categories,
                  np.repeat(np.array([m.partition for m in messages], np.int64), counts),
                  np.repeat(np.array([m.offset for m in messages], np.int64), counts),
                  np.arange(n, dtype=np.int64) - np.repeat(starts, counts))


def _usable_smallest_key(smallest: str) -> bool:
    """Whether the smallest key of a batch shows that none is empty or NUL-prefixed (those
    sort first; NUL-prefixed table keys are the driver's own)."""
    return bool(smallest) and smallest[0] != "\x00"


def accept_decoded(decoded: Decoded, limits: Any, events_partitions: int,
                   partition_for: Callable[[str, int], int],
                   load_state: Callable[[str, int], bytes | None]) -> Accepted | None:
    """Per key: one partition, no replayed event, times in order up to the limit (the stored
    states read here); None: the batch needs the per-event path."""
    keys, times, values, categories = decoded.keys, decoded.times, decoded.values, decoded.categories
    partitions, offsets, indices = decoded.partitions, decoded.offsets, decoded.indices
    # events grouped by key (each key's in arrival order); group g is the key of code g
    dictionary = keys.dictionary_encode()
    codes = dictionary.indices.to_numpy().astype(np.int64)
    uniques = dictionary.dictionary.to_pylist()
    order = np.argsort(codes, kind="stable")
    c_sorted = codes[order]
    bounds = np.flatnonzero(c_sorted[1:] != c_sorted[:-1]) + 1
    starts = np.concatenate(([0], bounds))
    ends = np.concatenate((bounds, [len(order)]))
    # per key: one partition (Kafka's, when checked), no event already in the stored state
    key_partition = partitions[order[starts]]
    if not (partitions == key_partition[codes]).all():
        return None
    part_list = key_partition.tolist()
    if limits.check_partition:
        if any(partition_for(k, events_partitions) != p for k, p in zip(uniques, part_list)):
            return None
    stored = {k: load_stored(load_state, k, p) for k, p in zip(uniques, part_list)}
    st_latest = np.full(len(uniques), -np.inf)
    st_offset = np.full(len(uniques), -1, np.int64)
    st_index = np.full(len(uniques), -1, np.int64)
    for g, s in enumerate(stored.values()):
        if s is not None:
            st_latest[g], st_offset[g], st_index[g] = s.latest_time, s.offset, s.index
    ko, ki = st_offset[codes], st_index[codes]
    if ((offsets < ko) | ((offsets == ko) & (indices <= ki))).any():
        return None  # a replay after a crash: the per-event path skips what the state holds
    # per key, in arrival order: the latest time before each event (stored or in this batch)
    t_sorted = times[order]
    before = np.empty_like(t_sorted)
    before[1:] = t_sorted[:-1]
    before[starts] = st_latest
    disordered = np.flatnonzero(before > t_sorted)
    late = 0
    if len(disordered):
        for g in np.unique(np.searchsorted(starts, disordered, side="right") - 1):
            a, b = starts[g], ends[g]
            prior = np.maximum.accumulate(np.concatenate(([st_latest[g]], t_sorted[a:b])))[:-1]
            if (prior - t_sorted[a:b] > limits.max_out_of_order_s).any():
                return None  # out_of_order dead letters: the per-event path writes them
            late += int((t_sorted[a:b] < prior).sum())
            before[a:b] = prior
        scored = np.maximum(t_sorted, before)
        times = np.empty_like(times)
        times[order] = scored
    # each key's last event: its latest (scored) time and its position
    last = order[ends - 1]
    return Accepted(keys, times, values, categories, partitions, offsets, stored, late=late,
                    latest=dict(zip(uniques, times[last].tolist())),
                    cursor=dict(zip(uniques, zip(offsets[last].tolist(), indices[last].tolist()))),
                    partition_of=dict(zip(uniques, part_list)))
