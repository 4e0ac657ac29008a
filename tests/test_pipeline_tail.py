"""Tail evidence against a plain per-pair reference: the kept K largest values of each (key,
raw score) with the first minimum evicted, the count of finite values, and the evidence of
each value above its kept tail once the tail is full — through the filling phase (young keys),
NaNs (no observation) and warm tails."""
from __future__ import annotations

import math

import numpy as np

from ember_models.pipeline.tail import EMPTY, TailEvidence


def _reference_step(state, raw, k, memory):
    n, s = raw.shape
    evidence = np.zeros((n, s))
    for i in range(n):
        for j in range(s):
            r, row = raw[i, j], state["tail_top"][i, j]
            old, n_before = row.min(), state["tail_n"][i, j]
            if np.isfinite(r):
                state["tail_n"][i, j] += 1.0
            if not r > old:
                continue
            if n_before >= k:
                beta = max(state["tail_sum"][i, j] / k - old, 1e-9 * (abs(old) + 1e-12))
                evidence[i, j] = (math.log10(min(n_before, memory)) - math.log10(k)
                                  + (r - old) / (beta * math.log(10.0)))
            state["tail_sum"][i, j] += r - old if old > EMPTY else r
            row[int(np.argmin(row))] = r
            state["tail_min"][i, j] = row.min()
            state["tail_slot"][i, j] = float(np.argmin(row))
    return evidence, evidence.max(axis=1)


def test_tail_steps_like_the_per_pair_reference_from_empty_to_warm():
    k, memory, n, s = 4, 50.0, 30, 3
    tail = TailEvidence(s, k, memory)
    g = np.random.default_rng(7)
    state = {name: np.tile(np.asarray(init, float), (n,) + tuple(shape)).reshape((n,) + shape)
             for name, (shape, init) in tail.layout().items()}
    ref = {name: v.copy() for name, v in state.items()}
    for t in range(40):
        raw = g.normal(size=(n, s)) * (1 + (g.random((n, s)) < 0.05) * 20)
        raw[g.random((n, s)) < 0.1] = np.nan
        raw[:5] = raw[0]                  # ties: equal values in the kept tails
        evidence, best = tail.step(state, raw)
        ref_evidence, ref_best = _reference_step(ref, raw, k, memory)
        np.testing.assert_allclose(evidence, ref_evidence, rtol=1e-12, atol=0)
        np.testing.assert_allclose(best, ref_best, rtol=1e-12, atol=0)
        for name in state:
            np.testing.assert_array_equal(state[name], ref[name], err_msg=f"{name} at {t}")
    assert (state["tail_n"] >= k).all() and (best > 0).any()
