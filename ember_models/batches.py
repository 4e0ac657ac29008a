"""Mini-batches for training, one fresh pass per epoch, from whatever the caller has.

``fit(data, epochs=...)`` accepts:

- a 2-D array (NumPy or any backend's): cut into ``batch_size`` rows, shuffled each epoch
  when asked (the permutation comes from the model's seeded generator, so runs repeat);
- a callable returning an iterator of batches: called once per epoch (``lambda: reader()``);
- a re-iterable (a list of arrays, a dataset object whose ``__iter__`` starts over): iterated
  once per epoch;
- a one-shot iterator (a generator): fine for one epoch; asking it for a second epoch is an
  error, because it would silently yield nothing and the model would "train" on no data.

Each batch yielded by a callable or iterable is used as it comes (2-D rows × features, or one
1-D row); its size may vary.
"""
from __future__ import annotations

from typing import Iterator

import numpy as np

from . import ops


class BatchSourceError(ValueError):
    """Training data that cannot give the batches an epoch needs."""


def _is_array(data) -> bool:
    return isinstance(data, np.ndarray) or ops.is_array(data)


class BatchSource:
    """One iterator of mini-batches per epoch: ``for batch in source.epoch(i, rng): ...``."""

    def __init__(self, data, batch_size: int, shuffle: bool = True, what: str = "training data",
                 dtype: str | None = None):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.batch_size, self.shuffle, self.what = int(batch_size), bool(shuffle), what
        self._data = data
        if _is_array(data):
            self.kind = "array"
            if dtype is not None:  # convert once, not per batch
                self._data = ops.asarray(data, dtype=dtype)
        elif callable(data):
            self.kind = "callable"
        elif hasattr(data, "__iter__"):
            # iter(x) is x only for iterators: they run once, then stay empty
            self.kind = "one-shot" if iter(data) is data else "iterable"
        else:
            raise BatchSourceError(
                f"{what}: expected a 2-D array, a callable returning an iterator of batches, "
                f"or an iterable of batches; got {type(data).__name__}")

    def epoch(self, index: int, rng=None) -> Iterator:
        """The batches of epoch ``index`` (0-based). ``rng``: an ``ops.generator`` for shuffling."""
        if self.kind == "array":
            return self._array_batches(rng)
        if self.kind == "callable":
            it = self._data()
            if not hasattr(it, "__next__"):
                it = iter(it)
            return self._checked(it, index)
        if self.kind == "one-shot" and index > 0:
            raise BatchSourceError(
                f"{self.what} is a one-shot iterator ({type(self._data).__name__}) that epoch 1 "
                f"used up, so epoch {index + 1} would train on nothing. Pass a callable returning "
                "a fresh iterator (e.g. fit(lambda: read_batches(), epochs=...)) or a re-iterable "
                "such as a list of arrays, or train one epoch at a time.")
        return self._checked(iter(self._data), index)

    def _checked(self, it: Iterator, index: int) -> Iterator:
        count = 0
        for batch in it:
            count += 1
            yield batch
        if count == 0:
            raise BatchSourceError(f"{self.what} yielded no batches in epoch {index + 1}")

    def _array_batches(self, rng) -> Iterator:
        data = self._data
        n = int(ops.shape(data)[0])
        if n == 0:
            raise BatchSourceError(f"{self.what} has no rows")
        if self.shuffle and n > 1:
            if rng is None:
                raise ValueError("shuffling needs a generator (ops.generator(seed))")
            data = ops.take(ops.asarray(data), rng.permutation(n), axis=0)
        for start in range(0, n, self.batch_size):
            yield data[start:start + self.batch_size]


    def array_chunks(self, index: int, rng=None, batches_per_chunk: int = 1) -> Iterator:
        """An array source's epoch ``index`` as ``(rows, batch_rows, n_batches)``: the same
        batches as ``epoch`` yields, in the same order, ``batches_per_chunk`` equal ones at a
        time (the last, shorter batch in a chunk of its own), so a trainer can do per-chunk
        work (random draws, the row gather) once for many batches."""
        if self.kind != "array":
            raise BatchSourceError(f"{self.what}: array_chunks needs an array source, not {self.kind}")
        data = self._data
        n = int(ops.shape(data)[0])
        if n == 0:
            raise BatchSourceError(f"{self.what} has no rows")
        order = None
        if self.shuffle and n > 1:
            if rng is None:
                raise ValueError("shuffling needs a generator (ops.generator(seed))")
            order = rng.permutation(n)
        bs = self.batch_size
        full = n // bs
        step = max(1, int(batches_per_chunk)) * bs
        for start in range(0, full * bs, step):
            stop = min(start + step, full * bs)
            rows = data[start:stop] if order is None else ops.take(data, order[start:stop], axis=0)
            yield rows, bs, (stop - start) // bs
        if full * bs < n:
            rows = data[full * bs:] if order is None else ops.take(data, order[full * bs:], axis=0)
            yield rows, n - full * bs, 1


def as_batch_source(data, batch_size: int, shuffle: bool = True, what: str = "training data",
                    dtype: str | None = None) -> BatchSource:
    if isinstance(data, BatchSource):
        return data
    return BatchSource(data, batch_size, shuffle, what, dtype)

