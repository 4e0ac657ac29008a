"""Grouping events by key into the grid the detector loops over.

The core runs "batch = keys, loop over time": every key is a row of a [keys, steps] grid and
one time step advances every key that still has events. Keys are ordered by their number of
events, longest first, so the keys active at step t are always a prefix ``[:active[t]]`` and a
step is a slice, never a mask. The feature engine's ``RoundLayout`` is that grouping (one
grouping per batch serves both); step t's events are the rows
``layout.order[round_start[t]:round_start[t + 1]]``, grid keys in order.
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

    @property
    def steps(self) -> int:
        return self.active.shape[0]


def grid_from_layout(layout, codes: np.ndarray, names: list, times: np.ndarray) -> KeyGrid:
    """The grid of the rows of a RoundLayout (keys ranked by it: most events first, ties by
    code), after checking that each key's times do not go backwards."""
    n = len(codes)
    if n == 0:
        return KeyGrid([], np.zeros(0, np.int64), np.zeros(0, np.int64))
    rank = layout.rank
    by_key = layout.by_key                 # None: the rows are grouped by key already
    t, k = (times, codes) if by_key is None else (times[by_key], codes[by_key])
    back = np.flatnonzero((t[1:] < t[:-1]) & (k[1:] == k[:-1]))
    if len(back):
        # the first one in (rank, row) order
        b = back[np.lexsort((back, rank[k[back]]))[0]]
        r = int(b + 1 if by_key is None else by_key[b + 1])
        raise EventTableError(f"time goes backwards for key {names[codes[r]]!r} at row {r} "
                              f"({t[b]!r} then {t[b + 1]!r}): "
                              "each key's events must be in time order")
    return KeyGrid([str(names[i]) for i in layout.rank_order], layout.lengths[layout.rank_order],
                   np.diff(layout.round_start))
