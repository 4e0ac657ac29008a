"""The compiled bookkeeping loops against the NumPy operations they stand for.

``rolling_count_kernel.pairwise_sum`` must sum exactly as ``np.add.reduce`` sums a row (the
rolling windows' exact recomputation relies on it for bit-identical states): every length up
to several of NumPy's 128-value blocks, values of very different magnitudes, and strided reads.
"""
from __future__ import annotations

import numpy as np
import pytest

from ember_models.features.rolling_count_kernel import pairwise_sum


@pytest.mark.parametrize("n", [0, 1, 5, 7, 8, 9, 15, 16, 63, 64, 65, 127, 128, 129, 136, 255,
                               256, 300, 513, 1000, 1100])
def test_pairwise_sum_is_numpys_row_sum(n):
    g = np.random.default_rng(n)
    rows = g.normal(size=(200, n)) * 10.0 ** g.uniform(-8, 8, size=(200, n))
    expected = np.add.reduce(rows, axis=1)
    got = np.array([pairwise_sum(rows.reshape(-1), n, r * n, 1) for r in range(200)])
    assert np.array_equal(got.view(np.int64), expected.view(np.int64))      # bit for bit
    # a strided read (a column of a wider array) sums the same values the same way
    wide = np.ascontiguousarray(rows.T)
    got_strided = np.array([pairwise_sum(wide.reshape(-1), n, r, 200) for r in range(200)])
    assert np.array_equal(got_strided.view(np.int64), expected.view(np.int64))


def test_pairwise_sum_of_negative_zeros_is_numpys_positive_zero():
    zeros = np.array([-0.0] * 9)
    for n in (2, 9):
        got, expected = pairwise_sum(zeros, n, 0, 1), np.add.reduce(zeros[:n])
        assert got == 0.0 and np.signbit(got) == np.signbit(expected) == False  # noqa: E712
