"""Grouping the rows of many keys into rounds, without a Python loop over rows.

Round r holds the r-th event of every key that has more than r events. Keys are ranked by
descending number of events, so the keys active in round r are exactly ranks 0..n_r-1: each
round's state is a prefix *view* of the ranked state arrays (no masks, no copies), and each
round's rows are one contiguous block of the inputs once they are put in round order.
Both evaluation paths (a streaming micro-batch and a whole backfill table) use this layout; a
key's own events are always applied in their row order.
"""
from __future__ import annotations

import numpy as np


class RoundLayout:
    """key_index: (N,) int64 in [0, n_keys), row -> key.

    rank_order:  (n_keys,) key ids by rank (ranked_state = state[rank_order])
    order:       (N,) rows in round order (inputs[order] puts round r at round_start[r]:...)
    round_start: (L+1,) offsets of the rounds in round order; L = max events of one key
    position:    (N,) r of each row (its index among its key's rows)
    """

    def __init__(self, key_index: np.ndarray, n_keys: int):
        key_index = np.asarray(key_index, dtype=np.int64)
        n = key_index.shape[0]
        lengths = np.bincount(key_index, minlength=n_keys)
        self.lengths = lengths
        self.n_keys = n_keys
        self.rank_order = np.argsort(-lengths, kind="stable")
        rank = np.empty(n_keys, dtype=np.int64)
        rank[self.rank_order] = np.arange(n_keys)
        key_start = np.zeros(n_keys + 1, dtype=np.int64)
        np.cumsum(lengths, out=key_start[1:])
        # (np.take rather than fancy indexing, and in-place arithmetic: a backfill shard has
        # millions of rows, and each fresh temporary of that size is page faults)
        if n == 0 or not (key_index[1:] < key_index[:-1]).any():
            self.by_key = None             # rows already grouped by key (the backfill case)
            position = np.arange(n)
            position -= np.take(key_start, key_index)
        else:
            self.by_key = np.argsort(key_index, kind="stable")
            position = np.empty(n, dtype=np.int64)
            rel = np.arange(n)
            rel -= np.take(key_start, np.take(key_index, self.by_key))
            position[self.by_key] = rel
        self.position = position
        n_rounds = int(lengths.max()) if n else 0
        keys_ending = np.bincount(lengths, minlength=n_rounds + 1)       # keys with length == r
        n_active = n_keys - np.cumsum(keys_ending)[:n_rounds]             # keys with length > r
        self.round_start = np.zeros(n_rounds + 1, dtype=np.int64)
        np.cumsum(n_active, out=self.round_start[1:])
        dest = np.take(self.round_start, position)
        dest += np.take(rank, key_index)
        self.order = np.empty(n, dtype=np.int64)
        self.order[dest] = np.arange(n)

    def by_rank(self) -> "RoundLayout":
        """The same layout for the rows' keys renumbered by rank (key id = rank): the layout
        ``RoundLayout(rank[key_index], n_keys)`` would build, without sorting again."""
        out = object.__new__(RoundLayout)
        out.__dict__.update(self.__dict__)
        out.rank_order = np.arange(self.n_keys, dtype=np.int64)
        out.by_key = None          # only check_time_order reads it: checked by the caller
        return out

    @property
    def rank(self) -> np.ndarray:
        """(n_keys,) rank of each key id."""
        rank = np.empty(self.n_keys, dtype=np.int64)
        rank[self.rank_order] = np.arange(self.n_keys)
        return rank

    @property
    def n_rounds(self) -> int:
        return self.round_start.shape[0] - 1

    def rounds(self):
        """(start, stop) of each round in round order; stop - start = number of active keys."""
        rs = self.round_start
        return zip(rs[:-1].tolist(), rs[1:].tolist())

    def check_time_order(self, key_index: np.ndarray, times: np.ndarray, keys) -> None:
        """Raise if some key's rows are not in non-decreasing time order."""
        rows = self.by_key if self.by_key is not None else np.arange(times.shape[0])
        t, k = times[rows], key_index[rows]
        bad = np.flatnonzero((t[1:] < t[:-1]) & (k[1:] == k[:-1]))
        if bad.size:
            row = int(rows[bad[0] + 1])
            prev = int(rows[bad[0]])
            raise ValueError(f"events of key {keys[int(k[bad[0]])]!r} are not in time order: row "
                             f"{row} (time {t[bad[0] + 1]!r}) comes after row {prev} "
                             f"(time {t[bad[0]]!r}); sort each key's events by time")
