"""ColumnBias: a bias repeated over n columns equals the broadcast column, on every backend."""
from __future__ import annotations

import numpy as np
import pytest

from ember_models import ops
from ember_models.backend import installed_backends, using_backend
from ember_models.column_bias import ColumnBias


@pytest.mark.parametrize("backend", installed_backends())
def test_repeat_equals_the_broadcast_column_grown_sliced_and_rebuilt(backend):
    rng = np.random.default_rng(0)
    with using_backend(backend):
        b = ops.from_numpy(rng.normal(size=(5, 1)).astype(np.float32))
        z = ops.from_numpy(rng.normal(size=(5, 7)).astype(np.float32))
        cols = ColumnBias()
        want = ops.to_numpy(z + b)
        for n in (7, 3, 12, 7):          # first, a prefix, grown, a prefix of the grown one
            got = cols.get("b", b, n)
            assert ops.shape(got) == (5, n)
            np.testing.assert_array_equal(ops.to_numpy(got), np.repeat(ops.to_numpy(b), n, 1))
        zz = ops.copy(z)
        zz += cols.get("b", b, 7)
        np.testing.assert_array_equal(ops.to_numpy(zz), want)      # the same sums, bit for bit
        b2 = ops.from_numpy(rng.normal(size=(5,)).astype(np.float32))   # replaced, 1-D
        np.testing.assert_array_equal(ops.to_numpy(cols.get("b", b2, 4)),
                                      np.repeat(ops.to_numpy(b2)[:, None], 4, 1))
