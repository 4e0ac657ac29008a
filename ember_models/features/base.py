"""The one interface every feature implements, and the per-round inputs it sees.

A feature is evaluated one *round* at a time: a round holds at most one event for each of n keys
(the engine puts the r-th event of every key in round r). `Feature.step` updates the keys' state
in place and writes the feature's output for those n events into rows of the engine's float32
round buffer. Streaming and backfill both run
exactly this code, so they agree by construction; the engine only differs in how it groups rows
into rounds and where the state lives between calls.

State is a dict of NumPy arrays whose LAST axis is the key (`init_state(n_keys)`): every
elementwise op then runs with the keys as its long, contiguous inner loop (NumPy is 20-70x slower
when the inner dimension is a handful of fields or half-lives), and the active keys of a round
are the prefix view `a[..., :n]`. Per key the state is fixed size, so one key's state packs into a
fixed-layout record (see state_codec.py). State math is float64 (features are preprocessing, not
model math: they do not go through `ops`).
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar, Sequence

import numpy as np

from .running import elapsed

State = dict  # dict[str, np.ndarray], last axis = keys


class RoundInputs:
    """The events of one round: column i belongs to the i-th key of the round's state views.

    times:      (n,) float64 epoch seconds
    values:     (V, n) float64, all value fields; NaN or ±inf = missing
    categories: (C, n) int64 stable hashes (>= 0) of the categorical fields; -1 = missing
    """

    __slots__ = ("times", "values", "categories", "_cache", "_ones")

    def __init__(self, times: np.ndarray, values: np.ndarray, categories: np.ndarray,
                 ones: tuple[np.ndarray, np.ndarray] | None = None):
        """ones: (bool, float64) arrays of 1s at least (V, n) in size, given when the caller
        knows every value of the round is finite (a table without missing values: the engine
        checks the whole table once); then no round checks its values again."""
        self.times = times
        self.values = values
        self.categories = categories
        self._cache: dict = {}
        self._ones = ones

    def __len__(self) -> int:
        return self.times.shape[0]

    def observed(self, columns: tuple[int, ...] | None
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """For the value fields `columns` (None = all): (x, obs, x0, obsf), each
        (len(columns), n): obs marks finite values (bool), x0 is x with missing entries set to
        0, obsf is obs as 0.0/1.0 (arithmetic with a float mask is ~2x faster than with a bool
        one, which NumPy casts in buffered chunks). Cached: several features share the work."""
        hit = self._cache.get(columns)
        if hit is None:
            x = self.values if columns is None else self.values[list(columns)]
            if self._ones is not None:          # all observed: x0 is x (read only), masks 1
                c, n = x.shape
                hit = (x, self._ones[0][:c, :n], x, self._ones[1][:c, :n])
            else:
                obs = np.isfinite(x)
                hit = (x, obs, np.where(obs, x, 0.0), obs.astype(np.float64))
            self._cache[columns] = hit
        return hit

    def complete(self, columns: tuple[int, ...] | None) -> bool:
        """Whether every value of the fields `columns` is observed in this round (the usual
        case): features then skip their masking arithmetic, with the same results, since the
        masks are all 1."""
        if self._ones is not None:
            return True
        key = ("complete", columns)
        hit = self._cache.get(key)
        if hit is None:
            hit = self._cache[key] = bool(self.observed(columns)[1].all())
        return hit


class Feature(ABC):
    """A per-key incremental feature.

    Subclasses set `kind`, describe their per-key state in `state_spec()` and implement `step`.
    `fields` are the value (or categorical) field names the feature reads, `columns` their
    positions in `RoundInputs.values` (or `.categories`); `prefix` names the output columns.
    """

    kind: ClassVar[str]
    reads: ClassVar[str] = "values"  # "values", "categories" or "none"
    # The state array that is the key's clock, if the feature keeps one: NaN, then the max of
    # the times of all the key's events so far (whatever their values). Read it through
    # `clock`: the engine keeps one clock per key for all features that declare one.
    clock_state: ClassVar[str | None] = None

    def __init__(self, fields: Sequence[str] = (), columns: Sequence[int] = (), prefix: str = ""):
        self.fields = tuple(fields)
        self.columns = tuple(int(c) for c in columns)
        # (the same, as the array the compiled round loops take: *_kernel.py)
        self.column_index = np.array(self.columns, dtype=np.int64)
        self.prefix = prefix or self.kind
        # None means "all value columns, in order": lets RoundInputs share the cached arrays.
        self._cols_key: tuple[int, ...] | None = self.columns
        # Set by the engine when several features keep a clock: they then read one shared
        # clock, which the engine advances once per round after all of them.
        self.shared_clock = False

    def bind_all_columns(self, n_columns: int) -> None:
        """Called by the engine: if this feature reads every column in order, use the shared cache."""
        if self.columns == tuple(range(n_columns)):
            self._cols_key = None

    # -- description -------------------------------------------------------------------------
    @abstractmethod
    def names(self) -> list[str]:
        """One name per output column, e.g. "cpu.ewma_mean_h600s"."""

    @abstractmethod
    def state_spec(self) -> dict[str, tuple[tuple[int, ...], str, float]]:
        """name -> (per-key shape, dtype, initial value) of each state array; the key is the
        array's last axis, or its first where a 4th element "key_first" says so (for state
        read per key as a block, e.g. a ring of buckets: one key's block is then contiguous)."""

    @property
    def n_outputs(self) -> int:
        return len(self.names())

    def init_state(self, n_keys: int) -> State:
        return {name: np.full((n_keys, *spec[0]) if spec[3:] == ("key_first",)
                              else (*spec[0], n_keys), spec[2], dtype=spec[1])
                for name, spec in self.state_spec().items()}

    # -- evaluation --------------------------------------------------------------------------
    @abstractmethod
    def step(self, state: State, inp: RoundInputs, out: np.ndarray) -> None:
        """Advance the n keys of `state` (arrays whose last axis has size n, updated in place) by
        one event each and write the (n_outputs, n) outputs for these events into `out`
        (float32, rows of the engine's round buffer): compute in float64, then assign
        (`out[...] = x` rounds once; a float64 ufunc with a float32 `out=` rounds the same
        but runs 1.5-2x slower, through NumPy's buffered casting)."""

    def observed(self, inp: RoundInputs):
        return inp.observed(self._cols_key)

    def clock(self, state: State, inp: RoundInputs) -> tuple[np.ndarray, np.ndarray]:
        """(dt, t): seconds since the key's previous event (0 for its first; never negative:
        an event older than the previous one counts as simultaneous with it), and the key's
        clock after this event. Advances the clock, unless it is shared (the engine does it
        after the round). Both are read only (dt may be shared with other features)."""
        t_last = state[self.clock_state]
        if self.shared_clock:
            hit = inp._cache.get("clock")
            if hit is None:
                hit = inp._cache["clock"] = (elapsed(inp.times, t_last),
                                             np.fmax(t_last, inp.times))
            return hit
        dt = elapsed(inp.times, t_last)
        np.fmax(t_last, inp.times, out=t_last)
        return dt, t_last

    def complete(self, inp: RoundInputs) -> bool:
        return inp.complete(self._cols_key)

    def _field_names(self, *parts: str) -> list[str]:
        """Names "<field>.<prefix>_<part>" in (field, part) order, the order of a C-order
        (fields, parts, n) output reshaped to (fields*parts, n)."""
        return [f"{f}.{self.prefix}{'_' + p if p else ''}" for f in self.fields for p in parts]

    def __repr__(self) -> str:
        return f"{type(self).__name__}(prefix={self.prefix!r}, fields={list(self.fields)})"


class StateViews(dict):
    """One round's state: name -> the round's keys' view of each state array (a dict, as
    `Feature.step` expects)."""

    __slots__ = ()

    def __init__(self, sources, k0: int, k1: int):
        """sources: (name, C-contiguous array of all keys, whether the key is its first axis).
        (Built whenever a round has a different number of keys: most rounds of a streaming
        micro-batch's tail, so it is kept to one slice per array.)"""
        first_axis = slice(k0, k1)
        last_axis = (Ellipsis, first_axis)
        for name, arr, first in sources:     # (2-3x faster than dict.__init__ of pairs here)
            self[name] = arr[first_axis] if first else arr[last_axis]


def fmt_seconds(s: float) -> str:
    """600.0 -> "600s", 0.5 -> "0.5s": compact, stable output-column names."""
    return f"{s:g}s"
