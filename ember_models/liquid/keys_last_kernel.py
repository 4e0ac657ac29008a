"""``KeysLastReservoir.run_rounds`` on the NumPy backend: a chunk of rounds as one compiled loop
(numba).

The reservoir's round in NumPy (keys_last.py, ``step``) is ~60 array calls whose cost hardly
depends on the number of keys: ~140-150 µs a round at a streaming round's ~140 keys, the calls
more than the arithmetic. Here the whole chunk of rounds is one call (~50 µs a round at 138
keys, one BLAS thread; docs/performance.md, session 13). Per round and branch the keys due (all
of them for a stride-1 branch) have their input and layer rows gathered into a contiguous
scratch array, each layer's product ``W'·[input, own state]`` is one BLAS call (numba's
``np.dot``: scipy's sgemm, ~5x faster than a loop that reloads and stores a row of the product
per multiply-add), the gate is a loop the compiler vectorises along the keys, and the layers'
rows are scattered back. A strided branch so steps only its due keys, where the NumPy version
steps every key and selects.

Same formulas as ``cfc_plan.keys_last_update`` and ``KeysLastReservoir.step``; the rounding
differs: a strided branch's products run over the due keys only, and tanh is the rational
approximation below (Eigen's, evaluated in float64: ≤ 3.5 float32 ulp from the true tanh, ≤
2.4e-7 absolute, where NumPy's float32 tanh is ≤ 1.4 ulp; both within the float32 products'
own rounding). States stepped here and by ``step`` agree to ~1e-6, the bookkeeping (counts,
elapsed time, pooled sums) exactly (tests/test_liquid_keys_last_kernel.py).
``error_model="numpy"``: no zero-divisor checks, which would keep the loops scalar.
"""
from __future__ import annotations

import numpy as np
from numba import njit

# Eigen's float tanh (generic_fast_tanh_float), a 13/6 rational on [-7.9, 7.9], evaluated in
# float64 (so that its own error is the approximation's, not float32 rounding's)
_CLAMP = 7.90531110763549805
_A = (-2.76076847742355e-16, 2.00018790482477e-13, -8.60467152213735e-11,
      5.12229709037114e-08, 1.48572235717979e-05, 6.37261928875436e-04, 4.89352455891786e-03)
_B = (1.19825839466702e-06, 1.18534705686654e-04, 2.26843463243900e-03, 4.89352518554385e-03)
A13, A11, A9, A7, A5, A3, A1 = _A
B6, B4, B2, B0 = _B


@njit(inline="always", error_model="numpy")
def tanh32(x):
    """tanh of a float32, as float32 (see the module docstring)."""
    v = np.float64(x)
    c = min(max(v, -_CLAMP), _CLAMP)
    x2 = c * c
    p = ((((((x2 * A13 + A11) * x2 + A9) * x2 + A7) * x2 + A5) * x2 + A3) * x2 + A1) * c
    q = ((x2 * B6 + B4) * x2 + B2) * x2 + B0
    r = p / q
    # ±1 beyond 9 (where float32 tanh is ±1: the clamped rational stops 4 ulp short); x itself
    # below 4e-4 (tanh x = x to float32 precision) and for NaN (NaN stays NaN, as in NumPy)
    r = 1.0 if v > 9.0 else r
    r = -1.0 if v < -9.0 else r
    r = v if (abs(v) < 0.0004 or v != v) else r
    return np.float32(r)


@njit(cache=True, nogil=True, error_model="numpy")
def tanh_array(x, out):
    """``tanh32`` over a float32 array (tests compare it with NumPy's)."""
    xf, of = x.ravel(), out.ravel()
    for i in range(xf.size):
        of[i] = tanh32(xf[i])


@njit(inline="always", nogil=True, error_model="numpy")
def _chain(S, ts, layers, first, last, w, b):
    """Layers ``first:last`` of a branch on the columns of S (C-contiguous), in place: each
    reads rows [a, e) (its input block or the previous layer's rows, then its own) and writes
    its new state into its own rows [o0, o0 + n). ts: each column's elapsed time."""
    cols = S.shape[1]
    for li in range(first, last):
        w0, b0, n, a, e, o0, default = (layers[li, 0], layers[li, 1], layers[li, 2],
                                        layers[li, 3], layers[li, 4], layers[li, 5],
                                        layers[li, 6])
        # W'·[input, own state] by BLAS (numba's np.dot: scipy's sgemm): ~5x faster than a
        # loop here, which reloads and stores a row of the product per multiply-add
        z = np.dot(w[w0:w0 + 4 * n * (e - a)].reshape((4 * n, e - a)), S[a:e])
        for o in range(n):
            b1, b2, b3, b4 = b[b0 + o], b[b0 + n + o], b[b0 + 2 * n + o], b[b0 + 3 * n + o]
            z1, z2, z3, z4, so = z[o], z[n + o], z[2 * n + o], z[3 * n + o], S[o0 + o]
            for k in range(cols):
                f1 = tanh32(z1[k] + b1)
                f2 = tanh32(z2[k] + b2)
                g = tanh32((z3[k] + b3) * ts[k] + (z4[k] + b4))
                if default:       # f1 + σ·(f2 − f1) with σ = (1 + g)/2
                    so[k] = np.float32(0.5) * ((f1 + f2) + g * (f2 - f1))
                else:             # no_gate: f1 + σ·f2
                    so[k] = f1 + np.float32(0.5) * (f2 + g * f2)


@njit(inline="always", nogil=True, error_model="numpy")
def _outputs(X, m, spans, dst, a):
    """The branches' outputs of the first m keys into dst[:, a:a + m]."""
    r = 0
    for s in range(spans.shape[0]):
        for row in range(spans[s, 0], spans[s, 1]):
            for k in range(m):
                dst[r, a + k] = X[row, k]
            r += 1


@njit(cache=True, nogil=True, error_model="numpy")
def reservoir_rounds(X, starts, u, ts, outs, after, f, branches, strides, layers, w, b,
                     spans, book, by_steps, mean_pool, Sbuf, due_cols, ets):
    """Advance the keys of X (keys-last working array, float32, C-contiguous) by the rounds
    ``starts`` [R + 1] (round r: columns starts[r]:starts[r + 1] of u [f, c] and ts [c], its
    keys the first starts[r + 1] - starts[r] columns of X). Writes the outputs before each
    event into outs [n_out, c] and, unless it has no columns, after it into after.
    branches [k, 7] int64: every, input rows a, b, first layer, last layer + 1, the layers'
    rows r0, r1; strides [k] float64; layers [L, 7] int64: weight offset, bias offset, n,
    input rows a, e, own row o0, default gate; w, b: the layers' W' [4n, e - a] (row-major)
    and b [4n], flat float32; spans [s, 2]: the output rows; book: the first row of count
    (k rows), elapsed (k), sums (k·f). Scratch: Sbuf [rows · keys] float32, due_cols [keys]
    int64, ets [keys] float32."""
    rows = X.shape[0]
    k = branches.shape[0]
    c0, e0, s0 = book, book + k, book + 2 * k
    want_after = after.shape[1] > 0
    for r in range(starts.shape[0] - 1):
        a0, a1 = starts[r], starts[r + 1]
        m = a1 - a0
        _outputs(X, m, spans, outs, a0)
        for j in range(k):           # count and elapsed of every branch, as in step
            cj, ej = X[c0 + j], X[e0 + j]
            for kk in range(m):
                cj[kk] += np.float32(1.0)
                ej[kk] += ts[a0 + kk]
        for j in range(k):
            every = branches[j, 0] != 0
            ia, first, last = branches[j, 1], branches[j, 3], branches[j, 4]
            r0, r1 = branches[j, 5], branches[j, 6]
            sr = s0 + j * f
            if not every and mean_pool:      # the running sums of the inputs
                for i in range(f):
                    xs, ui = X[sr + i], u[i]
                    for kk in range(m):
                        xs[kk] += ui[a0 + kk]
            nd = 0
            for kk in range(m):      # the keys due (every one for a stride-1 branch)
                if every or (X[c0 + j, kk] if by_steps else X[e0 + j, kk]) >= strides[j]:
                    due_cols[nd] = kk
                    nd += 1
            if nd == 0:
                continue
            # the due keys' input and layer rows gathered into S [rows, nd] (contiguous, as
            # BLAS takes it), stepped there, the layers' rows scattered back
            pooled = mean_pool and not every
            S = Sbuf[:rows * nd].reshape((rows, nd))
            for i in range(f):
                Si = S[ia + i]
                for q in range(nd):
                    kk = due_cols[q]
                    Si[q] = X[sr + i, kk] / X[c0 + j, kk] if pooled else u[i, a0 + kk]
            for row in range(r0, r1):
                Sr, Xr = S[row], X[row]
                for q in range(nd):
                    Sr[q] = Xr[due_cols[q]]
            for q in range(nd):
                kk = due_cols[q]
                ets[q] = ts[a0 + kk] if every else X[e0 + j, kk]
            _chain(S, ets, layers, first, last, w, b)
            for row in range(r0, r1):
                Sr, Xr = S[row], X[row]
                for q in range(nd):
                    Xr[due_cols[q]] = Sr[q]
            for q in range(nd):
                kk = due_cols[q]
                if pooled:
                    for i in range(f):
                        X[sr + i, kk] = 0.0
                X[c0 + j, kk] = 0.0
                X[e0 + j, kk] = 0.0
        if want_after:
            _outputs(X, m, spans, after, a0)
