"""Backbone activations of the CfC cell (the names ncps accepts), written on ``ops``.

``lecun_tanh`` is 1.7159·tanh(0.666·x); the plan folds both constants into the neighbouring
weights, so at inference it costs one tanh (``FOLDABLE`` gives the (inner, outer) scales).
"""
from __future__ import annotations

from .. import ops

NAMES = ("lecun_tanh", "tanh", "relu", "silu", "gelu")
FOLDABLE = {"lecun_tanh": (0.666, 1.7159), "tanh": (1.0, 1.0), "relu": (1.0, 1.0)}

# Abramowitz & Stegun 7.1.26: |error| < 1.5e-7, below float32 resolution of gelu's outputs
_P = 0.3275911
_A = (0.254829592, -0.284496736, 1.421413741, -1.453152027, 1.061405429)


def erf(x):
    s = ops.sign(x)
    a = ops.abs(x)
    t = 1.0 / (1.0 + _P * a)
    poly = t * (_A[0] + t * (_A[1] + t * (_A[2] + t * (_A[3] + t * _A[4]))))
    return s * (1.0 - poly * ops.exp(-a * a))


def gelu(x):
    """The exact (erf) GELU, as torch.nn.GELU()."""
    return 0.5 * x * (1.0 + erf(x * 0.7071067811865476))


def silu(x):
    return x * ops.sigmoid(x)


def core(name: str):
    """The nonlinearity applied after folding: tanh for the tanh family, else the function."""
    if name not in NAMES:
        raise ValueError(f"unknown backbone activation {name!r}; choose one of {', '.join(NAMES)}")
    return {"lecun_tanh": ops_tanh, "tanh": ops_tanh, "relu": ops_relu,
            "silu": silu, "gelu": gelu}[name]


def ops_tanh(x):
    return ops.tanh(x)


def ops_relu(x):
    return ops.relu(x)
