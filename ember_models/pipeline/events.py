"""Grouping events by key into the grid the detector loops over.

The core runs "batch = keys, loop over time": every key is a row of a [keys, steps] grid and
one time step advances every key that still has events. Keys are ordered by their number of
events, longest first, so the keys active at step t are always a prefix ``[:active[t]]`` and a
step is a slice, never a mask.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


class EventTableError(ValueError):
    """Events the pipeline cannot take (names the key and row)."""


@dataclass
class KeyGrid:
    keys: list[str]            # key of grid row k (longest sequence first)
    lengths: np.ndarray        # [K] events per key
    active: np.ndarray         # [T] number of keys with an event at step t (non-increasing)
    rows: np.ndarray           # [K, T] input row index of (key k, step t); -1 = no event

    @property
    def steps(self) -> int:
        return self.rows.shape[1]


def key_grid(codes: np.ndarray, names: list, times: np.ndarray) -> KeyGrid:
    """Group rows by key code (``codes`` [N] into ``names``, numbered in order of first
    appearance; ties in length: the key seen first comes first), keeping each key's input
    order, and check that each key's times do not go backwards."""
    n = len(codes)
    if n == 0:
        return KeyGrid([], np.zeros(0, np.int64), np.zeros(0, np.int64),
                       np.zeros((0, 0), np.int64))
    counts = np.bincount(codes, minlength=len(names))
    rank = np.lexsort((np.arange(len(counts)), -counts))
    new_code = np.empty_like(rank)
    new_code[rank] = np.arange(len(rank))
    code = new_code[codes]
    order = np.argsort(code, kind="stable")             # input order within a key
    lengths = counts[rank]
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    pos = np.arange(n) - np.repeat(starts, lengths)
    rows = np.full((len(rank), int(lengths[0])), -1, np.int64)
    rows[code[order], pos] = order
    t_sorted = times[order]
    c_sorted = code[order]
    back = np.flatnonzero((np.diff(t_sorted) < 0) & (c_sorted[1:] == c_sorted[:-1]))
    if len(back):
        r = int(order[back[0] + 1])
        raise EventTableError(f"time goes backwards for key {names[codes[r]]!r} at row {r} "
                              f"({t_sorted[back[0]]!r} then {t_sorted[back[0] + 1]!r}): "
                              "each key's events must be in time order")
    active = np.searchsorted(-lengths, -np.arange(int(lengths[0])), side="left")
    return KeyGrid([str(names[i]) for i in rank], lengths, active, rows)


def grid_from_layout(layout, codes: np.ndarray, names: list, times: np.ndarray) -> KeyGrid:
    """``key_grid`` from the feature engine's RoundLayout of the same rows (keys ranked the
    same way: most events first, ties by code), so a batch is grouped by key once; the same
    time-order check and error."""
    n = len(codes)
    if n == 0:
        return key_grid(codes, names, times)
    rank = layout.rank
    rows_by_key = layout.by_key if layout.by_key is not None else np.arange(n)
    t, k = times[rows_by_key], codes[rows_by_key]
    back = np.flatnonzero((t[1:] < t[:-1]) & (k[1:] == k[:-1]))
    if len(back):
        # key_grid reports the first one in (rank, row) order
        b = back[np.lexsort((back, rank[k[back]]))[0]]
        r = int(rows_by_key[b + 1])
        raise EventTableError(f"time goes backwards for key {names[codes[r]]!r} at row {r} "
                              f"({t[b]!r} then {t[b + 1]!r}): "
                              "each key's events must be in time order")
    lengths = layout.lengths[layout.rank_order]
    rows = np.full((len(lengths), int(lengths[0])), -1, np.int64)
    rows[rank[codes], layout.position] = np.arange(n)
    return KeyGrid([str(names[i]) for i in layout.rank_order], lengths,
                   np.diff(layout.round_start), rows)
