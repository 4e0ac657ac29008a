"""The detector's per-key pre-pass over a run of rounds as one compiled loop (numba).

Standardising an event's features (the key's running mean and variance) and measuring its
elapsed time in the key's typical intervals depend on nothing but the key's own earlier events:
no model is involved. ``core.DetectorCore.run_rounds`` therefore does them for all the rounds
of a chunk before the reservoir's round loop, here, instead of as ~30 NumPy calls per round
(~100 µs a round whatever its number of keys: a streaming round holds ~90-140 keys).

Round r of the chunk is the columns ``starts[r]:starts[r + 1]`` of the features, its keys the
first ``starts[r + 1] - starts[r]`` columns of the per-key state (the keys still running are a
prefix: pipeline.events.KeyGrid). The arithmetic is float32 for the standardisation (like the
features) and float64 for the time bookkeeping, element by element in the order the NumPy
version before it used (ember_models/pipeline/core.py until session 11), with one difference:
the forgetting factor 1 − a is float32 arithmetic for every key, where that version rounded
it from float64 once all keys were past the plain-average phase (at most an ulp apart).
"""
from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True, error_model="numpy")
def standardise_rounds(f, starts, t, mean, var, n_seen, last_t, dt_mean, a_std, clip,
                       u, ts, n_before, dev):
    """f [d, >= c] float32 features (C-contiguous; the run's c = starts[-1] columns first);
    starts [R + 1] int64; t [c] float64 epoch seconds; the keys' state, updated in place:
    mean, var [d, keys] float32, n_seen, last_t, dt_mean [keys] float64. Fills u [d, c]
    (standardised, clipped to ±clip), ts [c] float32 (elapsed time in the key's typical
    intervals, at most 100), n_before [c] (the key's events before this one) and, unless it
    has no rows, dev [d, c] (each feature's deviation in the key's standard deviations,
    unclipped, a tenth of the usual level at least: the alert's reasons).
    (``error_model="numpy"``: a division by zero gives inf/NaN as in NumPy instead of a check
    per division, which kept the compiler from vectorising the loops; none occurs here, the
    standard deviation is at least 1e-6.)"""
    d, keys = f.shape[0], mean.shape[1]
    reasons = dev.shape[0] > 0
    c1 = np.float32(1e-6)
    tenth = np.float32(0.1)
    one = np.float32(1.0)
    hi = np.float32(clip)
    lo = -hi
    rate = np.empty(keys, np.float32)
    keep = np.empty(keys, np.float32)
    first = np.empty(keys, np.bool_)
    for r in range(starts.shape[0] - 1):
        s0, m = starts[r], starts[r + 1] - starts[r]
        for i in range(m):
            p = s0 + i
            n = n_seen[i]
            n_before[p] = n
            # the rate: plain averages while the key is young, then exponential forgetting
            rate[i] = np.float32(max(1.0 / (n + 1.0), a_std))
            keep[i] = one - rate[i]
            first[i] = not n > 0.5
            # elapsed time against the key's typical interval (its running mean)
            dt = max(t[p] - last_t[i], 0.0)
            dm = dt_mean[i]
            if first[i]:
                dt = 0.0
            elif n > 1.5:
                dm = dm + max(1.0 / n, 0.01) * (dt - dm)
            else:                                      # the second event: its interval
                dm = dt
            e = dt / max(dm, 1e-12) if dm > 0 else 1.0
            ts[p] = np.float32(min(e, 100.0))
            dt_mean[i] = dm
            last_t[i] = t[p]
            n_seen[i] = n + 1.0
        # feature by feature, the keys inner, over row slices: unit-stride runs indexed from
        # 0 (no negative-index checks), which the compiler can vectorise
        for j in range(d):
            fr, ur = f[j, s0:s0 + m], u[j, s0:s0 + m]
            mr, vr = mean[j, :m], var[j, :m]
            dr = dev[j, s0:s0 + m] if reasons else ur
            for i in range(m):
                x = fr[i]
                mu = x if first[i] else mr[i]          # a key's first event is its mean
                dl = x - mu
                am = abs(mu)
                sd = c1 * am
                sd += c1
                sd += np.sqrt(vr[i])
                z = dl / sd
                ur[i] = hi if z > hi else (lo if z < lo else z)
                if reasons:
                    dr[i] = dl / max(sd, tenth * am)
                ad = rate[i] * dl
                mr[i] = mu + ad
                ad *= dl                               # var' = (1 - a)·(var + a·dl·dl)
                ad += vr[i]
                ad *= keep[i]
                vr[i] = ad
