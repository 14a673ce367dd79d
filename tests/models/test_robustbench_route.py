"""``robustbench:NAME`` models through robustbench's own ``load_model``, offline.

A zoo architecture (Sehwag2021Proxy_R18, a ResNet-18, the smallest CIFAR-10
Linf model) is built with seeded weights and saved where robustbench looks, in
the checkpoint forms robustbench accepts; loading it back must give the same
logits. Every downloader, and socket connections, are tripwires: nothing here
touches the network.
"""

from __future__ import annotations

import importlib.util
import os
import socket
import sys
from pathlib import Path

import pytest

if importlib.util.find_spec("robustbench") is None:
    # Not importorskip: robustbench 1.1.1 only imports after wpgdkit aliases
    # pyautoattack as autoattack, and an installed-but-broken extra must fail here.
    pytest.skip("the robustbench extra is not installed", allow_module_level=True)

import torch

from wpgdkit.errors import DataNotFoundError, UnknownNameError, WpgdkitError
from wpgdkit.models.robustbench import (
    MODEL_DIR_ENV,
    ROBUSTBENCH_DATASETS,
    ROBUSTBENCH_THREATS,
    load_robustbench_model,
    robustbench_name,
    robustbench_threat_for,
)

NAME = "Sehwag2021Proxy_R18"


@pytest.fixture(scope="module")
def robustbench():
    from wpgdkit.models.robustbench import _import_robustbench

    return _import_robustbench(NAME)


@pytest.fixture(scope="module")
def zoo_model(robustbench):
    """The zoo architecture with seeded weights and batch-norm statistics, its inputs and logits."""
    from robustbench.model_zoo import model_dicts
    from robustbench.model_zoo.enums import BenchmarkDataset, ThreatModel

    torch.manual_seed(0)
    model = model_dicts[BenchmarkDataset.cifar_10][ThreatModel.Linf][NAME]["model"]()
    with torch.no_grad():
        # Non-default running statistics, so that buffers are checked as well as weights.
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.normal_(0.0, 0.1)
                module.running_var.uniform_(0.5, 1.5)
    model.eval()
    x = torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        logits = model(x)
    return model, x, logits


@pytest.fixture(autouse=True)
def no_network(monkeypatch, robustbench):
    """Every way robustbench could download raises, and records that it was called."""
    import gdown
    import robustbench.utils
    import torch.hub

    calls: list[tuple] = []

    def tripwire(what):
        def refuse(*args, **kwargs):
            calls.append((what, args))
            raise ConnectionError(f"network disabled in tests ({what})")
        return refuse

    monkeypatch.setattr(robustbench.utils, "download_gdrive_new", tripwire("download_gdrive_new"))
    monkeypatch.setattr(robustbench.utils, "download_gdrive", tripwire("download_gdrive"))
    monkeypatch.setattr(gdown, "download", tripwire("gdown.download"))
    monkeypatch.setattr(torch.hub, "download_url_to_file", tripwire("torch.hub.download_url_to_file"))
    monkeypatch.setattr(socket.socket, "connect", tripwire("socket.connect"))
    monkeypatch.delenv(MODEL_DIR_ENV, raising=False)
    return calls


def _save(obj, model_dir: Path, name: str = NAME) -> Path:
    path = model_dir / "cifar10" / "Linf" / f"{name}.pt"
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(obj, path)
    return path


def _load(model_dir, name: str = NAME, **kwargs):
    return load_robustbench_model(name, dataset="cifar10", threat_model="Linf", model_dir=model_dir, **kwargs)


def _one_line(error: pytest.ExceptionInfo) -> str:
    message = str(error.value)
    assert "\n" not in message, message
    return message


# --- loading ------------------------------------------------------------------------------------


@pytest.mark.parametrize("form", ["state_dict", "wrapped", "module_prefixed"])
def test_loads_the_saved_weights(form, zoo_model, tmp_path, no_network, capsys):
    model, x, expected = zoo_model
    state = model.state_dict()
    checkpoint = {
        "state_dict": state,
        "wrapped": {"state_dict": state, "epoch": 7},  # robustbench reads checkpoint["state_dict"]
        "module_prefixed": {"state_dict": {f"module.{k}": v for k, v in state.items()}},  # DataParallel
    }[form]
    _save(checkpoint, tmp_path)

    loaded = _load(tmp_path)

    assert loaded is not model and not loaded.training
    assert all(not m.training for m in loaded.modules())
    assert {p.device.type for p in loaded.parameters()} == {"cpu"}
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), expected, rtol=0, atol=1e-6)
    assert no_network == []
    assert capsys.readouterr().out == ""  # stdout may carry --json -


def test_lower_case_threat_and_model_dir_from_the_environment(zoo_model, tmp_path, monkeypatch):
    model, x, expected = zoo_model
    _save(model.state_dict(), tmp_path)
    monkeypatch.setenv(MODEL_DIR_ENV, str(tmp_path))

    loaded = load_robustbench_model(NAME, dataset="cifar10", threat_model=robustbench_threat_for("linf"))

    with torch.no_grad():
        torch.testing.assert_close(loaded(x), expected, rtol=0, atol=1e-6)


# --- nothing is downloaded without download=True ------------------------------------------------


def test_missing_checkpoint_says_where_it_belongs(tmp_path, no_network):
    with pytest.raises(DataNotFoundError) as error:
        _load(tmp_path)
    message = _one_line(error)
    assert message == (f"RobustBench model {NAME} is not in {tmp_path / 'cifar10' / 'Linf' / (NAME + '.pt')}; "
                       f"pass --download to fetch it (from Google Drive), or place the file there")
    assert no_network == []
    assert list(tmp_path.iterdir()) == []  # robustbench would have made the folders


def test_default_model_dir_is_robustbench_s_models_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DataNotFoundError) as error:
        load_robustbench_model(NAME, dataset="cifar10", threat_model="Linf")
    assert f"not in {Path('models', 'cifar10', 'Linf', NAME + '.pt')};" in _one_line(error)


def test_missing_ensemble_lists_every_member(tmp_path, no_network):
    with pytest.raises(DataNotFoundError) as error:
        _load(tmp_path, "Chen2020Adversarial")  # an ensemble of three networks
    message = _one_line(error)
    for i in range(3):
        assert str(tmp_path / "cifar10" / "Linf" / f"Chen2020Adversarial.pt_m{i}.pt") in message
    assert no_network == []


def test_timm_hosted_model_is_looked_for_in_the_torch_hub_cache(tmp_path, monkeypatch, no_network):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    with pytest.raises(DataNotFoundError) as error:
        _load(tmp_path, "Debenedetti2022Light_XCiT-S12")
    message = _one_line(error)
    assert str(tmp_path / "torch" / "hub" / "checkpoints" / "debenedetti2022light-xcit-s-cifar10-linf.pth.tar") in message
    assert "pass --download" in message and "https://github.com/RobustBench/" in message
    assert no_network == []


def test_download_goes_through_robustbench_and_keeps_stdout_clean(tmp_path, monkeypatch, no_network, capsys):
    import robustbench.utils

    def download(gdrive_id, fname_save):  # robustbench's own downloader prints to stdout first
        print(f"Downloading {fname_save} (gdrive_id={gdrive_id}).")
        no_network.append(("download_gdrive_new", (gdrive_id, fname_save)))
        raise ConnectionError("network disabled in tests")

    monkeypatch.setattr(robustbench.utils, "download_gdrive_new", download)
    with pytest.raises(WpgdkitError) as error:
        _load(tmp_path, download=True)
    target = tmp_path / "cifar10" / "Linf" / f"{NAME}.pt"
    assert _one_line(error) == (f"downloading RobustBench model {NAME} to {target} (from Google Drive) failed: "
                                f"ConnectionError: network disabled in tests")
    assert [(what, str(args[1])) for what, args in no_network] == [("download_gdrive_new", str(target))]
    captured = capsys.readouterr()
    assert captured.out == "" and "Downloading" in captured.err
    assert robustbench.utils.download_gdrive_new is download  # our guard is gone again


# --- names --------------------------------------------------------------------------------------


def test_unknown_name_lists_close_names(tmp_path):
    with pytest.raises(UnknownNameError) as error:
        _load(tmp_path, "Sehwag2021Proxy_R19")
    message = _one_line(error)
    assert message.startswith("unknown RobustBench model 'Sehwag2021Proxy_R19' for cifar10 Linf; close names: ")
    assert NAME in message


@pytest.mark.parametrize(("dataset", "threat", "expected"), [
    ("cifar10", "L1", "RobustBench has no threat model 'L1'; it has Linf, L2, corruptions"),
    ("cifar100", "L2", "RobustBench has no L2 models for cifar100; it has Linf, corruptions"),
    ("tiny-imagenet", "Linf",
     "RobustBench has no models for the dataset 'tiny-imagenet'; it has cifar10, cifar100, imagenet"),
])
def test_unknown_dataset_or_threat_lists_the_valid_ones(dataset, threat, expected, tmp_path):
    with pytest.raises(UnknownNameError) as error:
        load_robustbench_model(NAME, dataset=dataset, threat_model=threat, model_dir=tmp_path)
    assert _one_line(error) == expected


def test_tables_match_robustbench_enums(robustbench):
    from robustbench.model_zoo.enums import BenchmarkDataset, ThreatModel

    assert set(ROBUSTBENCH_DATASETS.values()) == {d.value for d in BenchmarkDataset}
    assert set(ROBUSTBENCH_THREATS) <= {t.value for t in ThreatModel}


def test_name_and_norm_helpers():
    assert robustbench_name("robustbench:Wong2020Fast") == "Wong2020Fast"
    assert robustbench_name("wrn-28-10") is None
    with pytest.raises(WpgdkitError):
        robustbench_name("robustbench:")
    assert (robustbench_threat_for("linf"), robustbench_threat_for("l2")) == ("Linf", "L2")
    with pytest.raises(WpgdkitError, match="not 'l1'"):
        robustbench_threat_for("l1")


# --- missing package ----------------------------------------------------------------------------


def test_missing_package(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "robustbench", None)  # what an absent package looks like to import
    with pytest.raises(WpgdkitError) as error:
        _load(tmp_path)
    assert _one_line(error) == f"model robustbench:{NAME} needs the robustbench package: pip install 'wpgdkit[robustbench]'"


def test_missing_dependency_is_named(monkeypatch, tmp_path):
    # Re-import robustbench's top and the module that imports pkg_resources (setuptools >= 81 has none).
    for module in ("robustbench", "robustbench.data", "robustbench.loaders"):
        monkeypatch.delitem(sys.modules, module)
    monkeypatch.setitem(sys.modules, "pkg_resources", None)
    with pytest.raises(WpgdkitError) as error:
        _load(tmp_path)
    assert _one_line(error) == (
        f"model robustbench:{NAME}: the robustbench package cannot be imported, its dependency 'pkg_resources' "
        f"is missing, which setuptools<81 provides: pip install 'wpgdkit[robustbench]'")


# --- bad checkpoint files -----------------------------------------------------------------------

_UNPICKLED: list[str] = []


def _record(what: str) -> str:
    _UNPICKLED.append(what)
    return what


class _Payload:
    """Runs ``_record`` when unpickled without weights_only: code in a checkpoint."""

    def __reduce__(self):
        return (_record, ("code ran",))


def test_safe_loader_refuses_code_even_when_the_environment_allows_it(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")  # would turn weights_only off
    path = _save({"state_dict": {}, "payload": _Payload()}, tmp_path)

    with pytest.raises(DataNotFoundError) as error:
        _load(tmp_path)

    message = _one_line(error)
    assert message.startswith(f"the safe loader (torch.load weights_only=True) refused {path}: it holds ")
    assert "_record" in message
    assert _UNPICKLED == []
    assert os.environ["TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"] == "1"
    assert "TORCH_FORCE_WEIGHTS_ONLY_LOAD" not in os.environ


@pytest.mark.parametrize("content", [b"", b"not a checkpoint" * 8, "truncated"])
def test_corrupt_checkpoint(content, zoo_model, tmp_path):
    path = tmp_path / "cifar10" / "Linf" / f"{NAME}.pt"
    path.parent.mkdir(parents=True)
    if content == "truncated":  # a download cut short
        torch.save({"w": torch.zeros(1000)}, path)
        content = path.read_bytes()[:200]
    path.write_bytes(content)

    with pytest.raises(DataNotFoundError) as error:
        _load(tmp_path)

    message = _one_line(error)
    assert message.startswith(f"{path} is not a readable PyTorch checkpoint")
    assert "pass --download" in message


def test_checkpoint_of_another_architecture(zoo_model, tmp_path):
    state = dict(zoo_model[0].state_dict())
    del state["linear.weight"]
    path = _save(state, tmp_path)

    with pytest.raises(DataNotFoundError) as error:
        _load(tmp_path)

    message = _one_line(error)
    assert message.startswith(f"{path} does not fit RobustBench model {NAME}'s architecture: ")
    assert "linear.weight" in message
