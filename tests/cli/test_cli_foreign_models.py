"""``wpgdkit audit``, ``train`` and ``metric build`` on models trained elsewhere, each in one command line.

A user's own module (``my_models.py``) defines a small CNN and a one-channel
ResNet-18, the way people write them for Fashion-MNIST. The CNN is trained
here for a few seconds on real Fashion-MNIST images (so that it is a real
classifier, not a constant) and saved in the four forms a user may hand
over: a ``torch.save`` state_dict, the same as safetensors, a TorchScript
archive (named ``.bin``: it is recognised by content) and a ``torch.export``
program with a dynamic batch. Each route is audited with one command; the
clean errors are checked against predictions computed here directly, and the
four routes of the same network must agree with each other.

torchvision, timm and RobustBench architectures run on CIFAR-10 files written
in the real format (the ``cifar10_dir`` fixture of ``tests/conftest.py``);
RobustBench's checkpoint is placed where it looks, and every downloader is a
tripwire. Every mismatch between model and data is one line on stderr, exit
code 2, and no output file.
"""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from wpgdkit.cli import app

runner = CliRunner()

ROBUSTBENCH_NAME = "Sehwag2021Proxy_R18"
CIFAR_MEAN = "0.4914,0.4822,0.4465"
CIFAR_STD = "0.2470,0.2435,0.2616"
#: Points audited on Fashion-MNIST: enough for every class to appear, few enough for two CPU cores.
N = 64
#: The audit's batch size; the direct predictions use the same batches (see ``_predict``).
BATCH = 32

# The user's module, as someone fine-tuning on Fashion-MNIST would write it.
USER_MODELS = textwrap.dedent('''
    import torch
    import torchvision
    from torch import nn


    class SmallNet(nn.Module):
        """Two conv blocks and a linear head, for 1x28x28 inputs."""

        def __init__(self, num_classes=10):
            super().__init__()
            self.features = nn.Sequential(
                nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            )
            self.head = nn.Linear(32 * 7 * 7, num_classes)

        def forward(self, x):
            return self.head(self.features(x).flatten(1))


    def resnet18_gray(num_classes=10):
        """torchvision's ResNet-18 with a one-channel stem."""
        net = torchvision.models.resnet18(num_classes=num_classes)
        net.conv1 = nn.Conv2d(1, 64, kernel_size=7, stride=2, padding=3, bias=False)
        return net


    def broken(num_classes=10):
        raise ValueError("width must be even")


    def not_a_model(num_classes=10):
        return {"logits": torch.zeros(1, num_classes)}
''')


# --- fixtures ------------------------------------------------------------------------------------


def _import_file(path: Path, name: str):
    """Import the user's file under a private name (the library imports it under its own)."""
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _predict(net: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Arg-max predictions in the audit's batches: the same kernels on the same shapes give the same logits."""
    net.eval()
    with torch.no_grad():
        return torch.cat([net(x[i:i + BATCH]).argmax(1) for i in range(0, len(x), BATCH)])


def _train_small_net(module) -> torch.nn.Module:
    """SmallNet after ~100 seeded SGD steps on 2000 real Fashion-MNIST training images."""
    from wpgdkit.datasets import load_tensors

    x, y = load_tensors("fashion-mnist", "train", limit=2000, seed=0)
    torch.manual_seed(0)
    net = module.SmallNet(num_classes=10)
    optimizer = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9)
    order = torch.Generator().manual_seed(0)
    net.train()
    for _ in range(100):
        batch = torch.randint(0, len(x), (64,), generator=order)
        loss = torch.nn.functional.cross_entropy(net(x[batch]), y[batch])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return net.eval()


@pytest.fixture(scope="module")
def user(tmp_path_factory):
    """The user's folder: my_models.py, the trained SmallNet in four files, a random gray ResNet-18's weights."""
    from safetensors.torch import save_file

    from wpgdkit.training.data import load_eval_split

    folder = tmp_path_factory.mktemp("user")
    (folder / "my_models.py").write_text(USER_MODELS)
    module = _import_file(folder / "my_models.py", "_test_cli_foreign_user_models")
    net = _train_small_net(module)

    # A real classifier: far above the 10 % of chance on held-out images.
    x_test, y_test = load_eval_split("fashion-mnist", range(10), split="test", limit=500)
    accuracy = float((_predict(net, x_test) == y_test).double().mean())
    assert accuracy > 0.60, accuracy

    state = net.state_dict()
    torch.save(state, folder / "small.pt")
    save_file({k: v.contiguous() for k, v in state.items()}, str(folder / "small.safetensors"))
    example = torch.zeros(2, 1, 28, 28)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit.trace's deprecation notice
        torch.jit.trace(net, example).save(str(folder / "small.bin"))  # not .pt: detection is by content
    program = torch.export.export(net, (example,), dynamic_shapes=({0: torch.export.Dim("batch")},))
    torch.export.save(program, str(folder / "small.pt2"))

    torch.manual_seed(1)
    torch.save(module.resnet18_gray(num_classes=10).state_dict(), folder / "rn.pt")
    return {"folder": folder, "module": module, "net": net, "spec": f"{folder / 'my_models.py'}:SmallNet"}


@pytest.fixture(scope="module")
def fashion_points():
    """The points the audits below attack, as the audit loads them: the first N of the test split."""
    from wpgdkit.training.data import load_eval_split

    return load_eval_split("fashion-mnist", range(10), split="test", limit=N)


def _fm_args(*extra: str) -> list[str]:
    return ["--dataset", "fashion-mnist", "--eps", "0.1", "--limit", str(N), "--steps", "2",
            "--batch-size", str(BATCH), "--device", "cpu", "--quiet", *extra]


def _routes(user) -> dict[str, list[str]]:
    f = user["folder"]
    return {
        "state_dict": ["--model", user["spec"], "--weights", str(f / "small.pt")],
        "safetensors": ["--model", user["spec"], "--weights", str(f / "small.safetensors")],
        "torchscript": [str(f / "small.bin")],
        "export": [str(f / "small.pt2")],
    }


@pytest.fixture(scope="module")
def route_audit(user):
    """``route -> CliRunner result`` of the route's audit, each run at most once for the module."""
    results = {}

    def get(route: str):
        if route not in results:
            results[route] = runner.invoke(app, ["audit", *_routes(user)[route], *_fm_args("--json", "-")])
        return results[route]

    return get


def _doc(result) -> dict:
    """The JSON a successful command printed; a crash re-raises its exception (so xfail can name it)."""
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    assert result.exit_code == 0, (result.exit_code, result.stderr)
    return json.loads(result.stdout)


def _doc_less(result) -> None:
    """A command that succeeded without printing JSON; a crash re-raises its exception."""
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    assert result.exit_code == 0, (result.exit_code, result.stderr)


def _error_percent(y: torch.Tensor, pred: torch.Tensor) -> float:
    """Share of wrong predictions in %, in float64."""
    wrong = np.count_nonzero(y.numpy() != pred.numpy())
    return float(np.float64(wrong) / np.float64(len(y))) * 100.0


def _confusion(y: torch.Tensor, pred: torch.Tensor, k: int) -> list[list[int]]:
    counts = np.zeros((k, k), dtype=np.int64)
    np.add.at(counts, (y.numpy(), pred.numpy()), 1)
    return counts.tolist()


# --- the same trained network, four ways ----------------------------------------------------------


@pytest.mark.parametrize("route", ["state_dict", "safetensors", "torchscript", "export"])
def test_route_audits_and_its_clean_errors_are_the_network_s(route, route_audit, user, fashion_points):
    doc = _doc(route_audit(route))
    x, y = fashion_points
    pred = _predict(user["net"], x)

    assert doc["num_points"] == N and doc["dataset"] == "fashion-mnist" and len(doc["models"]) == 1
    model = doc["models"][0]
    assert model["method"] == "external" and model["name"] == "small"
    # The clean forward pass runs the same kernels on the same batches as here: exact equality.
    assert model["natural_error"] == _error_percent(y, pred)
    assert model["confusion_natural"]["counts"] == _confusion(y, pred, 10)
    for i, row in enumerate(model["per_class"]):
        members = y == i
        assert row["points"] == int(members.sum())
        expected = _error_percent(y[members], pred[members]) if row["points"] else None
        assert row["natural_error"] == expected, (i, row)
    # The attack did something to a real classifier at ε = 0.1 (a refusal to attack would leave AE = NE).
    assert model["adversarial_error"] > model["natural_error"]


def test_state_dict_and_safetensors_give_the_same_audit(route_audit):
    a, b = _doc(route_audit("state_dict"))["models"][0], _doc(route_audit("safetensors"))["models"][0]
    # The same tensors in the same architecture under the same seeded attack: identical to the last bit.
    for key in ("natural_error", "adversarial_error", "confusion_natural", "confusion_adversarial", "per_class"):
        assert a[key] == b[key], key


@pytest.mark.parametrize("route", ["torchscript", "export"])
def test_file_routes_agree_with_the_state_dict_within_one_point(route, route_audit):
    eager = _doc(route_audit("state_dict"))["models"][0]
    other = _doc(route_audit(route))["models"][0]
    # A traced or exported graph computes the gradient through another graph (fused or reordered ops), so
    # a float32 rounding may flip the sign of a near-zero gradient component and, at worst, the outcome of
    # a point on the decision boundary. More than one of N points would mean another network or attack.
    assert abs(other["adversarial_error"] - eager["adversarial_error"]) <= 100.0 / N + 1e-9
    assert other["natural_error"] == eager["natural_error"]


def test_the_user_s_resnet18_gray_runs(user):
    f = user["folder"]
    result = runner.invoke(app, ["audit", "--model", f"{f / 'my_models.py'}:resnet18_gray",
                                 "--weights", str(f / "rn.pt"), "--dataset", "fashion-mnist", "--eps", "0.1",
                                 "--limit", "32", "--steps", "2", "--batch-size", "32", "--device", "cpu",
                                 "--quiet", "--json", "-"])
    doc = _doc(result)
    assert doc["method"] == "external" and doc["name"] == "rn" and doc["num_points"] == 32


# --- torchvision, timm and RobustBench on CIFAR-10 ------------------------------------------------


def _cifar_args(data_dir: Path, *extra: str) -> list[str]:
    return ["--dataset", "cifar10", "--data-dir", str(data_dir), "--eps", "8/255", "--limit", "8", "--steps", "2",
            "--batch-size", "32", "--device", "cpu", "--quiet", *extra]


def test_torchvision_resnet18_with_weights_and_normalisation(cifar10_dir, tmp_path):
    import torchvision

    from wpgdkit.training.data import load_eval_split

    torch.manual_seed(2)
    net = torchvision.models.resnet18(num_classes=10).eval()
    torch.save(net.state_dict(), tmp_path / "rn3.pt")
    out = tmp_path / "audit.json"
    result = runner.invoke(app, ["audit", "--model", "torchvision:resnet18", "--model-kwargs", '{"num_classes": 10}',
                                 "--weights", str(tmp_path / "rn3.pt"), "--mean", CIFAR_MEAN, "--std", CIFAR_STD,
                                 *_cifar_args(cifar10_dir, "--json", str(out))])
    assert result.exit_code == 0, (result.stderr, result.exception)
    doc = json.loads(out.read_text())

    # The network sees (x − mean) / std: computed here the way the Normalize layer does, in float32.
    x, y = load_eval_split("cifar10", range(10), split="test", data_dir=str(cifar10_dir), limit=8)
    mean = torch.tensor([float(v) for v in CIFAR_MEAN.split(",")]).reshape(1, 3, 1, 1)
    std = torch.tensor([float(v) for v in CIFAR_STD.split(",")]).reshape(1, 3, 1, 1)
    pred = _predict(net, (x - mean) / std)
    assert doc["num_points"] == len(y) == 6 and doc["method"] == "external"
    assert doc["confusion_natural"]["counts"] == _confusion(y, pred, 10)
    assert doc["natural_error"] == _error_percent(y, pred)


def test_timm_model_without_weights(cifar10_dir):
    result = runner.invoke(app, ["audit", "--model", "timm:resnet10t", "--model-kwargs", '{"num_classes": 10}',
                                 *_cifar_args(cifar10_dir, "--json", "-")])
    doc = _doc(result)
    assert doc["method"] == "external" and doc["name"] == "resnet10t" and doc["num_points"] == 6
    attack = doc["attack"]
    assert (attack["eps"], attack["norm"], attack["steps"]) == (pytest.approx(8 / 255, rel=1e-12), "linf", 2)


@pytest.fixture
def no_network(monkeypatch):
    """Every way robustbench could download raises, and is recorded (as in tests/models/test_robustbench_route.py)."""
    if importlib.util.find_spec("robustbench") is None:
        pytest.skip("the robustbench extra is not installed")
    from wpgdkit.models.robustbench import MODEL_DIR_ENV, _import_robustbench

    _import_robustbench(ROBUSTBENCH_NAME)
    import gdown
    import robustbench.utils
    import torch.hub

    calls: list[str] = []

    def tripwire(what):
        def refuse(*args, **kwargs):
            calls.append(what)
            raise ConnectionError(f"network disabled in tests ({what})")
        return refuse

    monkeypatch.setattr(robustbench.utils, "download_gdrive_new", tripwire("download_gdrive_new"))
    monkeypatch.setattr(robustbench.utils, "download_gdrive", tripwire("download_gdrive"))
    monkeypatch.setattr(gdown, "download", tripwire("gdown.download"))
    monkeypatch.setattr(torch.hub, "download_url_to_file", tripwire("torch.hub.download_url_to_file"))
    monkeypatch.setattr(socket.socket, "connect", tripwire("socket.connect"))
    monkeypatch.delenv(MODEL_DIR_ENV, raising=False)
    return calls


def test_robustbench_model_from_its_checkpoint_folder(cifar10_dir, tmp_path, no_network):
    from robustbench.model_zoo import model_dicts
    from robustbench.model_zoo.enums import BenchmarkDataset, ThreatModel

    from wpgdkit.training.data import load_eval_split

    torch.manual_seed(3)
    net = model_dicts[BenchmarkDataset.cifar_10][ThreatModel.Linf][ROBUSTBENCH_NAME]["model"]().eval()
    target = tmp_path / "models" / "cifar10" / "Linf" / f"{ROBUSTBENCH_NAME}.pt"
    target.parent.mkdir(parents=True)
    torch.save(net.state_dict(), target)

    result = runner.invoke(app, ["audit", "--model", f"robustbench:{ROBUSTBENCH_NAME}",
                                 "--model-dir", str(tmp_path / "models"), *_cifar_args(cifar10_dir, "--json", "-")])
    doc = _doc(result)
    assert no_network == []
    x, y = load_eval_split("cifar10", range(10), split="test", data_dir=str(cifar10_dir), limit=8)
    pred = _predict(net, x)
    # Six test images, one per class: equal confusion counts are equal predictions, point by point.
    assert sorted(y.tolist()) == list(range(6))
    assert doc["confusion_natural"]["counts"] == _confusion(y, pred, 10)
    # A random network predicts one class for all six; its clean entropies (one point per class) still
    # tell networks apart, to ~1e-4, where the same float32 logits agree to rounding in float64.
    with torch.no_grad():
        log_p = torch.log_softmax(net(x).double(), dim=1)
    entropy = (-(log_p.exp() * log_p).sum(1)).tolist()
    audited = doc["entropy"]["natural"]["per_class_mean"]
    for label, value in zip(y.tolist(), entropy):
        assert audited[label] == pytest.approx(value, rel=1e-9, abs=0.0), label
    assert doc["method"] == "external" and doc["name"] == ROBUSTBENCH_NAME


def test_missing_robustbench_checkpoint_says_where_and_downloads_nothing(cifar10_dir, tmp_path, no_network,
                                                                         assert_one_line_error):
    out = tmp_path / "audit.json"
    result = runner.invoke(app, ["audit", "--model", f"robustbench:{ROBUSTBENCH_NAME}",
                                 "--model-dir", str(tmp_path / "models"), *_cifar_args(cifar10_dir, "--json", str(out))])
    where = tmp_path / "models" / "cifar10" / "Linf" / f"{ROBUSTBENCH_NAME}.pt"
    assert_one_line_error(result, str(where), "--download")
    assert no_network == [] and not out.exists() and not (tmp_path / "models").exists()


def test_unknown_robustbench_model_lists_close_names(cifar10_dir, tmp_path, no_network, assert_one_line_error):
    out = tmp_path / "audit.json"
    result = runner.invoke(app, ["audit", "--model", "robustbench:Sehwag2021Proxy_R19",
                                 "--model-dir", str(tmp_path / "models"), *_cifar_args(cifar10_dir, "--json", str(out))])
    assert_one_line_error(result, "Sehwag2021Proxy_R19", "close names", ROBUSTBENCH_NAME)
    assert not out.exists()


def test_torchvision_default_head_on_ten_classes(cifar10_dir, tmp_path, assert_one_line_error):
    out = tmp_path / "audit.json"
    result = runner.invoke(app, ["audit", "--model", "torchvision:resnet18",
                                 *_cifar_args(cifar10_dir, "--json", str(out))])
    assert_one_line_error(result, "1000 logits", "10 classes", '"num_classes": 10')
    assert not out.exists()


# --- several models in one audit -----------------------------------------------------------------


def test_a_model_file_and_a_model_source_with_a_baseline(user):
    f = user["folder"]
    result = runner.invoke(app, ["audit", str(f / "small.bin"), "--model", user["spec"],
                                 "--weights", str(f / "small.pt"), "--baseline", str(f / "small.bin"),
                                 *_fm_args("--json", "-")])
    doc = _doc(result)
    names = [m["name"] for m in doc["models"]]
    assert names == ["small", "small-2"], names
    assert doc["baseline"] == str(f / "small.bin")
    # The same network twice: the natural accuracy gap to the baseline is zero everywhere.
    for model in doc["models"]:
        assert model["gap"] == [[0.0] * 10 for _ in range(10)], model["name"]
    assert doc["models"][0]["natural_error"] == doc["models"][1]["natural_error"]


# --- a wpgdkit run of the user's own architecture ------------------------------------------------


@pytest.fixture(scope="module")
def user_run(user):
    out = user["folder"] / "run.pt"
    result = runner.invoke(app, ["train", "--dataset", "fashion-mnist", "--limit", "256", "--model", user["spec"],
                                 "--method", "ce", "--epochs", "1", "--eval-steps", "0", "--batch-size", "64",
                                 "--device", "cpu", "--out", str(out), "--quiet"])
    assert result.exit_code == 0, (result.stderr, result.exception)
    return out


def test_auditing_a_run_of_user_code_needs_model_to_import_it(user, user_run, tmp_path, assert_one_line_error):
    out = tmp_path / "audit.json"
    result = runner.invoke(app, ["audit", str(user_run), "--limit", "32", "--steps", "2", "--batch-size", "32",
                                 "--device", "cpu", "--quiet", "--json", str(out)])
    assert_one_line_error(result, f"--model {user['spec']}", "runs its code")
    assert not out.exists()


@pytest.fixture(scope="module")
def trusted_run_audit(user, user_run):
    """``audit run.pt --model SPEC``: SPEC is the permission to import the user's module."""
    result = runner.invoke(app, ["audit", str(user_run), "--model", user["spec"], "--limit", "32", "--steps", "2",
                                 "--batch-size", "32", "--device", "cpu", "--quiet", "--json", "-"])
    return _doc(result)


def test_auditing_a_run_of_user_code_with_model(trusted_run_audit, user_run):
    doc = trusted_run_audit
    run = next(m for m in doc["models"] if m["name"] == "run")
    assert run["method"] == "ce" and run["checkpoint"] == str(user_run)
    assert doc["dataset"] == "fashion-mnist" and doc["num_points"] == 32


def test_model_given_to_import_a_run_s_code_adds_no_second_model(trusted_run_audit):
    names = [(m["name"], m["method"]) for m in trusted_run_audit["models"]]
    assert names == [("run", "ce")], names


# --- label metrics from foreign models -----------------------------------------------------------


def _check_metric(path: Path) -> None:
    from wpgdkit.labelmetric import read_metric, validate_metric

    metric = read_metric(path)
    validate_metric(metric)
    matrix = np.asarray(metric.matrix, dtype=np.float64)
    assert matrix.shape == (10, 10) and len(metric.classes) == 10
    assert np.all(np.diag(matrix) == 0.0) and np.all(matrix[~np.eye(10, dtype=bool)] > 0.0)
    assert metric.classes[0] == "T-shirt/top"


@pytest.mark.parametrize("file", ["small.bin", "small.pt2"])
def test_metric_from_the_confusion_of_a_model_file(file, user, tmp_path):
    out = tmp_path / "confusion.csv"
    result = runner.invoke(app, ["metric", "build", "--source", "confusion", "--checkpoint",
                                 str(user["folder"] / file), "--dataset", "fashion-mnist", "--limit", "200",
                                 "--device", "cpu", "--out", str(out), "--quiet"])
    _doc_less(result)
    _check_metric(out)


def test_metric_from_the_boundaries_of_a_model_source(user, tmp_path):
    out = tmp_path / "boundary.csv"
    result = runner.invoke(app, ["metric", "build", "--source", "boundary", "--model", user["spec"],
                                 "--weights", str(user["folder"] / "small.pt"), "--dataset", "fashion-mnist",
                                 "--limit", "3", "--device", "cpu", "--out", str(out), "--quiet"])
    _doc_less(result)
    _check_metric(out)


# --- mismatches: one line, exit 2, nothing written -----------------------------------------------


@pytest.fixture(scope="module")
def bad_files(user):
    """Files that must be refused: a module that raises on import, weights of another net, a cut archive."""
    f = user["folder"]
    (f / "broken_import.py").write_text("raise RuntimeError('this module needs a GPU cluster')\n")
    torch.save({"head.weight": torch.zeros(10, 1568), "extra.bias": torch.zeros(3)}, f / "other.pt")
    data = (f / "small.bin").read_bytes()
    (f / "truncated.bin").write_bytes(data[: len(data) // 2])
    return f


def _mismatch_cases(f: Path) -> dict[str, tuple[list[str], tuple[str, ...]]]:
    spec = f"{f / 'my_models.py'}"
    fm = ["--dataset", "fashion-mnist", "--eps", "0.1"]
    return {
        "no dataset": ([str(f / "small.bin"), "--eps", "0.1"], ("--dataset", "--eps")),
        "no eps": ([str(f / "small.bin"), "--dataset", "fashion-mnist"], ("--eps",)),
        "no such factory": (["--model", f"{spec}:TinyNet", *fm], ("TinyNet", "SmallNet", "resnet18_gray")),
        "module raises on import": (["--model", f"{f / 'broken_import.py'}:Net", *fm],
                                    ("importing", "RuntimeError: this module needs a GPU cluster")),
        "factory raises": (["--model", f"{spec}:broken", *fm], ("the factory raised ValueError: width must be even",)),
        "factory returns a dict": (["--model", f"{spec}:not_a_model", *fm], ("a dict", "not a torch.nn.Module")),
        "weights of another net": (["--model", f"{spec}:SmallNet", "--weights", str(f / "other.pt"), *fm],
                                   ("does not fit", "missing (features.0.weight", "unexpected (extra.bias)")),
        "3 channels on 1": (["--model", "torchvision:resnet18", "--model-kwargs", '{"num_classes": 10}', *fm],
                            ("rejects inputs of shape 1×28×28", "3 channels", "got 1 channels")),
        "state_dict positional": ([str(f / "small.pt"), *fm], ("holds weights only", "--model ARCH --weights")),
        "weights without model": ([str(f / "small.bin"), "--weights", str(f / "small.pt"), *fm],
                                  ("--weights needs --model",)),
        "kwargs not JSON": (["--model", f"{spec}:SmallNet", "--model-kwargs", "{num_classes: 10}", *fm],
                            ("--model-kwargs must be a JSON object",)),
        "unknown class": ([str(f / "small.bin"), "--classes", "T-shirt/top,Spaceship", *fm],
                          ("unknown class 'Spaceship'", "Ankle boot")),
        "truncated TorchScript": ([str(f / "truncated.bin"), *fm], ("truncated.bin", "truncated")),
    }


MISMATCHES = list(_mismatch_cases(Path("x")))


@pytest.mark.parametrize("case", MISMATCHES)
def test_mismatch_is_one_line(case, bad_files, tmp_path, assert_one_line_error):
    args, fragments = _mismatch_cases(bad_files)[case]
    out = tmp_path / "audit.json"
    result = runner.invoke(app, ["audit", *args, "--limit", "8", "--steps", "1", "--device", "cpu",
                                 "--json", str(out)])
    assert_one_line_error(result, *fragments)
    assert not out.exists()


def test_hostile_pickle_as_weights_runs_nothing(user, tmp_path, assert_one_line_error):
    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    evil = tmp_path / "evil.pt"
    torch.save({"conv.weight": Exploit()}, evil)
    out = tmp_path / "audit.json"
    result = runner.invoke(app, ["audit", "--model", user["spec"], "--weights", str(evil), "--dataset",
                                 "fashion-mnist", "--eps", "0.1", "--limit", "8", "--json", str(out)])
    assert_one_line_error(result, "evil.pt", "refused", "system")
    assert not marker.exists() and not out.exists()
    # The file is a live exploit: an unrestricted unpickler runs it (so the refusal above means something).
    torch.load(evil, weights_only=False)
    assert marker.exists()


# --- help ----------------------------------------------------------------------------------------


def test_help_shows_the_model_routes():
    result = runner.invoke(app, ["audit", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    for text in ("torchvision:", "timm:", "robustbench:", "TorchScript", "--weights", "--model-kwargs"):
        assert text in result.stdout, text
