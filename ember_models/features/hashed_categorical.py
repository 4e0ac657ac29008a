"""Hashed categoricals: a one-hot of `stable_hash(value) % buckets` per categorical field, plus
(optionally) how new the value's bucket is for this key: 1 - (share of the key's earlier events
that fell in the same bucket), so 1 for a value the key has never had. Missing values give all
zeros. The hash is computed once per distinct value when columns are read (see columns.py).
"""
from __future__ import annotations

import numpy as np

from .base import Feature, RoundInputs, State


class HashedCategorical(Feature):
    kind = "hashed_categorical"
    reads = "categories"

    def __init__(self, fields=(), columns=(), prefix: str = "hashed_categorical",
                 buckets: int = 16, novelty: bool = True):
        super().__init__(fields, columns, prefix)
        self.buckets = int(buckets)
        self.novelty = bool(novelty)

    def names(self) -> list[str]:
        parts = [f"b{j}" for j in range(self.buckets)] + (["novelty"] if self.novelty else [])
        return self._field_names(*parts)

    def state_spec(self):
        if not self.novelty:
            return {}
        c = len(self.fields)
        return {"counts": ((c, self.buckets), "<f8", 0.0), "total": ((c,), "<f8", 0.0)}

    def step(self, state: State, inp: RoundInputs) -> np.ndarray:
        h = inp.categories[list(self.columns)]                          # (C, n)
        c, n, b = h.shape[0], len(inp), self.buckets
        present = h >= 0
        bucket = np.where(present, h % b, 0)
        fi, ki = np.arange(c)[:, None], np.arange(n)
        out = np.zeros((c, b + self.novelty, n), dtype=np.float32)
        out[fi, bucket, ki] = present
        if self.novelty:
            counts, total = state["counts"], state["total"]
            seen = counts[fi, bucket, ki]
            share = np.where(total > 0, seen / np.maximum(total, 1.0), 0.0)
            out[:, b] = (1.0 - share) * present
            counts[fi, bucket, ki] = seen + present
            total += present
        return out.reshape(-1, n)
