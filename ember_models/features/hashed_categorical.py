"""Hashed categoricals: a one-hot of `stable_hash(value) % buckets` per categorical field, plus
(optionally) how new the value's bucket is for this key: 1 - (share of the key's earlier events
that fell in the same bucket), so 1 for a value the key has never had. Missing values give all
zeros. The hash is computed once per distinct value when columns are read (see columns.py).
"""
from __future__ import annotations

import numpy as np

from .base import Feature, RoundInputs, State, flat_view


class HashedCategorical(Feature):
    kind = "hashed_categorical"
    reads = "categories"

    def __init__(self, fields=(), columns=(), prefix: str = "hashed_categorical",
                 buckets: int = 16, novelty: bool = True):
        super().__init__(fields, columns, prefix)
        self.buckets = int(buckets)
        self.novelty = bool(novelty)
        self._index_cache: dict = {}

    def names(self) -> list[str]:
        parts = [f"b{j}" for j in range(self.buckets)] + (["novelty"] if self.novelty else [])
        return self._field_names(*parts)

    def state_spec(self):
        if not self.novelty:
            return {}
        c = len(self.fields)
        return {"counts": ((c, self.buckets), "<f8", 0.0), "total": ((c,), "<f8", 0.0)}

    def step(self, state: State, inp: RoundInputs, out32: np.ndarray) -> None:
        cols = self.columns
        h = inp.categories[cols[0]:cols[0] + 1] if len(cols) == 1 else inp.categories[list(cols)]
        c, n, b = h.shape[0], len(inp), self.buckets
        present = h >= 0
        full = bool(present.all())           # the usual case: no masking needed
        bucket = h % b if full else np.where(present, h % b, 0)
        out = np.zeros((c, b + self.novelty, n), dtype=np.float32)
        # (index arrays cached for the widest round seen: a round of n keys takes the first n
        # columns, so rounds of every size share them)
        keys = self._index(("keys",), n, lambda w: np.arange(w)[None, :])   # (1, n)
        out_cell = keys if c == 1 else (np.arange(c) * ((b + self.novelty) * n))[:, None] + keys
        np.put(out, bucket * n + out_cell, 1.0 if full else present)
        if self.novelty:
            counts, total = state["counts"], state["total"]                 # (C, B, n), (C, n)
            flat, (sc, sb, sk) = flat_view(state, "counts")
            at = self._index(("state", c, sc, sk), n, lambda w: (
                np.arange(c)[:, None] * sc + np.arange(w) * sk))
            at = at + bucket * sb
            seen = np.take(flat, at)
            share = seen / np.maximum(total, 1.0)                          # 0 while total is 0
            if full:
                out[:, b] = 1.0 - share
                seen += 1.0
                np.put(flat, at, seen)
                total += 1.0
            else:
                presentf = present.astype(np.float64)
                out[:, b] = (1.0 - share) * presentf
                np.put(flat, at, seen + presentf)
                total += presentf
        out32[...] = out.reshape(-1, n)

    def _index(self, key, n, make):
        """(C, n) index arrays whose columns are the round's keys: ``make(width)`` for the
        widest round so far (cached by `key`: the shape and strides), its first n columns."""
        cache = self._index_cache
        hit = cache.get(key)
        if hit is None or hit.shape[1] < n:
            if len(cache) > 64:
                cache.clear()
            hit = cache[key] = make(n)
        return hit[:, :n]
