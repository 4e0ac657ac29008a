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
        out_cell = self._index(("out", c, n), lambda: (
            np.arange(c)[:, None] * (b + self.novelty) * n + np.arange(n)))
        np.put(out, bucket * n + out_cell, 1.0 if full else present)
        if self.novelty:
            counts, total = state["counts"], state["total"]                 # (C, B, n), (C, n)
            flat, (sc, sb, sk) = flat_view(state, "counts")
            at = self._index(("state", c, n, sc, sk), lambda: (
                np.arange(c)[:, None] * sc + np.arange(n) * sk))
            at = at + bucket * sb
            seen = np.take(flat, at)
            share = seen / np.maximum(total, 1.0)                          # 0 while total is 0
            if full:
                np.subtract(1.0, share, out=out[:, b])
                seen += 1.0
                np.put(flat, at, seen)
                total += 1.0
            else:
                presentf = present.astype(np.float64)
                out[:, b] = (1.0 - share) * presentf
                np.put(flat, at, seen + presentf)
                total += presentf
        out32[...] = out.reshape(-1, n)

    def _index(self, key, make):
        """Index arrays that depend only on the round's shape and strides (cached)."""
        cache = self._index_cache
        hit = cache.get(key)
        if hit is None:
            if len(cache) > 4096:
                cache.clear()
            hit = cache[key] = make()
        return hit
