"""The module system: parameters, buffers (None included), nested modules, lists and dicts of
modules, state dicts (strict and not), train/eval, moving between backends, substitution."""
from __future__ import annotations

import numpy as np
import pytest

from ember_models import nn, ops
from ember_models.backend import get_backend_object, installed_backends, using_backend

BACKENDS = installed_backends()


@pytest.fixture(params=BACKENDS)
def backend(request):
    with using_backend(request.param):
        yield request.param


class Affine(nn.Module):
    """y = x w + b, with a step counter (0-d buffer) and a lazily set None buffer."""

    def __init__(self, n_in, n_out, seed=0):
        super().__init__()
        g = ops.generator(seed)
        self.w = nn.Parameter(g.normal((n_in, n_out), std=0.5))
        self.b = nn.Parameter(ops.zeros(n_out))
        self.register_buffer("steps", ops.from_numpy(np.array(0.0, np.float32)))
        self.register_buffer("last", None)

    def forward(self, x):
        return ops.matmul(x, self.w) + self.b


class Net(nn.Module):
    def __init__(self, seed=0):
        super().__init__()
        self.scale = nn.Parameter(ops.ones(1))
        self.encoder = Affine(4, 3, seed)
        self.blocks = nn.ModuleList([Affine(3, 3, seed + 1), Affine(3, 3, seed + 2)])
        self.heads = nn.ModuleDict({"score": Affine(3, 1, seed + 3), "aux": Affine(3, 2, seed + 4)})
        self.register_buffer("mean", ops.zeros(4))

    def forward(self, x):
        h = ops.tanh(self.encoder(x - self.mean))
        for block in self.blocks:
            h = ops.tanh(block(h))
        return self.heads["score"](h) * self.scale


PARAM_NAMES = ["scale", "encoder.w", "encoder.b", "blocks.0.w", "blocks.0.b", "blocks.1.w",
               "blocks.1.b", "heads.score.w", "heads.score.b", "heads.aux.w", "heads.aux.b"]
BUFFER_NAMES = ["mean", "encoder.steps", "encoder.last", "blocks.0.steps", "blocks.0.last",
                "blocks.1.steps", "blocks.1.last", "heads.score.steps", "heads.score.last",
                "heads.aux.steps", "heads.aux.last"]
X = np.random.default_rng(5).normal(size=(6, 4)).astype(np.float32)


def out(net):
    return ops.to_numpy(net(ops.from_numpy(X)))


def test_named_parameters_buffers_and_modules(backend):
    net = Net()
    assert [k for k, _ in net.named_parameters()] == PARAM_NAMES       # registration order
    assert [k for k, _ in net.named_buffers()] == BUFFER_NAMES
    assert len(net.parameters()) == len(PARAM_NAMES)
    assert all(ops.is_array(p) for p in net.parameters())
    assert net.num_parameters() == 1 + (12 + 3) + 2 * (9 + 3) + (3 + 1) + (6 + 2)
    assert [k for k, _ in net.named_modules()] == [
        "", "encoder", "blocks", "blocks.0", "blocks.1", "heads", "heads.score", "heads.aux"]
    assert net.children() == [net.encoder, net.blocks, net.heads]


def test_none_buffer_is_a_buffer_and_in_the_state_dict(backend):
    a = Affine(2, 2)
    assert dict(a.named_buffers())["last"] is None
    state = a.state_dict()
    assert list(state) == ["w", "b", "steps", "last"] and state["last"] is None
    a.last = ops.ones(2)                     # assigning keeps it a buffer
    assert [k for k, _ in a.named_buffers()] == ["steps", "last"]
    assert ops.is_array(a.state_dict()["last"])


def test_reassignment_keeps_or_changes_the_kind(backend):
    a = Affine(2, 2)
    a.w = ops.zeros((2, 2))                  # a plain array into a parameter slot: still a parameter
    assert [k for k, _ in a.named_parameters()] == ["w", "b"]
    a.b = nn.Parameter(ops.ones(2))          # re-registering does not duplicate
    assert [k for k, _ in a.named_parameters()] == ["w", "b"]
    net = Net()
    net.encoder = None                       # a module replaced by a non-module is unregistered
    assert "encoder.w" not in dict(net.named_parameters())
    net.encoder = Affine(4, 3)
    assert list(dict(net.named_parameters()))[-2:] == ["encoder.w", "encoder.b"]


def test_module_without_super_init_is_a_clear_error():
    class Bad(nn.Module):
        def __init__(self):
            self.w = nn.Parameter(ops.zeros(2))

    with pytest.raises(RuntimeError, match=r"Bad.__init__ must call super\(\).__init__\(\)"):
        Bad()


def test_module_list_and_dict(backend):
    net = Net()
    assert len(net.blocks) == 2 and net.blocks[0] is list(net.blocks)[0] and net.blocks[-1] is net.blocks[1]
    net.blocks.append(Affine(3, 3))
    assert len(net.blocks) == 3 and "blocks.2.w" in dict(net.named_parameters())
    assert net.heads.keys() == ["score", "aux"] and len(net.heads) == 2
    assert net.heads.items()[1] == ("aux", net.heads["aux"])
    with pytest.raises(KeyError):
        net.heads["missing"]
    with pytest.raises(ValueError, match="may not contain"):
        net.heads["a.b"] = Affine(1, 1)


def test_state_dict_round_trip(backend):
    a, b = Net(seed=1), Net(seed=2)
    assert not np.allclose(out(a), out(b))
    state = a.state_dict()
    assert list(state) == PARAM_NAMES + BUFFER_NAMES
    b.load_state_dict(state)
    np.testing.assert_array_equal(out(a), out(b))


@pytest.mark.parametrize("source", BACKENDS)
def test_load_state_dict_converts_from_any_backend_and_numpy(backend, source):
    with using_backend(source):
        src = Net(seed=3)
        state = src.state_dict()
        expected = out(src)
    dst = Net(seed=4)
    dst.load_state_dict(state)
    assert all(type(p) is type(ops.zeros(1)) for p in dst.parameters())
    np.testing.assert_allclose(out(dst), expected, rtol=1e-5, atol=1e-6)
    numpy_state = {k: None if v is None else ops.to_numpy(v) for k, v in state.items()}
    Net(seed=5).load_state_dict(numpy_state)


def test_strict_load_names_missing_unexpected_and_misshaped_keys(backend):
    net = Net()
    before = out(net)
    state = dict(Net(seed=9).state_dict())
    del state["encoder.w"], state["heads.aux.steps"]
    state["encoder.extra"] = ops.zeros(2)
    state["blocks.0.b"] = ops.zeros(5)
    with pytest.raises(nn.StateDictError) as info:
        net.load_state_dict(state)
    msg = str(info.value)
    assert "missing keys: encoder.w, heads.aux.steps" in msg
    assert "unexpected keys: encoder.extra" in msg
    assert "blocks.0.b: shape (5,) in the state dict, (3,) in the module" in msg
    assert "Net" in msg
    assert isinstance(info.value, KeyError)
    np.testing.assert_array_equal(out(net), before)          # nothing was loaded


def test_non_strict_load_skips_missing_and_unexpected(backend):
    net, donor = Net(seed=1), Net(seed=2)
    state = {"encoder.w": donor.encoder.w, "nonsense": ops.zeros(1)}
    net.load_state_dict(state, strict=False)
    np.testing.assert_array_equal(ops.to_numpy(net.encoder.w), ops.to_numpy(donor.encoder.w))
    assert not np.allclose(ops.to_numpy(net.blocks[0].w), ops.to_numpy(donor.blocks[0].w))
    with pytest.raises(nn.StateDictError, match="encoder.b: shape"):
        net.load_state_dict({"encoder.b": ops.zeros(7)}, strict=False)   # shapes still checked


def test_load_into_and_from_none_buffers(backend):
    a = Affine(2, 2)
    state = a.state_dict()
    state["last"] = ops.from_numpy(np.array([1.0, 2.0], np.float32))
    a.load_state_dict(state)                  # any shape fits a None slot
    assert ops.to_numpy(a.last).tolist() == [1.0, 2.0]
    state["last"] = None
    a.load_state_dict(state)
    assert a.last is None


def test_train_eval_recurse(backend):
    net = Net()
    assert all(m.training for _, m in net.named_modules())
    assert net.eval() is net
    assert not any(m.training for _, m in net.named_modules())
    net.train()
    assert all(m.training for _, m in net.named_modules())
    net.blocks.train(False)
    assert net.training and not net.blocks[1].training and net.heads["aux"].training


@pytest.mark.parametrize("target", BACKENDS)
def test_to_backend_moves_every_array(backend, target):
    net = Net()
    net.encoder.last = ops.ones(3)
    expected = out(net)
    shapes = {k: ops.shape(v) for k, v in net.state_dict().items() if v is not None}
    assert net.to_backend(target) is net
    tgt = get_backend_object(target)
    arrays = {k: v for k, v in net.state_dict().items() if v is not None}
    assert len(arrays) == len(PARAM_NAMES) + 5 + 2                 # 5 steps, mean, encoder.last
    for k, v in arrays.items():
        assert tgt.is_array(v) and type(v) is type(tgt.zeros(1)), f"{k}: {type(v)}"
        assert tgt.shape(v) == shapes[k], k                          # 0-d steps stay 0-d
    assert net.blocks[0].last is None
    with using_backend(target):
        np.testing.assert_allclose(out(net), expected, rtol=1e-5, atol=1e-6)


def test_to_backend_without_name_uses_the_current_backend(backend):
    with using_backend("numpy"):
        net = Net()
    net.to_backend()
    assert all(type(p) is type(ops.zeros(1)) for p in net.parameters())


def test_substituted_restores_even_on_exception(backend):
    net = Net()
    w0, b0 = net.encoder.w, net.encoder.b
    zero = ops.zeros((4, 3))
    with net.substituted({"encoder.w": zero}) as m:
        assert m is net and net.encoder.w is zero and net.encoder.b is b0
    assert net.encoder.w is w0
    with pytest.raises(RuntimeError, match="boom"):
        with net.substituted({"encoder.w": zero, "blocks.1.b": ops.ones(3)}):
            raise RuntimeError("boom")
    assert net.encoder.w is w0 and ops.to_numpy(net.blocks[1].b).tolist() == [0.0, 0.0, 0.0]


@pytest.mark.parametrize("name", [b for b in BACKENDS if b != "numpy"])
def test_substituted_lets_autodiff_see_the_module(name):
    with using_backend(name):
        net = Affine(4, 2)
        x = ops.from_numpy(X)

        def loss(params, x):
            with net.substituted(params):
                return ops.sum(net(x))

        _, grads = ops.value_and_grad(loss)(dict(net.named_parameters()), x)
        # d/dw sum(x w + b) = x^T 1, d/db = batch size
        np.testing.assert_allclose(ops.to_numpy(grads["w"]), np.repeat(X.sum(0)[:, None], 2, 1), rtol=1e-5)
        np.testing.assert_allclose(ops.to_numpy(grads["b"]), [6.0, 6.0])


def test_forward_and_get_config_must_be_defined():
    m = nn.Module()
    with pytest.raises(NotImplementedError, match="forward"):
        m(1)
    with pytest.raises(NotImplementedError, match="get_config"):
        m.get_config()
