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

# Rows per call of the stateless features (see FeatureRounds.__iter__): enough rounds per call
# that their per-call cost vanishes, few enough that the span stays in cache (4 outputs of
# cyclical time: 256 KB).
SPAN_ROWS = 16384


class FeatureRounds:
    """Iterate once: yields (row, n, features) per round and block of keys, where ``row`` is
    the first of the block's rows in the layout's round order (rows ``row:row + n`` are the
    round's events of keys ``k0:k0 + n``), and ``features`` is a (n, d) float32 view of a
    buffer that the next round overwrites (copy what you keep); (d, n) with ``keys_last``
    (the layout features are computed in: no transposition per round). Blocks of
    ``block_keys`` keys go through all their rounds one block after the other; with one block
    (``block_keys`` >= the number of keys) the yields are simply the rounds in order.
    ``state()`` after the iteration: the keys' new state, rows in the state's key order (not
    ranked)."""

    def __init__(self, engine, layout, ranked: dict, times, values, categories,
                 block_keys: int, keys_last: bool = False):
        self.engine, self.layout, self.ranked = engine, layout, ranked
        for name, shared in engine._state_alias.items():   # one array for equal state
            ranked[name] = ranked[shared]
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
        self.keys_last = keys_last

    def __iter__(self):
        engine, codec = self.engine, self.engine.codec
        # per feature: (state name, ranked array, whether the key is its first axis)
        sources = [[(local, self.ranked[flat], codec.key_axis[flat] == 0) for flat, local in keys]
                   for keys in engine._state_keys]
        # Features without state (cyclical time, a hashed categorical without novelty) give an
        # event's outputs from that event alone. With all keys in one block the rounds are
        # consecutive spans of the round-ordered inputs, so these features run once per span
        # of SPAN_ROWS rows (many rounds) and each round copies its columns out.
        spans = self.block >= self.n_keys
        stateless, n_out = [], 0          # (feature, its rows in buf, its rows in span_buf)
        features = []                     # the others, in the engine's order of evaluation
        for i in engine._run_order:
            f, sl, src = engine.features[i], engine._slices[i], sources[i]
            if spans and not src:
                stateless.append((f, sl, slice(n_out, n_out + sl.stop - sl.start)))
                n_out += sl.stop - sl.start
            else:
                features.append((f, sl, src))
        # the shared clock (Feature.clock): advanced after every feature of the round read it
        clock_at = None
        if engine._clock is not None:
            owner, clock_name = engine._clock
            clock_at = [f for f, _, _ in features].index(engine.features[owner])
        t_r, x_r, c_r = self.t_r, self.x_r, self.c_r
        d, block, n_rows = engine.n_features, self.block, t_r.shape[0]
        # features x keys as steps write them; one transposition per round to events x features
        # (the buffer is exactly `block` wide: a wider row stride makes that transposition ~3x
        # slower)
        buf = np.empty((d, block), dtype=np.float32)
        rows = None if self.keys_last else np.empty((block, d), dtype=np.float32)
        span = max(SPAN_ROWS, block) if stateless else 0
        span_buf = np.empty((n_out, span), dtype=np.float32)
        s0 = s1 = 0                       # rows of the span computed in span_buf
        v, width = x_r.shape[0], max(block, span)
        ones = ((np.ones((v, width), bool), np.ones((v, width))) if self.complete else None)
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
                    views = [StateViews(src, k0, k0 + n) for _, _, src in features]
                    n_prev = n
                b = a + n
                if stateless:
                    if b > s1:
                        s0, s1 = a, min(n_rows, a + span)
                        inp = RoundInputs(t_r[s0:s1], x_r[:, s0:s1], c_r[:, s0:s1], ones)
                        for f, _, at in stateless:
                            f.step({}, inp, span_buf[at, :s1 - s0])
                    for _, sl, at in stateless:
                        buf[sl, :n] = span_buf[at, a - s0:b - s0]
                inp = RoundInputs(t_r[a:b], x_r[:, a:b], c_r[:, a:b], ones)
                for (f, sl, _), st in zip(features, views):
                    f.step(st, inp, buf[sl, :n])
                if clock_at is not None:
                    t_last = views[clock_at][clock_name]
                    np.fmax(t_last, inp.times, out=t_last)
                if self.keys_last:
                    yield a, n, buf[:, :n]
                else:
                    np.copyto(rows[:n], buf[:, :n].T)
                    yield a, n, rows[:n]

    def state(self) -> dict:
        ranked = self.ranked
        new_state = {k: np.empty(v.shape, dtype=v.dtype) for k, v in ranked.items()}
        self.engine.codec.put(new_state, self.layout.rank_order, ranked)
        return new_state
