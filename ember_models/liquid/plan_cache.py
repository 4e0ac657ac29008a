"""Knowing when a cached inference plan is stale, at the cost of one integer compare per step.

Liquid cells keep a *plan*: weights fused and masked once (heads concatenated, masks applied,
constants folded) so a streaming step is a handful of array calls. A plan must be rebuilt
whenever a parameter or buffer changes. Those are replaced, never mutated, by everything in
ember (optimizers, ``load_state_dict``, ``substituted``, ``to_backend``), and all of them set the
attribute with ``object.__setattr__``, which still honours data descriptors on the class. So
every array attribute of a liquid module is a ``Tracked`` descriptor, and setting one bumps a
process-wide generation counter; a plan remembers the generation it was built at.

Changing an array in place (``cell.ff1_w[0, 0] = 1.0`` on NumPy) is not seen: call
``cell.refresh()`` afterwards.
"""
from __future__ import annotations

from functools import partial


class Generation:
    """Process-wide counter of array assignments to tracked attributes."""
    value = 0


class Tracked:
    """A data descriptor for an array attribute (parameter or buffer) of a liquid module."""

    def __set_name__(self, owner, name):
        self.name = name
        self.key = "_tracked_" + name

    def __get__(self, obj, objtype=None):
        if obj is None:
            return self
        try:
            return obj.__dict__[self.key]
        except KeyError:
            raise AttributeError(f"{type(obj).__name__} has no {self.name!r}") from None

    def __set__(self, obj, value):
        obj.__dict__[self.key] = value
        Generation.value += 1


def tracked(*names):
    """Class decorator: make each of ``names`` a ``Tracked`` attribute of the class."""
    def deco(cls):
        for n in names:
            d = Tracked()
            d.__set_name__(cls, n)
            setattr(cls, n, d)
        return cls
    return deco


class PlanCache:
    """Mixin for modules with a cached plan: ``self._plan()`` returns a fresh-enough plan,
    built by ``self._build_plan()`` from the current arrays."""

    def _plan(self):
        return self._cached()[1]

    def _cached(self):
        """(generation, plan, stepper), rebuilt when stale."""
        cached = self.__dict__.get("_plan_cache")
        if cached is None or cached[0] != Generation.value:
            plan = self._build_plan()
            cached = (Generation.value, plan, self._stepper(plan))
            object.__setattr__(self, "_plan_cache", cached)
        return cached

    def _stepper(self, plan):
        """The cheapest callable ``(x, h, ts) -> (y, new_h)`` running ``plan`` in inference
        (the per-event path calls it directly: every Python frame is ~1% of a step)."""
        return partial(self._run, plan)

    def refresh(self):
        """Drop the cached plan (after changing an array in place)."""
        object.__setattr__(self, "_plan_cache", None)
        return self

    def _build_plan(self):
        raise NotImplementedError
