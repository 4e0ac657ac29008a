"""SGD and Adam on ``ops`` against hand-written NumPy references (float64), with analytic
gradients on every backend and with ``ops.value_and_grad`` on torch and mlx."""
from __future__ import annotations

import numpy as np
import pytest

from ember_models import nn, ops
from ember_models.backend import installed_backends, using_backend
from ember_models.optim import SGD, Adam

BACKENDS = installed_backends()
AUTODIFF = [b for b in BACKENDS if b in ("torch", "mlx")]
STEPS = 5
rng = np.random.default_rng(21)
X = rng.normal(size=(8, 3)).astype(np.float32)
Y = rng.normal(size=(8, 2)).astype(np.float32)
W0 = rng.normal(size=(3, 2)).astype(np.float32)
B0 = np.array([0.5, -0.25], np.float32)


@pytest.fixture(params=BACKENDS)
def backend(request):
    with using_backend(request.param):
        yield request.param


class Linear(nn.Module):
    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(ops.from_numpy(W0))
        self.b = nn.Parameter(ops.from_numpy(B0))
        self.register_buffer("untouched", ops.ones(2))

    def forward(self, x):
        return ops.matmul(x, self.w) + self.b


def mse(model, x, y):
    return ops.mean(ops.square(model(x) - y))


def np_grads(p):
    """Gradient of mean((x w + b - y)^2), by hand."""
    r = X.astype(np.float64) @ p["w"] + p["b"] - Y
    return {"w": 2 * X.T @ r / r.size, "b": 2 * r.sum(0) / r.size}


def ops_grads(model):
    g = np_grads({k: ops.to_numpy(v).astype(np.float64) for k, v in model.named_parameters()})
    return {k: ops.from_numpy(v.astype(np.float32)) for k, v in g.items()}


# ---- NumPy references: torch.optim's conventions (SGD: L2 decay added to the gradient, first
# ---- velocity = gradient; Adam: bias correction, decoupled AdamW decay) plus global-norm
# ---- clipping. Checked once against torch.optim.SGD/AdamW to rtol 1e-10 (not kept as a test:
# ---- building the first torch optimizer imports torch._dynamo, ~4 s of CPU). ----------------

def ref_sgd(lr, momentum=0.0, weight_decay=0.0, steps=STEPS):
    p = {"w": W0.astype(np.float64), "b": B0.astype(np.float64)}
    vel = {}
    for _ in range(steps):
        g = np_grads(p)
        for k in p:
            gk = g[k] + weight_decay * p[k]
            if momentum:
                vel[k] = gk if k not in vel else momentum * vel[k] + gk
                gk = vel[k]
            p[k] = p[k] - lr * gk
    return p


def ref_adam(lr, b1=0.9, b2=0.999, eps=1e-8, weight_decay=0.0, clip_norm=None, steps=STEPS):
    p = {"w": W0.astype(np.float64), "b": B0.astype(np.float64)}
    m = {k: np.zeros_like(v) for k, v in p.items()}
    v = {k: np.zeros_like(x) for k, x in p.items()}
    for t in range(1, steps + 1):
        g = np_grads(p)
        if clip_norm is not None:
            norm = np.sqrt(sum(np.sum(x * x) for x in g.values()))
            if norm > clip_norm:
                g = {k: x * clip_norm / norm for k, x in g.items()}
        for k in p:
            m[k] = b1 * m[k] + (1 - b1) * g[k]
            v[k] = b2 * v[k] + (1 - b2) * g[k] ** 2
            mhat, vhat = m[k] / (1 - b1 ** t), v[k] / (1 - b2 ** t)
            p[k] = p[k] - lr * (mhat / (np.sqrt(vhat) + eps) + weight_decay * p[k])
    return p


def assert_params(model, expected):
    for k in ("w", "b"):
        np.testing.assert_allclose(ops.to_numpy(getattr(model, k)), expected[k], rtol=1e-4, atol=1e-5,
                                   err_msg=k)
    assert ops.to_numpy(model.untouched).tolist() == [1.0, 1.0]      # buffers are not trained


SGD_CASES = [dict(), dict(momentum=0.9), dict(weight_decay=0.1), dict(momentum=0.9, weight_decay=0.1)]
ADAM_CASES = [dict(), dict(weight_decay=0.1), dict(clip_norm=0.5), dict(weight_decay=0.1, clip_norm=0.5),
              dict(b1=0.5, b2=0.9, eps=1e-3)]


@pytest.mark.parametrize("kw", SGD_CASES, ids=str)
def test_sgd_matches_numpy_reference(backend, kw):
    model = Linear()
    opt = SGD(model, lr=0.1, **kw)
    for _ in range(STEPS):
        opt.step(ops_grads(model))
    assert_params(model, ref_sgd(0.1, **kw))
    assert all(type(p) is type(ops.zeros(1)) for p in model.parameters())


@pytest.mark.parametrize("kw", ADAM_CASES, ids=str)
def test_adam_matches_numpy_reference(backend, kw):
    model, kw = Linear(), dict(kw)          # the parametrised dict is shared by all backends
    b = dict(betas=(kw.pop("b1"), kw.pop("b2"))) if "b1" in kw else {}
    opt = Adam(model, lr=0.05, **b, **kw)
    for _ in range(STEPS):
        opt.step(ops_grads(model))
    if b:
        kw.update(b1=b["betas"][0], b2=b["betas"][1])
    assert_params(model, ref_adam(0.05, **kw))


def test_the_clip_norm_cases_really_clip():
    g = np_grads({"w": W0.astype(np.float64), "b": B0.astype(np.float64)})
    assert np.sqrt(sum(np.sum(x * x) for x in g.values())) > 0.5 * 2     # well above 0.5
    clipped, free = ref_adam(0.05, clip_norm=0.5), ref_adam(0.05)
    assert not np.allclose(clipped["w"], free["w"])
    same = ref_adam(0.05, clip_norm=1e6)
    np.testing.assert_array_equal(same["w"], free["w"])


@pytest.mark.parametrize("name", AUTODIFF)
@pytest.mark.parametrize("make, ref", [
    (lambda m: SGD(m, lr=0.1, momentum=0.9, weight_decay=0.01),
     lambda: ref_sgd(0.1, momentum=0.9, weight_decay=0.01)),
    (lambda m: Adam(m, lr=0.05, weight_decay=0.01, clip_norm=0.5),
     lambda: ref_adam(0.05, weight_decay=0.01, clip_norm=0.5)),
], ids=["sgd", "adam"])
def test_training_with_value_and_grad(name, make, ref):
    with using_backend(name):
        model = Linear()
        opt = make(model)
        x, y = ops.from_numpy(X), ops.from_numpy(Y)

        def loss(params, x, y):
            with model.substituted(params):
                return mse(model, x, y)

        step = ops.value_and_grad(loss)
        losses = []
        for _ in range(STEPS):
            value, grads = step(opt.params(), x, y)
            assert set(grads) == {"w", "b"}
            losses.append(ops.item(value))
            opt.step(grads)
        assert_params(model, ref())
        assert losses[-1] < losses[0]


def test_missing_gradient_leaves_the_parameter(backend):
    for opt_cls in (SGD, Adam):
        model = Linear()
        opt = opt_cls(model, lr=0.1)
        opt.step({"w": ops.ones((3, 2))})
        assert ops.to_numpy(model.b).tolist() == B0.tolist()
        assert not np.allclose(ops.to_numpy(model.w), W0)


@pytest.mark.parametrize("lr", [0.0, -1e-3])
def test_learning_rate_must_be_positive(lr):
    with pytest.raises(ValueError, match="learning rate"):
        SGD(Linear(), lr=lr)
    with pytest.raises(ValueError, match="learning rate"):
        Adam(Linear(), lr=lr)
