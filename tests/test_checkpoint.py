"""The run record: checkpoints load with weights_only=True, validate, type, and identify their run."""

from __future__ import annotations

import math
import os

import pytest
import torch

from wpgdkit.attacks import ThreatModel
from wpgdkit.checkpoint import (
    Checkpoint,
    CheckpointError,
    DataRecord,
    ModelRecord,
    OptimizerRecord,
    RunSettings,
    load_checkpoint,
)
from wpgdkit.errors import DataNotFoundError, WpgdkitError


def settings(**changes) -> RunSettings:
    base = dict(model=ModelRecord("linear", 3, (2,)),
                data=DataRecord("toy", ("0", "1", "2"), (0, 1, 2), limit=100, val_fraction=0.0, input_range=None),
                method="pgd", threat=ThreatModel(eps=0.4, steps=3, norm="l2", bounds=None),
                optimizer=OptimizerRecord(epochs=2, batch_size=64, lr=0.05), seed=0)
    base.update(changes)
    return RunSettings(**base)


def checkpoint(epoch: int = 1, **changes) -> Checkpoint:
    model = settings(**changes).model.build()
    return Checkpoint(settings=settings(**changes), epoch=epoch, state_dict=model.state_dict(), tool_version="test")


def v1_payload(epoch: int = 1) -> dict:
    """A checkpoint as wpgdkit 0.1.0 (format version 1) wrote it."""
    model = settings().model.build()
    return {
        "format": "wpgdkit-checkpoint", "version": 1, "tool_version": "0.1.0",
        "model": {"name": "linear", "num_classes": 3, "input_shape": [2], "mean": None, "std": None, "parameters": 9,
                  "state_dict": model.state_dict()},
        "data": {"dataset": "toy", "classes": ["0", "1", "2"], "imbalance": None, "imbalance_class": None,
                 "limit": 100, "val_fraction": 0.0, "augment": True, "data_dir": None, "download": False, "seed": 0,
                 "class_indices": [0, 1, 2], "augmented": False, "input_range": None},
        "metric": None, "method": "pgd", "p": 1.0, "lam": "inf",
        "attack": {"norm": "l2", "eps": 0.4, "step_size": 2.5 * 0.4 / 3, "steps": 3, "random_start": True},
        "run": {"model": "linear", "method": "pgd", "p": 1.0, "lam": "inf", "norm": "l2", "eps": 0.4, "steps": 3,
                "epochs": 2, "batch_size": 64, "lr": 0.05, "momentum": 0.9, "weight_decay": 5e-4,
                "schedule": "piecewise", "seed": 0, "step_size": 2.5 * 0.4 / 3, "random_start": True,
                "eval_steps": 8, "amp": True, "deterministic": False},
        "seed": 0, "epoch": epoch, "optimizer": {}, "scheduler": {}, "history": [{"epoch": 1}],
    }


def test_round_trip(tmp_path):
    original = checkpoint()
    path = original.save(tmp_path / "m.pt")
    loaded = load_checkpoint(path)
    assert loaded.settings == original.settings and loaded.fingerprint() == original.fingerprint()
    assert loaded.epoch == 1 and not loaded.complete and loaded.version == 2 and loaded.path == str(path)
    assert all(torch.equal(loaded.state_dict[k], v) for k, v in original.state_dict.items())
    assert [p.name for p in tmp_path.iterdir()] == ["m.pt"]  # no temporary left behind
    model = loaded.build_model()
    assert not model.training and isinstance(model(torch.zeros(1, 2)), torch.Tensor)


def test_version_1_files_keep_loading(tmp_path):
    path = tmp_path / "old.pt"
    torch.save(v1_payload(), path)
    loaded = load_checkpoint(path)
    assert loaded.version == 1 and loaded.epoch == 1 and loaded.history == [{"epoch": 1}]
    # The same run as a version-2 record of the same settings.
    assert loaded.settings == settings() and loaded.fingerprint() == settings().fingerprint()
    assert loaded.eval_steps == 8 and loaded.amp is True and loaded.parameters == 9
    assert loaded.build_model()(torch.zeros(1, 2)).shape == (1, 3)


def test_fingerprint_is_stable_and_changes_with_every_identity_setting():
    reference = settings().fingerprint()
    assert reference == settings().fingerprint() and len(reference) == 64
    changes = [
        {"method": "ce"}, {"seed": 1},
        {"threat": ThreatModel(eps=0.5, steps=3, norm="l2", bounds=None)},
        {"threat": ThreatModel(eps=0.4, steps=4, norm="l2", bounds=None)},
        {"threat": ThreatModel(eps=0.4, steps=3, step_size=0.1, norm="l2", bounds=None)},
        {"threat": ThreatModel(eps=0.4, steps=3, norm="linf", bounds=None)},
        {"optimizer": OptimizerRecord(epochs=3, batch_size=64, lr=0.05)},
        {"optimizer": OptimizerRecord(epochs=2, batch_size=64, lr=0.01)},
        {"model": ModelRecord("mlp", 3, (2,))},
        {"data": DataRecord("toy", ("0", "1", "2"), (0, 1, 2), limit=50, val_fraction=0.0, input_range=None)},
    ]
    prints = [settings(**c).fingerprint() for c in changes]
    assert reference not in prints and len(set(prints)) == len(prints)
    # Restarts and the data's location are not part of the run.
    assert settings(threat=ThreatModel(eps=0.4, steps=3, norm="l2", bounds=None, restarts=5)).fingerprint() == reference
    assert settings(data=DataRecord("toy", ("0", "1", "2"), (0, 1, 2), limit=100, val_fraction=0.0, input_range=None,
                                    data_dir="/elsewhere")).fingerprint() == reference
    # p, λ and the metric count for WPGD only.
    assert settings(p=3.0).fingerprint() == reference
    wpgd = settings(method="wpgd", metric_sha256="a" * 64)
    assert wpgd.fingerprint() != settings(method="wpgd", metric_sha256="b" * 64).fingerprint()
    assert wpgd.fingerprint() != settings(method="wpgd", metric_sha256="a" * 64, lam=10.0).fingerprint()
    assert settings(method="wpgd", lam=math.inf).differences(settings(method="wpgd", lam=2.0)) == ["lam='inf' vs 2.0"]


class RunsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_pickled_code_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "pwned"
    payload = v1_payload()
    payload["evil"] = RunsCode(marker)
    path = tmp_path / "evil.pt"
    torch.save(payload, path)
    with pytest.raises(CheckpointError, match=r"refused to load: it holds code or objects \((posix|os|nt)\.system\)"):
        load_checkpoint(path)
    assert not marker.exists()
    # The file really would run code with a plain (unsafe) load:
    torch.load(path, weights_only=False)
    assert marker.exists()


def test_truncated_and_foreign_files(tmp_path):
    good = checkpoint().save(tmp_path / "good.pt")
    truncated = tmp_path / "cut.pt"
    truncated.write_bytes(good.read_bytes()[:100])
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        load_checkpoint(truncated)
    foreign = tmp_path / "foreign.pt"
    torch.save({"state_dict": {}}, foreign)
    with pytest.raises(CheckpointError, match="not a wpgdkit checkpoint"):
        load_checkpoint(foreign)
    text = tmp_path / "text.pt"
    text.write_text("hello")
    with pytest.raises(CheckpointError):
        load_checkpoint(text)
    incomplete = tmp_path / "incomplete.pt"
    torch.save({"format": "wpgdkit-checkpoint", "version": 1}, incomplete)
    with pytest.raises(CheckpointError, match="missing"):
        load_checkpoint(incomplete)
    with pytest.raises(DataNotFoundError):
        load_checkpoint(tmp_path / "absent.pt")


@pytest.mark.parametrize("change, fragment", [
    ({"version": 3}, "newer than this wpgdkit reads"),
    ({"version": "1"}, "not a whole number"),
    ({"method": "trades"}, "unknown training method 'trades'"),
    ({"epoch": -1}, "epoch -1"),
    ({"data": "cifar10"}, "must be sections"),
    ({"history": "none"}, "history is not a list"),
    ({"attack": {"norm": "l3", "eps": 0.1, "steps": 1}}, "unknown norm"),
])
def test_malformed_sections_are_one_error(tmp_path, change, fragment):
    path = tmp_path / "bad.pt"
    torch.save({**v1_payload(), **change}, path)
    with pytest.raises(CheckpointError, match=fragment):
        load_checkpoint(path)


def test_class_counts_must_agree(tmp_path):
    payload = v1_payload()
    payload["data"]["classes"] = ["0", "1"]
    path = tmp_path / "bad.pt"
    torch.save(payload, path)
    with pytest.raises(CheckpointError, match="2 classes, 3 class indices, 3 outputs"):
        load_checkpoint(path)


def test_weights_that_do_not_fit_are_one_error(tmp_path):
    payload = v1_payload()
    payload["model"]["state_dict"] = {"w": torch.ones(2)}
    path = tmp_path / "bad.pt"
    torch.save(payload, path)
    with pytest.raises(CheckpointError, match="weights do not fit"):
        load_checkpoint(path).build_model()


def test_failed_write_keeps_the_previous_checkpoint(tmp_path):
    path = checkpoint(1).save(tmp_path / "m.pt")
    bad = checkpoint(2)
    bad.history = [{"unpicklable": lambda: None}]  # torch.save fails on a lambda
    with pytest.raises(Exception):
        bad.save(path)
    assert load_checkpoint(path).epoch == 1
    assert [p.name for p in tmp_path.iterdir()] == ["m.pt"]


def test_a_flipped_byte_inside_the_weights_is_detected(tmp_path):
    import zipfile

    path = checkpoint().save(tmp_path / "m.pt")
    with zipfile.ZipFile(path) as archive:
        record = next(i for i in archive.infolist() if "/data/" in i.filename and i.file_size >= 8)
    blob = bytearray(path.read_bytes())
    # The record's bytes follow its local header (30 bytes + name + extra field).
    name_len = int.from_bytes(blob[record.header_offset + 26:record.header_offset + 28], "little")
    extra_len = int.from_bytes(blob[record.header_offset + 28:record.header_offset + 30], "little")
    start = record.header_offset + 30 + name_len + extra_len
    blob[start + 2] ^= 0x40  # a few bits of one float: torch alone would load it silently
    corrupted = tmp_path / "bad.pt"
    corrupted.write_bytes(bytes(blob))
    torch.load(corrupted, weights_only=True)  # the unchecked load succeeds...
    with pytest.raises(CheckpointError, match="fails its checksum"):
        load_checkpoint(corrupted)  # ...ours does not


def test_non_finite_weights_are_refused(tmp_path):
    bad = checkpoint()
    key = next(iter(bad.state_dict))
    bad.state_dict = {**bad.state_dict, key: torch.full_like(bad.state_dict[key], math.nan)}
    path = bad.save(tmp_path / "nan.pt")
    with pytest.raises(CheckpointError, match=f"NaN or infinite values \\({key}\\)"):
        load_checkpoint(path)


@pytest.mark.parametrize("indices, fragment", [([0, 1, 7], "class index 7 is outside toy's 0..2"),
                                               ([0, 0, 1], "repeated class indices"),
                                               ([0, 2, 1], "class 2 of toy is '2', not '1'")])
def test_class_indices_must_name_the_datasets_classes(tmp_path, indices, fragment):
    payload = v1_payload()
    payload["data"]["class_indices"] = indices
    path = tmp_path / "bad.pt"
    torch.save(payload, path)
    with pytest.raises(CheckpointError, match=fragment):
        load_checkpoint(path)


def test_a_folder_is_not_a_checkpoint(tmp_path):
    with pytest.raises(WpgdkitError, match="is a folder, not a file"):
        load_checkpoint(tmp_path)


@pytest.mark.parametrize("protocol", [0, 2, 4, 5])
def test_a_plain_pickle_carrying_code_says_so_and_runs_nothing(tmp_path, protocol):
    import pickle

    marker = tmp_path / "pwned"
    path = tmp_path / "legacy.pt"
    path.write_bytes(pickle.dumps({"epoch": RunsCode(marker)}, protocol=protocol))
    with pytest.raises(CheckpointError, match=r"holds code or objects \((posix|os|nt)\.system\)"):
        load_checkpoint(path)
    assert not marker.exists()
