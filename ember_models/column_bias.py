"""Biases added to keys-last products as same-shape arrays instead of broadcast columns.

A keys-last product ``W · X`` is [r, n] (r units or features, n keys); its bias b is [r, 1].
NumPy adds a broadcast column a row at a time (the column's value as a scalar per row, one
inner-loop call per row): at r = 48, n = 1,250 float32 that is ~19 µs against ~6.5 µs for the
same add with b repeated as an [r, n] array, which NumPy runs as one flat loop. The sums are the
same numbers (each element is the same float32 addition), so the detector's per-step biases
(CfC layers, motor readout, RBM) are added this way. Measured on the 2-core AMD EPYC VM, NumPy
2.4.6, docs/performance.md "Model core, session 3 last round".
"""
from __future__ import annotations

from . import ops


class ColumnBias:
    """Caches each bias repeated over n columns, per name: ``get(name, b, n)`` returns b
    ([r, 1] or [r]) as an [r, n] array. The repeat is grown as needed and sliced to the first n
    columns (a prefix of keys: a view on NumPy and torch); it is rebuilt when ``b`` is another
    array than the one cached (training replaces a bias, never mutates it in place)."""

    __slots__ = ("_found",)

    def __init__(self):
        self._found: dict = {}

    def get(self, name, bias, n: int):
        found = self._found.get(name)
        if found is None or found[0] is not bias or ops.shape(found[1])[1] < n:
            width = max(n, 1) if found is None or found[0] is not bias \
                else max(n, ops.shape(found[1])[1])
            found = (bias, ops.tile(ops.reshape(bias, (-1, 1)), (1, width)))
            self._found[name] = found
        tile = found[1]
        return tile if ops.shape(tile)[1] == n else tile[:, :n]
