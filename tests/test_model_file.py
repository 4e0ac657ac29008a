"""Model files: a directory with manifest.json and safetensors weights. Saved on one backend,
loaded on any other with equal outputs; every damaged file refused with an error that names the
file and the problem; no pickle anywhere."""
from __future__ import annotations

import ast
import hashlib
import json
import pickle
from pathlib import Path

import numpy as np
import pytest

from ember_models import model_file, nn, ops
from ember_models.backend import get_backend_object, installed_backends, using_backend
from ember_models.model_file import ModelFileError, load_module, save_module

BACKENDS = installed_backends()
X = np.random.default_rng(3).normal(size=(5, 4)).astype(np.float32)


@model_file.register
class ModelFileTestNet(nn.Module):
    def __init__(self, n_in=4, hidden=3, seed=0):
        super().__init__()
        if hidden <= 0:
            raise ValueError(f"hidden must be > 0, got {hidden}")
        self.n_in, self.hidden, self.seed = n_in, hidden, seed
        g = ops.generator(seed)
        self.w = nn.Parameter(g.normal((n_in, hidden)))
        self.b = nn.Parameter(g.normal((hidden,)))
        self.layers = nn.ModuleList([ModelFileTestHead(hidden, seed + 1)])
        self.register_buffer("threshold", ops.from_numpy(np.array(0.25, np.float32)))   # 0-d
        self.register_buffer("last", None)

    def get_config(self):
        return {"n_in": self.n_in, "hidden": self.hidden, "seed": self.seed}

    def forward(self, x):
        return self.layers[0](ops.tanh(ops.matmul(x, self.w) + self.b)) + self.threshold


@model_file.register
class ModelFileTestHead(nn.Module):
    def __init__(self, hidden=3, seed=0):
        super().__init__()
        self.hidden, self.seed = hidden, seed
        self.v = nn.Parameter(ops.generator(seed).normal((hidden, 1)))
        self.register_buffer("count", ops.arange(3))                                    # int64

    def get_config(self):
        return {"hidden": self.hidden, "seed": self.seed}

    def forward(self, h):
        return ops.sigmoid(ops.matmul(h, self.v))


def trained_net():
    """A net whose weights differ from a fresh one, so a load that silently re-initialises fails."""
    net = ModelFileTestNet(seed=7)
    net.w = net.w * 2.0 + 0.5
    net.last = ops.from_numpy(np.array([1.0, -1.0], np.float32))
    return net


def outputs(net):
    return ops.to_numpy(net(ops.from_numpy(X)))


@pytest.fixture
def saved(tmp_path):
    """A model saved under torch (the issue's case), with its expected outputs."""
    with using_backend("torch"):
        net = trained_net()
        save_module(net, tmp_path / "model", metadata={"note": "test"})
        return tmp_path / "model", outputs(net)


# ---- round trips --------------------------------------------------------------------------

@pytest.mark.parametrize("target", BACKENDS)
def test_saved_under_torch_loads_anywhere_with_equal_outputs(saved, target):
    path, expected = saved
    with using_backend(target):
        net = load_module(path)
        assert isinstance(net, ModelFileTestNet)
        arrays = [v for v in net.state_dict().values() if v is not None]
        assert all(get_backend_object(target).is_array(v) and type(v) is type(ops.zeros(1))
                   for v in arrays)
        assert ops.shape(net.threshold) == () and ops.dtype_name(net.layers[0].count) == "int64"
        assert ops.to_numpy(net.last).tolist() == [1.0, -1.0]
        np.testing.assert_allclose(outputs(net), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("source", BACKENDS)
@pytest.mark.parametrize("target", BACKENDS)
def test_every_backend_pair(tmp_path, source, target):
    with using_backend(source):
        net = trained_net()
        net.last = None
        save_module(net, tmp_path / "m")
        expected = outputs(net)
    with using_backend(target):
        loaded = load_module(tmp_path / "m", expected=ModelFileTestNet)
        assert loaded.last is None
        np.testing.assert_allclose(outputs(loaded), expected, rtol=1e-5, atol=1e-6)


def test_manifest_contents(saved):
    path, _ = saved
    manifest = json.loads((path / "manifest.json").read_text())
    assert manifest["format"] == "ember-model" and manifest["format_version"] == 1
    assert manifest["class"] == "ModelFileTestNet"
    assert manifest["config"] == {"n_in": 4, "hidden": 3, "seed": 7}
    assert manifest["dtype"] == "float32"
    assert manifest["none_buffers"] == []
    assert manifest["metadata"] == {"note": "test"}
    weights = path / "weights.safetensors"
    assert manifest["weights"] == {"weights.safetensors": {
        "sha256": hashlib.sha256(weights.read_bytes()).hexdigest(), "bytes": weights.stat().st_size}}
    assert model_file.sha256_file(weights) == manifest["weights"]["weights.safetensors"]["sha256"]


def test_directory_holds_only_manifest_and_safetensors(saved):
    path, _ = saved
    assert sorted(p.name for p in path.iterdir()) == ["manifest.json", "weights.safetensors"]
    # safetensors: 8-byte little-endian header length, then a JSON header naming the tensors
    data = (path / "weights.safetensors").read_bytes()
    n = int.from_bytes(data[:8], "little")
    header = json.loads(data[8:8 + n])
    assert set(header) - {"__metadata__"} == {"w", "b", "layers.0.v", "layers.0.count", "threshold", "last"}
    assert header["threshold"]["shape"] == [] and header["layers.0.count"]["dtype"] == "I64"


def test_unregistered_class_cannot_be_saved(tmp_path):
    class Unregistered(ModelFileTestHead):
        pass

    with pytest.raises(TypeError, match="Unregistered is not registered"):
        save_module(Unregistered(), tmp_path / "x")
    assert not (tmp_path / "x" / "manifest.json").exists()


def test_save_overwrites_atomically(tmp_path):
    save_module(ModelFileTestNet(seed=1), tmp_path / "m")
    net = trained_net()
    save_module(net, tmp_path / "m")
    np.testing.assert_allclose(outputs(load_module(tmp_path / "m")), outputs(net), rtol=1e-6)
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["manifest.json", "weights.safetensors"]


# ---- damaged files: each refused with a ModelFileError naming the file and the problem ----------

def _edit_manifest(path, fn):
    m = json.loads((path / "manifest.json").read_text())
    fn(m)
    (path / "manifest.json").write_text(json.dumps(m))


def _flip_byte(path):
    w = path / "weights.safetensors"
    data = bytearray(w.read_bytes())
    data[len(data) - 3] ^= 0x40              # inside the tensor data, same length
    w.write_bytes(bytes(data))


def _rehash(path):
    """Make the manifest agree with whatever is in the weight file now (a consistent forgery)."""
    w = path / "weights.safetensors"
    data = w.read_bytes()
    _edit_manifest(path, lambda m: m["weights"]["weights.safetensors"].update(
        sha256=hashlib.sha256(data).hexdigest(), bytes=len(data)))


def _shape_mismatch(path):
    # a weight file from a net of another size, with a manifest that checksums it correctly
    other = path.parent / "other"
    save_module(ModelFileTestNet(hidden=5), other)
    (path / "weights.safetensors").write_bytes((other / "weights.safetensors").read_bytes())
    _rehash(path)


def _garbage_with_valid_checksum(path):
    (path / "weights.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}......")
    _rehash(path)


DAMAGE = {
    "truncated": (lambda p: (p / "weights.safetensors").write_bytes(
        (p / "weights.safetensors").read_bytes()[:-10]), "weights.safetensors", "truncated"),
    "corrupted byte": (_flip_byte, "weights.safetensors", "checksum mismatch"),
    "tampered checksum": (lambda p: _edit_manifest(p, lambda m: m["weights"]["weights.safetensors"].update(
        sha256="0" * 64)), "weights.safetensors", "checksum mismatch"),
    "missing weight file": (lambda p: (p / "weights.safetensors").unlink(), "weights.safetensors",
                            "weight file missing"),
    "missing manifest": (lambda p: (p / "manifest.json").unlink(), "manifest.json", "missing"),
    "manifest not JSON": (lambda p: (p / "manifest.json").write_text('{"format": "ember-model",'),
                          "manifest.json", "not valid JSON"),
    "manifest not an object": (lambda p: (p / "manifest.json").write_text("[1, 2]"),
                               "manifest.json", "not an ember model manifest"),
    "other format": (lambda p: _edit_manifest(p, lambda m: m.update(format="onnx")),
                     "manifest.json", "not an ember model manifest"),
    "newer format_version": (lambda p: _edit_manifest(p, lambda m: m.update(format_version=2)),
                             "manifest.json", "format_version 2 is newer"),
    "format_version not int": (lambda p: _edit_manifest(p, lambda m: m.update(format_version="1")),
                               "manifest.json", "format_version missing or not an integer"),
    "no config": (lambda p: _edit_manifest(p, lambda m: m.pop("config")), "manifest.json", "no 'config'"),
    "unknown class": (lambda p: _edit_manifest(p, lambda m: m.update({"class": "os.system"})),
                      "manifest.json", "unknown model class 'os.system'"),
    "config not fitting": (lambda p: _edit_manifest(p, lambda m: m["config"].update(depth=3)),
                           "manifest.json", "config does not fit ModelFileTestNet"),
    "config value refused": (lambda p: _edit_manifest(p, lambda m: m["config"].update(hidden=-1)),
                             "manifest.json", "config does not fit ModelFileTestNet"),
    "config not an object": (lambda p: _edit_manifest(p, lambda m: m.update(config=[4, 3])),
                             "manifest.json", "config"),
    "weights not an object": (lambda p: _edit_manifest(p, lambda m: m.update(weights=["weights.safetensors"])),
                              "manifest.json", "weights"),
    "weight entry not an object": (lambda p: _edit_manifest(p, lambda m: m.update(
        weights={"weights.safetensors": "abc"})), "manifest.json", "weights.safetensors"),
    "path traversal": (lambda p: _edit_manifest(p, lambda m: m.update(
        weights={"../weights.safetensors": {"sha256": "0", "bytes": 1}})), "manifest.json", "not allowed"),
    "shape mismatch": (_shape_mismatch, "weights.safetensors", "w: shape (4, 5) in the state dict, (4, 3)"),
    "missing tensor": (lambda p: (_edit_manifest(p, lambda m: m.update(none_buffers=["extra"]))),
                       "weights.safetensors", "unexpected keys: extra"),
    "not safetensors": (_garbage_with_valid_checksum, "weights.safetensors", "not a readable safetensors"),
}


@pytest.mark.parametrize("case", sorted(DAMAGE))
def test_damaged_model_is_refused_naming_file_and_problem(saved, case):
    path, _ = saved
    damage, file_name, problem = DAMAGE[case]
    damage(path)
    with using_backend("numpy"):
        with pytest.raises(ModelFileError) as info:
            load_module(path)
    err = info.value
    assert Path(err.path) == path / file_name
    assert str(path / file_name) in str(err) and problem in str(err), str(err)


def test_missing_directory_and_wrong_expected_class(saved, tmp_path):
    with pytest.raises(ModelFileError, match="no such model directory") as info:
        load_module(tmp_path / "nowhere")
    assert str(tmp_path / "nowhere") in str(info.value)
    path, _ = saved
    with pytest.raises(ModelFileError, match="holds a ModelFileTestNet, expected a ModelFileTestHead"):
        load_module(path, expected=ModelFileTestHead)


def test_model_file_error_is_a_value_error():
    assert issubclass(ModelFileError, ValueError)


# ---- no pickle ----------------------------------------------------------------------------

def test_loading_never_unpickles(saved, monkeypatch):
    def refuse(*a, **k):
        raise AssertionError("pickle used while loading a model file")

    for name in ("load", "loads", "Unpickler"):
        monkeypatch.setattr(pickle, name, refuse)
    path, expected = saved
    with using_backend("numpy"):
        np.testing.assert_allclose(outputs(load_module(path)), expected, rtol=1e-5, atol=1e-6)


def test_source_has_no_pickle_path():
    """model_file and nn import no pickle and never call torch.load; any np.load has
    allow_pickle=False."""
    root = Path(model_file.__file__).parent
    for py in [root / "model_file.py", root / "nn.py", root / "optim.py"]:
        tree = ast.parse(py.read_text())
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [a.name for a in node.names] + [getattr(node, "module", None) or ""]
                assert not any(n.split(".")[0] in ("pickle", "cPickle", "dill", "joblib") for n in names), py
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                target = ast.unparse(node.func)
                assert target not in ("torch.load", "pickle.load", "pickle.loads"), f"{py}: {target}"
                if target in ("np.load", "numpy.load"):
                    kw = {k.arg: k.value for k in node.keywords}
                    assert "allow_pickle" in kw and ast.literal_eval(kw["allow_pickle"]) is False, py
