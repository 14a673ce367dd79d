"""Models from elsewhere: factories, torchvision, timm, weights files, TorchScript and torch.export files.

Numbers are compared on small seeded networks (float64 where the pipeline
is exact); every refusal is checked for its one-line message, and hostile
files for running nothing (no marker file appears).
"""

from __future__ import annotations

import builtins
import json
import os
import pickle
import re
import struct
import sys
import textwrap
import warnings
import zipfile
from pathlib import Path

import pytest
import torch
import typer
from torch import nn
from typer.testing import CliRunner

from wpgdkit.cli._common import OneLineErrorGroup
from wpgdkit.cli._modelopts import InputShapeOpt, MeanOpt, ModelKwargsOpt, ModelOpt, StdOpt, WeightsOpt, model_source
from wpgdkit.errors import WpgdkitError
from wpgdkit.models.archive import (
    ExportedModel,
    FileModel,
    ModelLoadError,
    load_model_file,
    model_file_kind,
    read_state_dict,
)
from wpgdkit.models.foreign import (
    MODEL_KINDS,
    ModelSource,
    OutputWidthError,
    build_foreign_model,
    check_model_fits,
    load_weights,
    parse_floats,
    parse_model_kwargs,
    parse_shape,
)

MNIST = (1, 28, 28)

# A factory module as a user would write it, with a sibling import.
FACTORY_SOURCE = textwrap.dedent('''
    import torch
    from torch import nn

    from helpers import WIDTH


    class Net(nn.Module):
        def __init__(self, width=WIDTH, num_classes=10, channels=1):
            super().__init__()
            self.conv = nn.Conv2d(channels, width, 3, padding=1)
            self.bn = nn.BatchNorm2d(width)
            self.head = nn.Linear(width, num_classes)

        def forward(self, x):
            x = torch.relu(self.bn(self.conv(x)))
            return self.head(x.mean(dim=(2, 3)))

        @classmethod
        def create(cls, **kwargs):
            return cls(**kwargs)


    def build(width=WIDTH, num_classes=10, channels=1, seed=0, double=True):
        torch.manual_seed(seed)
        net = Net(width, num_classes, channels)
        # Non-trivial batch-norm statistics, so that loading them is tested too.
        net.bn.running_mean.uniform_(-0.5, 0.5)
        net.bn.running_var.uniform_(0.5, 1.5)
        return net.double() if double else net


    def not_a_model():
        return {"logits": torch.zeros(1)}


    def broken():
        raise RuntimeError("kaput")


    class Pair(nn.Module):
        def forward(self, x):
            return x.flatten(1)[:, :10], x


    class Flat(nn.Module):
        def forward(self, x):
            return x.flatten(1)[:, :10].unsqueeze(-1)


    class FixedBatch(nn.Module):
        def forward(self, x):
            return x.reshape(2, 784)[:, :10]


    class Logits(nn.Module):
        def forward(self, x):
            return {"logits": x.flatten(1)[:, :10]}
''')


@pytest.fixture
def factory_file(tmp_path) -> Path:
    folder = tmp_path / "user_models"
    folder.mkdir()
    (folder / "helpers.py").write_text("WIDTH = 4\n")
    path = folder / "my_models.py"
    path.write_text(FACTORY_SOURCE)
    return path


def _x(batch: int = 3, shape=MNIST, dtype=torch.float64, seed: int = 1) -> torch.Tensor:
    return torch.rand(batch, *shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def _source(path: Path, factory: str = "build", **changes) -> ModelSource:
    return ModelSource(f"{path}:{factory}", **changes)


# --- specs and parsing ----------------------------------------------------------------------------


@pytest.mark.parametrize(("spec", "kind"), [
    ("small-cnn", "registry"), ("wrn-28-10", "registry"), ("pkg.models:build", "module"),
    ("models:Net.create", "module"), ("dir/my_models.py:build", "file"), ("torchvision:resnet18", "torchvision"),
    ("timm:resnet10t", "timm"), ("robustbench:Wong2020Fast", "robustbench"), ("runs/model.pt2", "model-file"),
    ("model.bin", "model-file"), ("C:\\models\\net.pt2", "model-file"), ("C:\\models\\m.py:build", "file"),
])
def test_kind_follows_the_syntax(spec, kind):
    assert ModelSource(spec).kind() == kind
    assert kind in MODEL_KINDS


@pytest.mark.parametrize(("spec", "fragment"), [
    ("my_models.py", "name its factory too, my_models.py:FACTORY"),
    ("a/b:build", "neither a module name nor a .py file"),
    ("models:not-a-name", "is not a factory name"),
    ("timm:", "needs a name after 'timm:'"),
    ("  ", "model must be a registry name"),
])
def test_malformed_specs_are_refused(spec, fragment):
    with pytest.raises(WpgdkitError, match=re.escape(fragment)):
        ModelSource(spec)


def test_sources_are_hashable_records():
    a = ModelSource("torchvision:resnet18", {"num_classes": 10, "widths": [1, 2]}, weights="w.pt",
                    input_shape="3x32x32", mean=[0.5], std=[0.25])
    b = ModelSource("torchvision:resnet18", {"widths": [1, 2], "num_classes": 10}, weights="w.pt",
                    input_shape=(3, 32, 32), mean=(0.5,), std=(0.25,))
    assert a == b and hash(a) == hash(b) and len({a, b}) == 1
    record = a.to_dict()
    assert json.loads(json.dumps(record)) == record
    assert record == {"kind": "torchvision", "spec": "torchvision:resnet18",
                      "kwargs": {"num_classes": 10, "widths": [1, 2]}, "weights": "w.pt",
                      "input_shape": [3, 32, 32], "mean": [0.5], "std": [0.25]}
    assert ModelSource.from_dict({**record, "weights_sha256": "ab"}) == a
    assert a.without_weights().weights is None and a.without_weights().spec == a.spec
    fresh = a.kwargs.copy()
    fresh["widths"].append(3)  # a factory mutating its arguments does not change the source
    assert a.kwargs["widths"] == [1, 2]


def test_source_values_are_checked():
    with pytest.raises(WpgdkitError, match="mean and std go together"):
        ModelSource("mlp", mean=(0.5,))
    with pytest.raises(WpgdkitError, match="std must be positive"):
        ModelSource("mlp", mean=(0.5,), std=(0.0,))
    with pytest.raises(WpgdkitError, match="JSON values"):
        ModelSource("mlp", {"f": object()})
    with pytest.raises(WpgdkitError, match="a model source record must be an object with a spec"):
        ModelSource.from_dict({"kind": "timm"})


def test_parsers():
    assert parse_shape("3,32,32") == parse_shape("3x32x32") == parse_shape("3×32×32") == parse_shape([3, 32, 32]) \
        == (3, 32, 32)
    assert parse_shape("784") == (784,)
    for bad in ("3,a", "", "0,28,28", "3.5,2", [True, 2]):
        with pytest.raises(WpgdkitError, match="input_shape must be positive sizes"):
            parse_shape(bad)
    assert parse_floats("0.49, 0.48,0.45", name="mean") == (0.49, 0.48, 0.45)
    with pytest.raises(WpgdkitError, match="mean must be numbers separated by commas"):
        parse_floats("0.4;0.5", name="mean")
    with pytest.raises(WpgdkitError, match="finite"):
        parse_floats("nan", name="mean")
    with pytest.raises(WpgdkitError, match="std must be positive"):
        parse_floats("0.2,-1", name="std", positive=True)
    assert parse_model_kwargs(None) == parse_model_kwargs("  ") == {}
    assert parse_model_kwargs('{"num_classes": 10, "drop": [0.1]}') == {"num_classes": 10, "drop": [0.1]}
    with pytest.raises(WpgdkitError, match="model_kwargs must be a JSON object .* got a list"):
        parse_model_kwargs("[1, 2]")
    with pytest.raises(WpgdkitError, match="model_kwargs must be a JSON object"):
        parse_model_kwargs("{num_classes: 10}")
    with pytest.raises(WpgdkitError, match="NaN is not a JSON number"):
        parse_model_kwargs('{"a": NaN}')


# --- factories: files and modules -----------------------------------------------------------------


def test_a_file_factory_builds_with_its_kwargs_and_sibling_imports(factory_file):
    path_before = list(sys.path)
    model = build_foreign_model(_source(factory_file, kwargs={"width": 6, "num_classes": 5}), num_classes=5,
                                input_shape=MNIST)
    assert sys.path == path_before  # the file's folder was on sys.path only while it ran
    assert not model.training
    assert model.conv.out_channels == 6
    assert model(_x()).shape == (3, 5)
    again = build_foreign_model(_source(factory_file, kwargs={"width": 6, "num_classes": 5}))
    assert torch.equal(model(_x()), again(_x()))  # the factory seeds itself: same numbers


def test_two_files_of_the_same_name_do_not_collide(tmp_path):
    # Same file name, same sibling module name, different contents: each file gets its own.
    for name, classes in (("a", 3), ("b", 4)):
        folder = tmp_path / name
        folder.mkdir()
        (folder / "sizes.py").write_text(f"CLASSES = {classes}\n")
        (folder / "net.py").write_text("from torch import nn\nfrom sizes import CLASSES\n"
                                       "def build():\n    return nn.Sequential(nn.Flatten(), nn.Linear(784, CLASSES))\n")
    a = build_foreign_model(ModelSource(f"{tmp_path / 'a' / 'net.py'}:build"), num_classes=3, input_shape=MNIST)
    b = build_foreign_model(ModelSource(f"{tmp_path / 'b' / 'net.py'}:build"), num_classes=4, input_shape=MNIST)
    assert a[1].out_features == 3 and b[1].out_features == 4
    assert "sizes" not in sys.modules


def test_a_module_factory_with_a_dotted_attribute(factory_file, monkeypatch):
    monkeypatch.syspath_prepend(str(factory_file.parent))
    monkeypatch.delitem(sys.modules, "my_models", raising=False)
    monkeypatch.delitem(sys.modules, "helpers", raising=False)
    model = build_foreign_model(ModelSource("my_models:Net.create", {"num_classes": 3}), num_classes=3,
                                input_shape=MNIST)
    assert type(model).__name__ == "Net" and model.head.out_features == 3


def test_missing_modules_and_failing_imports(tmp_path, monkeypatch):
    with pytest.raises(ModelLoadError, match="model no_such_module_xyz:build: no module named 'no_such_module_xyz' "
                                             "on the Python path"):
        build_foreign_model(ModelSource("no_such_module_xyz:build"))
    (tmp_path / "bad_import.py").write_text("import no_such_dependency_xyz\n")
    (tmp_path / "raises.py").write_text("raise ValueError('boom\\nsecond line')\n")
    (tmp_path / "syntax.py").write_text("def build(:\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ModelLoadError, match="importing bad_import failed: ModuleNotFoundError: No module named "
                                             "'no_such_dependency_xyz'"):
        build_foreign_model(ModelSource("bad_import:build"))
    with pytest.raises(ModelLoadError, match=r"importing raises failed: ValueError: boom$"):
        build_foreign_model(ModelSource("raises:build"))
    with pytest.raises(ModelLoadError, match=r"importing .*syntax.py failed: SyntaxError: "):
        build_foreign_model(ModelSource(f"{tmp_path / 'syntax.py'}:build"))
    with pytest.raises(WpgdkitError, match="model file .*nowhere.py not found"):
        build_foreign_model(ModelSource(f"{tmp_path / 'nowhere.py'}:build"))


def test_factory_problems(factory_file):
    with pytest.raises(ModelLoadError, match=r"has no 'biuld'; did you mean 'build'\? its callables: Fixed"
                                             r"Batch, Flat, Logits, Net, Pair, broken, build, not_a_model"):
        build_foreign_model(_source(factory_file, "biuld"))
    with pytest.raises(ModelLoadError, match="Net has no 'make'"):
        build_foreign_model(_source(factory_file, "Net.make"))
    with pytest.raises(ModelLoadError, match=r"the factory raised RuntimeError: kaput$"):
        build_foreign_model(_source(factory_file, "broken"))
    with pytest.raises(ModelLoadError, match=r"the factory returned a dict \(keys: logits\), not a torch.nn.Module"):
        build_foreign_model(_source(factory_file, "not_a_model"))
    with pytest.raises(ModelLoadError, match=r"the factory cannot be called with model_kwargs \{\"depth\": 3\}: "
                                             r"got an unexpected keyword argument 'depth'"):
        build_foreign_model(_source(factory_file, kwargs={"depth": 3}))
    with pytest.raises(ModelLoadError, match="WIDTH is a int, not a callable factory"):
        build_foreign_model(_source(factory_file, "WIDTH"))


# --- fitting the data -----------------------------------------------------------------------------


def test_models_that_do_not_fit_the_data(factory_file):
    with pytest.raises(OutputWidthError, match=r"my_models.py:build outputs 10 logits per input; the data has "
                                               r"3 classes$"):
        build_foreign_model(_source(factory_file), num_classes=3, input_shape=MNIST)
    with pytest.raises(ModelLoadError, match=r"rejects inputs of shape 1×28×28 \(expected by the data\): "
                                             r"RuntimeError: .*channels"):
        build_foreign_model(_source(factory_file, kwargs={"channels": 3}), num_classes=10, input_shape=MNIST)
    with pytest.raises(ModelLoadError, match=r"returns a tuple of 2 items for a batch of inputs; wpgdkit needs a "
                                             r"tensor of logits of shape \(N, 10\)"):
        build_foreign_model(_source(factory_file, "Pair"), num_classes=10, input_shape=MNIST)
    with pytest.raises(ModelLoadError, match=r"returns a dict \(keys: logits\)"):
        build_foreign_model(_source(factory_file, "Logits"), num_classes=10, input_shape=MNIST)
    with pytest.raises(ModelLoadError, match=r"returns a tensor of shape 2×10×1 for a batch of 2; wpgdkit needs "
                                             r"logits of shape 2×10"):
        build_foreign_model(_source(factory_file, "Flat"), num_classes=10, input_shape=MNIST)
    with pytest.raises(ModelLoadError, match=r"takes a batch of 2 inputs but not of 3: it has a fixed batch size"):
        build_foreign_model(_source(factory_file, "FixedBatch"), num_classes=10, input_shape=MNIST)


def test_check_model_fits_restores_the_mode_and_leaves_statistics_alone():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(4, 6), nn.BatchNorm1d(6), nn.Linear(6, 3)).train()
    before = net[2].running_mean.clone()
    check_model_fits(net, input_shape=(4,), num_classes=3)
    assert net.training and torch.equal(net[2].running_mean, before)


def test_the_data_shape_and_the_source_shape_must_agree(factory_file):
    source = _source(factory_file, input_shape=(1, 28, 28))
    assert build_foreign_model(source, num_classes=10)(_x()).shape == (3, 10)  # the source's shape is used
    with pytest.raises(WpgdkitError, match="input_shape: the model source says 1×28×28 but the data has inputs "
                                           "of shape 3×32×32"):
        build_foreign_model(source, num_classes=10, input_shape=(3, 32, 32))


def test_mean_and_std_wrap_the_network_for_pixel_space_input(factory_file):
    net = build_foreign_model(_source(factory_file))
    model = build_foreign_model(_source(factory_file, mean=(0.5,), std=(0.25,)), num_classes=10, input_shape=MNIST)
    assert type(model).__name__ == "NormalizedModel" and model.model_name == f"{factory_file}:build"
    x = _x()
    assert torch.equal(model(x), net((x - 0.5) / 0.25))
    with pytest.raises(WpgdkitError, match="normalisation mean has 2 values; the input 1×28×28 needs 1 or 1"):
        build_foreign_model(_source(factory_file, mean=(0.5, 0.5), std=(0.25, 0.25)), num_classes=10,
                            input_shape=MNIST)


# --- weights --------------------------------------------------------------------------------------


@pytest.fixture
def trained(factory_file, tmp_path):
    """A seeded network (seed 0), its state_dict in a .pt and a .safetensors file."""
    save_file = pytest.importorskip("safetensors.torch").save_file  # the safetensors extra

    net = build_foreign_model(_source(factory_file))
    state = net.state_dict()
    torch.save(state, tmp_path / "weights.pt")
    save_file({k: v.contiguous() for k, v in state.items()}, str(tmp_path / "weights.safetensors"))
    return net, tmp_path


@pytest.mark.parametrize("file_name", ["weights.pt", "weights.safetensors"])
def test_weights_load_exactly(trained, factory_file, file_name):
    net, folder = trained
    x = _x()
    other = build_foreign_model(_source(factory_file, kwargs={"seed": 1}))
    assert not torch.equal(other(x), net(x))
    loaded = build_foreign_model(_source(factory_file, kwargs={"seed": 1}, weights=str(folder / file_name)),
                                 num_classes=10, input_shape=MNIST)
    assert torch.equal(loaded(x), net(x))
    # recognised by content: the same bytes under another name load the same
    renamed = folder / "weights.bin"
    renamed.write_bytes((folder / file_name).read_bytes())
    assert model_file_kind(renamed) == "state-dict"
    assert all(torch.equal(v, net.state_dict()[k]) for k, v in read_state_dict(renamed).items())


@pytest.mark.parametrize("wrap", [
    lambda s: {"state_dict": s, "epoch": 3, "optimizer": {"lr": 0.1}},
    lambda s: {"model": {f"module.{k}": v for k, v in s.items()}, "epoch": 3},
    lambda s: {"model_state_dict": s},
    lambda s: {"net": {f"_orig_mod.{k}": v for k, v in s.items()}},
], ids=["state_dict", "model+DataParallel", "model_state_dict", "net+compile"])
def test_common_wrappers_and_prefixes_are_undone(trained, factory_file, wrap):
    net, folder = trained
    torch.save(wrap(net.state_dict()), folder / "wrapped.pth")
    loaded = build_foreign_model(_source(factory_file, kwargs={"seed": 1}, weights=str(folder / "wrapped.pth")))
    assert torch.equal(loaded(_x()), net(_x()))


def test_weights_that_do_not_fit(trained, factory_file):
    net, folder = trained
    state = net.state_dict()
    state.pop("head.bias")
    state["extra.weight"] = torch.zeros(1)
    state["conv.weight"] = torch.zeros(8, 1, 3, 3)
    torch.save(state, folder / "bad.pt")
    with pytest.raises(ModelLoadError, match=re.escape(
            "does not fit the model: 1 missing (head.bias); 1 unexpected (extra.weight); 1 of another shape "
            "(conv.weight: model 4×1×3×3, file 8×1×3×3)")):
        build_foreign_model(_source(factory_file, weights=str(folder / "bad.pt")))
    wide = build_foreign_model(_source(factory_file, kwargs={"num_classes": 3}))
    with pytest.raises(ModelLoadError, match=r"weights: .*weights.pt does not fit the model: 2 of another shape "
                                             r"\(head.weight: model 3×4, file 10×4, head.bias: model 3, file 10\)"):
        load_weights(wide, folder / "weights.pt")


def test_files_that_are_not_state_dicts(trained, factory_file):
    net, folder = trained
    cases = {
        "plain.pt": ({"epoch": 3, "lr": 0.1}, "is not a state_dict: its entry 'epoch' is a int, not a tensor"),
        "list.pt": ([torch.zeros(1)], "holds a list, not a state_dict"),
        "empty.pt": ({}, "holds an empty dict"),
        "nan.pt": ({**net.state_dict(), "head.bias": torch.full((10,), float("nan"), dtype=torch.float64)},
                   "holds NaN or infinite values (head.bias)"),
    }
    for name, (payload, fragment) in cases.items():
        torch.save(payload, folder / name)
        with pytest.raises(ModelLoadError, match=re.escape(fragment)):
            build_foreign_model(_source(factory_file, weights=str(folder / name)))


def test_truncated_and_corrupt_weights(trained, factory_file):
    net, folder = trained
    whole = (folder / "weights.pt").read_bytes()
    (folder / "truncated.pt").write_bytes(whole[: len(whole) // 2])
    (folder / "junk.pt").write_bytes(b"not a torch file at all")
    sft = (folder / "weights.safetensors").read_bytes()
    (folder / "truncated.safetensors").write_bytes(sft[: len(sft) - 7])
    (folder / "junk.safetensors").write_bytes(b"\x00" * 40)
    cases = {"truncated.pt": r"is not readable \(truncated or not a torch file",
             "junk.pt": "is not a state_dict file wpgdkit reads",
             "truncated.safetensors": r"is not a valid safetensors file \(",
             "junk.safetensors": r"is not a valid safetensors file \("}
    for name, pattern in cases.items():
        with pytest.raises(ModelLoadError, match=rf"^weights: .*{name} {pattern}"):
            build_foreign_model(_source(factory_file, weights=str(folder / name)))
    with pytest.raises(WpgdkitError, match="weights .*missing.pt not found"):
        build_foreign_model(_source(factory_file, weights=str(folder / "missing.pt")))
    with pytest.raises(WpgdkitError, match="weights .* is a folder, not a file"):
        build_foreign_model(_source(factory_file, weights=str(folder)))


class _System:
    """A pickle that runs a shell command when unpickled."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


class _Exec:
    """A pickle that runs Python code when unpickled."""

    def __init__(self, code: str) -> None:
        self.code = code

    def __reduce__(self):
        return (builtins.exec, (self.code,))


def test_a_malicious_pickle_as_weights_runs_nothing(tmp_path, factory_file):
    marker = tmp_path / "MARKER"
    for protocol in (2, 4):
        path = tmp_path / f"model{protocol}.pt"
        path.write_bytes(pickle.dumps(_System(f"touch {marker}"), protocol=protocol))
        with pytest.raises(ModelLoadError) as info:
            build_foreign_model(_source(factory_file, weights=str(path)))
        message = str(info.value)
        assert "\n" not in message and message.startswith(f"weights: {path} refused: it holds code or objects")
        assert "system" in message
    # the same inside a torch.save zip
    torch.save({"w": _System(f"touch {marker}")}, tmp_path / "zipped.pt")
    with pytest.raises(ModelLoadError, match="refused: it holds code or objects"):
        read_state_dict(tmp_path / "zipped.pt")
    assert not marker.exists()


def test_whole_models_given_as_weights_are_pointed_to_the_model_option(trained, factory_file, scripted):
    net, folder = trained
    torch.save({"format": "wpgdkit-checkpoint", "version": 2, "model": {}}, folder / "run.pt")
    assert model_file_kind(folder / "run.pt") == "wpgdkit-checkpoint"
    with pytest.raises(ModelLoadError, match=r"weights: .*run.pt is a wpgdkit checkpoint, which names its own "
                                             r"architecture; give it as the model file"):
        build_foreign_model(_source(factory_file, weights=str(folder / "run.pt")))
    with pytest.raises(ModelLoadError, match=r"is a TorchScript archive, a whole model, not a state_dict; give it "
                                             r"as the model \(--model .*\) instead of --weights"):
        build_foreign_model(_source(factory_file, weights=str(scripted[1])))


# --- torchvision, timm, robustbench, the registry -------------------------------------------------

CIFAR = (3, 32, 32)


def test_torchvision_resnet18(tmp_path):
    torch.manual_seed(0)
    model = build_foreign_model(ModelSource("torchvision:resnet18", {"num_classes": 10}), num_classes=10,
                                input_shape=CIFAR)
    assert type(model).__name__ == "ResNet" and not model.training
    x = _x(2, CIFAR, torch.float32)
    torch.save(model.state_dict(), tmp_path / "r18.pth")
    torch.manual_seed(1)
    again = build_foreign_model(ModelSource("torchvision:resnet18", {"num_classes": 10},
                                            weights=str(tmp_path / "r18.pth")))
    assert torch.equal(again(x), model(x))


def test_torchvision_problems():
    with pytest.raises(OutputWidthError, match=re.escape(
            "model torchvision:resnet18 outputs 1000 logits per input; the data has 10 classes "
            "(set model_kwargs {\"num_classes\": 10})")):
        build_foreign_model(ModelSource("torchvision:resnet18"), num_classes=10, input_shape=CIFAR)
    with pytest.raises(ModelLoadError, match=r"torchvision has no model 'resnet181' \(close: resnet18.*\); list them "
                                             r"with: python -c"):
        build_foreign_model(ModelSource("torchvision:resnet181"))
    with pytest.raises(WpgdkitError, match="model_kwargs: 'weights' is not allowed for torchvision models"):
        build_foreign_model(ModelSource("torchvision:resnet18", {"weights": "DEFAULT"}))
    with pytest.raises(ModelLoadError, match="the factory raised TypeError: .*unexpected keyword argument 'depth'"):
        build_foreign_model(ModelSource("torchvision:resnet18", {"depth": 3}))


def test_timm_builds_and_fits():
    pytest.importorskip("timm")
    model = build_foreign_model(ModelSource("timm:resnet10t", {"num_classes": 3}), num_classes=3, input_shape=CIFAR)
    assert model(_x(2, CIFAR, torch.float32)).shape == (2, 3)
    with pytest.raises(ModelLoadError, match=r"timm has no model 'resnet10x' \(close: resnet10t"):
        build_foreign_model(ModelSource("timm:resnet10x"))
    for key in ("pretrained", "checkpoint_path"):
        with pytest.raises(WpgdkitError, match=f"model_kwargs: '{key}' is not allowed for timm models"):
            build_foreign_model(ModelSource("timm:resnet10t", {key: "x.pth"}))


def test_timm_missing_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "timm", None)  # import timm -> ImportError
    with pytest.raises(ModelLoadError, match=re.escape(
            "model timm:resnet10t needs the timm package: pip install 'wpgdkit[timm]'")):
        build_foreign_model(ModelSource("timm:resnet10t"))


def test_robustbench_hook(monkeypatch):
    with pytest.raises(WpgdkitError, match="needs the RobustBench dataset and threat_model"):
        build_foreign_model(ModelSource("robustbench:Wong2020Fast"))
    monkeypatch.setitem(sys.modules, "wpgdkit.models.robustbench", None)
    with pytest.raises(ModelLoadError, match="this wpgdkit has no RobustBench support"):
        build_foreign_model(ModelSource("robustbench:Wong2020Fast"),
                            robustbench_options={"dataset": "cifar10", "threat_model": "Linf"})


def test_registry_models_with_weights_of_the_bare_network(tmp_path):
    torch.manual_seed(0)
    reference = build_foreign_model(ModelSource("mlp"), num_classes=3, input_shape=(4,))
    torch.save(reference.net.state_dict(), tmp_path / "net.pt")
    torch.save(reference.state_dict(), tmp_path / "whole.pt")
    x = torch.rand(5, 4)
    for name in ("net.pt", "whole.pt"):
        torch.manual_seed(1)
        model = build_foreign_model(ModelSource("mlp", weights=str(tmp_path / name)), num_classes=3, input_shape=(4,))
        assert torch.equal(model(x), reference(x))
    with pytest.raises(WpgdkitError, match="model_kwargs: the registry model mlp takes none"):
        build_foreign_model(ModelSource("mlp", {"width": 3}), num_classes=3, input_shape=(4,))
    with pytest.raises(WpgdkitError, match="a registry model is sized for the data"):
        build_foreign_model(ModelSource("mlp"))


# --- TorchScript and torch.export files -----------------------------------------------------------


def _cnn() -> nn.Module:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                        nn.Linear(4, 10))
    net[1].running_mean.uniform_(-0.5, 0.5)
    return net.eval()


@pytest.fixture(scope="module")
def scripted(tmp_path_factory):
    """A scripted CNN saved as ``model.bin``: the name says nothing of the format."""
    net = _cnn()
    path = tmp_path_factory.mktemp("torchscript") / "model.bin"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.jit.save(torch.jit.script(net), str(path))
    return net, path


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """The CNN exported with a dynamic batch dimension, saved as ``model.bin``, and with a fixed batch of 4."""
    net = _cnn()
    folder = tmp_path_factory.mktemp("export")
    program = torch.export.export(net, (torch.zeros(2, *MNIST),), dynamic_shapes=({0: torch.export.Dim("batch")},))
    torch.export.save(program, str(folder / "model.pt2"))
    (folder / "model.bin").write_bytes((folder / "model.pt2").read_bytes())
    torch.export.save(torch.export.export(net, (torch.zeros(4, *MNIST),)), str(folder / "fixed.pt2"))
    return net, folder


def test_torchscript_files_by_content(scripted, tmp_path):
    net, path = scripted
    assert model_file_kind(path) == "torchscript"
    model = load_model_file(path)
    assert isinstance(model, FileModel) and not model.training
    x = _x(3, MNIST, torch.float32)
    torch.testing.assert_close(model(x), net(x))
    traced_path = tmp_path / "traced.weights"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.jit.save(torch.jit.trace(net, torch.zeros(2, *MNIST)), str(traced_path))
    built = build_foreign_model(ModelSource(str(traced_path)), num_classes=10, input_shape=MNIST)
    torch.testing.assert_close(built(x), net(x))
    with pytest.raises(OutputWidthError, match="outputs 10 logits per input; the data has 3 classes"):
        build_foreign_model(ModelSource(str(path)), num_classes=3, input_shape=MNIST)


def test_exported_programs_by_content(exported):
    net, folder = exported
    path = folder / "model.bin"
    assert model_file_kind(path) == "export"
    model = load_model_file(path)
    assert isinstance(model, ExportedModel) and model.fixed_batch_size is None
    model.eval()  # the program's own module refuses eval(); the wrapper accepts it
    for batch in (1, 2, 5):
        x = _x(batch, MNIST, torch.float32)
        torch.testing.assert_close(model(x), net(x))
    with pytest.raises(ModelLoadError, match="is an exported program, which runs in the mode it was exported in "
                                             "and cannot be trained"):
        model.train()
    wrapped = build_foreign_model(ModelSource(str(path), mean=(0.5,), std=(0.25,)), num_classes=10,
                                  input_shape=MNIST)
    x = _x(2, MNIST, torch.float32)
    torch.testing.assert_close(wrapped(x), net((x - 0.5) / 0.25))


def test_an_export_with_a_fixed_batch_is_explained(exported):
    _, folder = exported
    model = load_model_file(folder / "fixed.pt2")
    assert model.fixed_batch_size == 4
    with pytest.raises(ModelLoadError, match=re.escape(
            "was exported with a fixed batch size of 4; export it with a dynamic batch dimension (torch.export.Dim)")):
        build_foreign_model(ModelSource(str(folder / "fixed.pt2")), num_classes=10, input_shape=MNIST)


def test_other_files_given_as_models(trained, tmp_path):
    net, folder = trained
    with pytest.raises(ModelLoadError, match=r"holds weights only \(a state_dict\), no architecture"):
        load_model_file(folder / "weights.safetensors")
    (tmp_path / "notes.txt").write_text("hello")
    assert model_file_kind(tmp_path / "notes.txt") == "unknown"
    with pytest.raises(ModelLoadError, match="is not a model wpgdkit reads: expected a TorchScript archive"):
        build_foreign_model(ModelSource(str(tmp_path / "notes.txt")))
    with pytest.raises(WpgdkitError, match="no such model file; a module needs its factory, my.models:FACTORY"):
        build_foreign_model(ModelSource("my.models"))
    with pytest.raises(WpgdkitError, match="model_kwargs: .* is a model file, which takes no model_kwargs"):
        build_foreign_model(ModelSource(str(tmp_path / "notes.txt"), {"a": 1}))


# --- hostile model files --------------------------------------------------------------------------


def _rewrite(src: Path, dst: Path, *, change=None, add=None) -> Path:
    """Copy a torch zip archive, replacing records (``change``: name -> bytes -> bytes) and adding some."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        root = zin.namelist()[0].split("/", 1)[0] + "/"
        for info in zin.infolist():
            data = zin.read(info)
            name = info.filename[len(root):]
            if change and name in change:
                data = change[name](data)
            zout.writestr(info, data)
        for name, data in (add or {}).items():
            zout.writestr(root + name, data)
    return dst


def _hostile_pickle(marker: Path, kind: str) -> bytes:
    payload = _System(f"touch {marker}") if kind == "system" else _Exec(f"open({str(marker)!r}, 'w').close()")
    return pickle.dumps(payload, protocol=2)  # the protocol TorchScript's unpickler reads


@pytest.mark.parametrize("record", ["data.pkl", "constants.pkl"])
@pytest.mark.parametrize("kind", ["system", "exec"])
def test_a_torchscript_archive_whose_pickle_calls_code_runs_nothing(scripted, tmp_path, record, kind):
    marker = tmp_path / "MARKER"
    hostile = _rewrite(scripted[1], tmp_path / "hostile.pt", change={record: lambda _: _hostile_pickle(marker, kind)})
    assert load_model_file(_rewrite(scripted[1], tmp_path / "copy.pt")) is not None  # the rewriting itself is sound
    assert model_file_kind(hostile) == "torchscript"
    with pytest.raises(ModelLoadError) as info:
        load_model_file(hostile)
    assert re.fullmatch(r"model file .* is not a loadable TorchScript archive: Unknown type name "
                        r"'(posix|nt|__builtin__)\.(system|exec)':?", str(info.value))
    assert not marker.exists()


def test_torchscript_code_that_reaches_the_file_system_is_refused(tmp_path):
    marker = tmp_path / "MARKER"

    class Writes(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.path = str(marker)

        def forward(self, x):
            t = torch.from_file(self.path, True, 16, dtype=torch.uint8)
            return x + t.sum()

    path = tmp_path / "writes.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.jit.save(torch.jit.script(Writes()), str(path))
    with pytest.raises(ModelLoadError, match="refused: its TorchScript code calls from_file, an operator that "
                                             "reaches the file system"):
        load_model_file(path)
    assert not marker.exists()


def _first_expr(data: bytes, replacement: str) -> bytes:
    text = data.decode()
    return re.sub(r'"expr_str": "[^"]*"', lambda _: json.dumps({"expr_str": replacement})[1:-1], text, count=1).encode()


def _in_spec_enum(data: bytes) -> bytes:
    program = json.loads(data)
    for entry in program["graph_module"]["module_call_graph"]:
        if entry["signature"]:
            spec = json.loads(entry["signature"]["in_spec"])
            spec[1]["context"] = json.dumps({"__enum__": True, "fqn": "os:environ", "name": "HOME"})
            entry["signature"]["in_spec"] = json.dumps(spec)
    return json.dumps(program).encode()


def _pickled_weight(data: bytes) -> bytes:
    config = json.loads(data)
    config["config"]["0.weight"]["use_pickle"] = True
    return json.dumps(config).encode()


def _opaque_constant(data: bytes) -> bytes:
    config = json.loads(data)
    config["config"]["evil"] = {"path_name": "opaque_obj_0", "is_param": False, "use_pickle": True, "tensor_meta": None}
    return json.dumps(config).encode()


# Each tampering is what torch.export.load would act on (checked by hand against torch 2.14: the pickled
# weight, sample inputs, opaque constant and sympy expression run their payload there).
HOSTILE_EXPORTS = {
    "pickled weight": (lambda m: {"change": {"data/weights/model_weights_config.json": _pickled_weight,
                                             "data/weights/weight_0": lambda _: _hostile_pickle(m, "system")}},
                       "its weights entry 0.weight is a pickled object"),
    "pickled sample inputs": (lambda m: {"change": {"data/sample_inputs/model.pt":
                                                    lambda _: _hostile_pickle(m, "system")}},
                              "its data/sample_inputs/model.pt holds code or objects (posix.system)"),
    "opaque constant": (lambda m: {"change": {"data/constants/model_constants_config.json": _opaque_constant},
                                   "add": {"data/constants/opaque_obj_0": _hostile_pickle(m, "exec")}},
                        "it holds data/constants/opaque_obj_0, which torch would unpickle"),
    "compiled code": (lambda m: {"add": {"data/aotinductor/model/model.so": b"\x7fELF"}},
                      "it holds compiled code (data/aotinductor/model/model.so)"),
    "python target": (lambda m: {"change": {"models/model.json": lambda d: d.replace(
                          b"torch.ops.aten.relu.default", b"torch.os.system")}},
                      "its graph calls torch.os.system, which is not a torch operator"),
    "file operator": (lambda m: {"change": {"models/model.json": lambda d: d.replace(
                          b"torch.ops.aten.relu.default", b"torch.ops.aten.from_file.default")}},
                      "its graph calls torch.ops.aten.from_file.default, an operator that reaches the file system"),
    "sympy eval": (lambda m: {"change": {"models/model.json": lambda d: _first_expr(
                       d, f"__import__('os').system('touch {m}')")}},
                   "a shape expression names '__import__'"),
    "enum import": (lambda m: {"change": {"models/model.json": _in_spec_enum}},
                    "it names a Python object to import (__enum__)"),
}


@pytest.mark.parametrize("case", list(HOSTILE_EXPORTS))
def test_a_hostile_export_is_refused_before_torch_reads_it(exported, tmp_path, case):
    marker = tmp_path / "MARKER"
    tamper, fragment = HOSTILE_EXPORTS[case]
    if case == "pickled sample inputs" and os.name == "nt":
        fragment = fragment.replace("posix", "nt")
    hostile = _rewrite(exported[1] / "model.pt2", tmp_path / "hostile.pt2", **tamper(marker))
    assert model_file_kind(hostile) == "export"
    with pytest.raises(ModelLoadError) as info:
        build_foreign_model(ModelSource(str(hostile)), num_classes=10, input_shape=MNIST)
    message = str(info.value)
    assert "\n" not in message and message.startswith(f"model file {hostile}: refused: ")
    assert fragment in message
    assert not marker.exists()


def test_an_untampered_rewrite_of_the_export_loads(exported, tmp_path):
    copy = _rewrite(exported[1] / "model.pt2", tmp_path / "copy.pt2")
    assert isinstance(load_model_file(copy), ExportedModel)


def test_an_export_in_the_pre_2_8_format_is_refused(tmp_path):
    path = tmp_path / "old.pt2"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("old/version", "8.1")
        archive.writestr("old/serialized_exported_program.json", "{}")
        archive.writestr("old/serialized_state_dict.pt", _hostile_pickle(tmp_path / "MARKER", "system"))
    assert model_file_kind(path) == "export"
    with pytest.raises(ModelLoadError, match="in the format of torch < 2.8, whose loader falls back to unpickling"):
        load_model_file(path)
    assert not (tmp_path / "MARKER").exists()


def test_a_corrupted_model_archive_is_refused(scripted, tmp_path):
    data = bytearray(scripted[1].read_bytes())
    with zipfile.ZipFile(scripted[1]) as archive:
        info = next(i for i in archive.infolist() if i.filename.endswith("data/0"))
    # The local header's extra field (torch pads it for alignment) differs from the central directory's.
    name_length, extra_length = struct.unpack("<HH", bytes(data[info.header_offset + 26:info.header_offset + 30]))
    data[info.header_offset + 30 + name_length + extra_length + 1] ^= 0xFF  # one byte of a weight
    path = tmp_path / "flipped.pt"
    path.write_bytes(bytes(data))
    with pytest.raises(ModelLoadError, match="is corrupted: the record 0 fails its checksum"):
        load_model_file(path)


# --- the command-line options ---------------------------------------------------------------------


def test_model_options_parse_into_a_source(assert_one_line_error):
    app = typer.Typer(cls=OneLineErrorGroup)

    @app.command()
    def show(model: ModelOpt = None, model_kwargs: ModelKwargsOpt = None, weights: WeightsOpt = None,
             input_shape: InputShapeOpt = None, mean: MeanOpt = None, std: StdOpt = None) -> None:
        source = model_source(model, model_kwargs, weights, input_shape, mean, std)
        typer.echo(json.dumps(source.to_dict() if source is not None else None))

    @app.command()
    def other() -> None:  # a second command makes the app a group, as wpgdkit's is
        pass

    runner = CliRunner()
    result = runner.invoke(app, ["show", "--model", "timm:resnet10t", "--model-kwargs", '{"num_classes": 3}',
                                 "--weights", "w.safetensors", "--input-shape", "3x32x32", "--mean", "0.5,0.4,0.3",
                                 "--std", "0.2,0.2,0.2"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"kind": "timm", "spec": "timm:resnet10t", "kwargs": {"num_classes": 3},
                                         "weights": "w.safetensors", "input_shape": [3, 32, 32],
                                         "mean": [0.5, 0.4, 0.3], "std": [0.2, 0.2, 0.2]}
    assert json.loads(runner.invoke(app, ["show"]).stdout) is None
    assert_one_line_error(runner.invoke(app, ["show", "--weights", "w.pt"]), "--weights needs --model")
    assert_one_line_error(runner.invoke(app, ["show", "--weights", "w.pt", "--model-kwargs", "{}"]),
                          "--model-kwargs and --weights need --model")
    assert_one_line_error(runner.invoke(app, ["show", "--model", "mlp", "--model-kwargs", "[1]"]),
                          "--model-kwargs must be a JSON object")
    assert_one_line_error(runner.invoke(app, ["show", "--model", "mlp", "--input-shape", "3,a"]),
                          "--input-shape must be positive sizes")
    assert_one_line_error(runner.invoke(app, ["show", "--model", "mlp", "--mean", "0.5"]),
                          "--mean and --std go together")
    assert_one_line_error(runner.invoke(app, ["show", "--model", "mlp", "--mean", "0.5", "--std", "0"]),
                          "--std must be positive")
    assert_one_line_error(runner.invoke(app, ["show", "--model", "a/b:c"]), "neither a module name nor a .py file")
    # Rich draws the help in a box: drop its borders, join the wrapped lines.
    help_text = " ".join(re.sub(r"[│╭╮╰╯─]", " ", runner.invoke(app, ["show", "--help"]).stdout).split())
    for fragment in ("torchvision:NAME", "timm:NAME", "robustbench:NAME", "PKG.MODULE:FACTORY",
                     "runs its code", "never runs code", "--model-kwargs", "--input-shape"):
        assert fragment in help_text, fragment
