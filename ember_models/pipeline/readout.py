"""Fitting the motor layer: ridge regression from sufficient statistics.

The reservoir is fixed, so its readout is linear least squares. Keeping X'X and X'Y (with a
bias column) makes the fit incremental: ``fit`` adds a whole history, ``partial_fit`` adds each
new batch after decaying the old statistics (``halflife`` in rows), so the readout follows
drift. Solved with conjugate gradients on ``ops`` (the system is small and symmetric positive
definite; ops has no linear solver).
"""
from __future__ import annotations

from .. import ops


class RidgeStats:
    def __init__(self, n_in: int, n_out: int, ridge: float, halflife: float):
        self.n_in, self.n_out = int(n_in), int(n_out)
        self.ridge, self.halflife = float(ridge), float(halflife)
        p = self.n_in + 1
        self.xtx = ops.zeros((p, p), "float64")
        self.xty = ops.zeros((p, self.n_out), "float64")
        self.rows = 0.0

    def add(self, x, y) -> None:
        """Rows x [m, n_in] with targets y [m, n_out]; older rows are decayed first."""
        m = int(ops.shape(x)[0])
        if m == 0:
            return
        decay = 0.5 ** (m / self.halflife)
        xb = ops.concatenate([ops.astype(x, "float64"), ops.ones((m, 1), "float64")], axis=1)
        y = ops.astype(y, "float64")
        self.xtx = decay * self.xtx + ops.matmul(ops.transpose(xb), xb)
        self.xty = decay * self.xty + ops.matmul(ops.transpose(xb), y)
        self.rows = decay * self.rows + m

    def solve(self):
        """(weights [n_in, n_out], bias [n_out]) minimising
        ‖Xw + b - Y‖² + ridge·‖w‖²."""
        p = self.n_in + 1
        pen = ops.ones((p,), "float64") * self.ridge
        pen = ops.concatenate([pen[:-1], ops.zeros((1,), "float64")])
        a = self.xtx + ops.eye(p, "float64") * pen + ops.eye(p, "float64") * 1e-9
        w = _conjugate_gradient(a, self.xty, iters=3 * p)
        return w[:-1], w[-1]

    def arrays(self) -> dict:
        return {"xtx": self.xtx, "xty": self.xty, "rows": ops.full((1,), self.rows, "float64")}

    def load(self, arrays: dict) -> None:
        self.xtx = ops.from_numpy(arrays["xtx"])
        self.xty = ops.from_numpy(arrays["xty"])
        self.rows = float(ops.to_numpy(arrays["rows"])[0])


def _conjugate_gradient(a, b, iters: int):
    """Solve a·w = b (a symmetric positive definite, b with several columns, each column its
    own CG run, all at once)."""
    w = ops.zeros(ops.shape(b), "float64")
    r = b
    p = r
    rs = ops.sum(r * r, axis=0)
    for _ in range(iters):
        ap = ops.matmul(a, p)
        denom = ops.sum(p * ap, axis=0)
        alpha = ops.where(denom > 0, rs / ops.where(denom > 0, denom, ops.ones_like(denom)),
                          ops.zeros_like(denom))
        w = w + alpha * p
        r = r - alpha * ap
        rs_new = ops.sum(r * r, axis=0)
        if float(ops.to_numpy(ops.max(rs_new))) < 1e-24:
            break
        beta = rs_new / ops.maximum(rs, 1e-300)
        p = r + beta * p
        rs = rs_new
    return w
