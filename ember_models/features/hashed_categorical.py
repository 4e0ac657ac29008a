"""Hashed categoricals: a one-hot of `stable_hash(value) % buckets` per categorical field, plus
(optionally) how new the value's bucket is for this key: 1 - (share of the key's earlier events
that fell in the same bucket), so 1 for a value the key has never had. Missing values give all
zeros. The hash is computed once per distinct value when columns are read (see columns.py).
"""
from __future__ import annotations

import numpy as np

from ..kernels import kernels
from .base import Feature, RoundInputs, State


# (the state arrays the kernel takes without novelty, when the feature keeps none)
_NO_COUNTS = np.zeros((0, 0, 0))
_NO_TOTAL = np.zeros((0, 0))


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

    def step(self, state: State, inp: RoundInputs, out32: np.ndarray) -> None:
        # (a compiled loop over the keys: hashed_categorical_kernel.py)
        counts = state["counts"] if self.novelty else _NO_COUNTS
        total = state["total"] if self.novelty else _NO_TOTAL
        kernels("ember_models.features.hashed_categorical_kernel").hashed_round(
            inp.categories, self.column_index, self.buckets, self.novelty, counts, total, out32)
