"""The engine's one evaluation loop: every feature's ``step`` once per round, over blocks of keys.

``FeatureEngine.rounds`` returns a ``FeatureRounds``; iterating it yields, round after round,
the features of that round's events as a (n, d) float32 block. ``FeatureEngine.step_events``
collects the blocks into one (N, d) array; the pipeline instead feeds each block straight to
its detector loop, so a backfill never materialises the (N, d) features of a whole table
(for a 1.2 M-event shard that is 230 MB written once and read once, most of it page faults).
"""
from __future__ import annotations

import numpy as np

from .base import RoundInputs, StateViews

# Values are clamped to +-VALUE_LIMIT (and non-finite ones become missing) before any feature
# sees them: then every feature's float64 state stays finite and every output fits float32
# (squares of 1e15 are 1e30), with no clipping pass over the outputs.
VALUE_LIMIT = 1e15


class FeatureRounds:
    """Iterate once: yields (row, n, features) per round and block of keys, where ``row`` is
    the first of the block's rows in the layout's round order (rows ``row:row + n`` are the
    round's events of keys ``k0:k0 + n``), and ``features`` is a (n, d) float32 view of a
    buffer that the next round overwrites (copy what you keep). Blocks of ``block_keys`` keys
    go through all their rounds one block after the other; with one block (``block_keys`` >=
    the number of keys) the yields are simply the rounds in order. ``state()`` after the
    iteration: the keys' new state, rows in the state's key order (not ranked)."""

    def __init__(self, engine, layout, ranked: dict, times, values, categories,
                 block_keys: int):
        self.engine, self.layout, self.ranked = engine, layout, ranked
        order = layout.order
        # Inputs in round order, fields first: round r is the column block a:b (np.take:
        # ~5x faster than fancy indexing here).
        self.t_r = np.take(times, order)
        self.x_r = x_r = np.take(values.T, order, axis=1)
        finite = np.isfinite(x_r)
        # every value observed (the usual table): rounds need not look for missing ones
        self.complete = bool(finite.all())
        if not self.complete:
            x_r[~finite] = np.nan                      # ±inf is missing, like NaN
        np.clip(x_r, -VALUE_LIMIT, VALUE_LIMIT, out=x_r)
        self.c_r = np.take(categories.T, order, axis=1)
        self.n_keys = int(layout.round_start[1]) if order.shape[0] else 0
        self.block = max(1, min(int(block_keys), self.n_keys))

    def __iter__(self):
        engine, codec = self.engine, self.engine.codec
        features = list(zip(engine.features, engine._slices))
        # per feature: (state name, ranked array, whether the key is its first axis)
        sources = [[(local, self.ranked[flat], codec.key_axis[flat] == 0) for flat, local in keys]
                   for keys in engine._state_keys]
        t_r, x_r, c_r = self.t_r, self.x_r, self.c_r
        d, block = engine.n_features, self.block
        # features x keys as steps return them; one transposition per round to events x features
        # (the buffer is exactly `block` wide: a wider row stride makes that transposition ~3x
        # slower)
        buf = np.empty((d, block), dtype=np.float32)
        rows = np.empty((block, d), dtype=np.float32)
        v = x_r.shape[0]
        ones = ((np.ones((v, block), bool), np.ones((v, block))) if self.complete else None)
        starts = self.layout.round_start[:-1]
        active = np.diff(self.layout.round_start)          # keys active in each round
        # Keys are independent, so work through them in blocks that keep their state in cache,
        # each block through all its rounds.
        for k0 in range(0, self.n_keys, block):
            k1 = k0 + block
            n_prev = -1
            views: list[StateViews] = []
            for a, n_active in zip((starts + k0).tolist(), active.tolist()):
                n = min(n_active, k1) - k0
                if n <= 0:
                    break      # rounds only lose keys: none of this block is left
                if n != n_prev:          # the keys' state views (codec.slice, per feature)
                    views = [StateViews(src, k0, k0 + n) for src in sources]
                    n_prev = n
                b = a + n
                inp = RoundInputs(t_r[a:b], x_r[:, a:b], c_r[:, a:b], ones)
                for (f, sl), st in zip(features, views):
                    f.step(st, inp, buf[sl, :n])
                np.copyto(rows[:n], buf[:, :n].T)
                yield a, n, rows[:n]

    def state(self) -> dict:
        ranked = self.ranked
        new_state = {k: np.empty(v.shape, dtype=v.dtype) for k, v in ranked.items()}
        self.engine.codec.put(new_state, self.layout.rank_order, ranked)
        return new_state
