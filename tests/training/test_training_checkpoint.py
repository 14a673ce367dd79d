"""Checkpoints load with weights_only=True; anything else is refused without running."""

from __future__ import annotations

import os

import pytest
import torch

from wpgdkit.errors import DataNotFoundError
from wpgdkit.training.checkpoint import CheckpointError, load_checkpoint, save_checkpoint


def minimal(epoch: int = 1) -> dict:
    return {"format": "wpgdkit-checkpoint", "version": 1, "tool_version": "0", "model": {"state_dict": {"w": torch.ones(2)}},
            "data": {}, "method": "ce", "attack": {}, "epoch": epoch}


def test_round_trip(tmp_path):
    path = save_checkpoint(minimal(), tmp_path / "m.pt")
    loaded = load_checkpoint(path)
    assert loaded["epoch"] == 1 and torch.equal(loaded["model"]["state_dict"]["w"], torch.ones(2))
    assert [p.name for p in tmp_path.iterdir()] == ["m.pt"]  # no temporary left behind


class RunsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_pickled_code_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "pwned"
    payload = minimal()
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
    good = save_checkpoint(minimal(), tmp_path / "good.pt")
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


def test_failed_write_keeps_the_previous_checkpoint(tmp_path):
    path = save_checkpoint(minimal(1), tmp_path / "m.pt")
    bad = minimal(2)
    bad["unpicklable"] = lambda: None  # torch.save fails on a lambda
    with pytest.raises(Exception):
        save_checkpoint(bad, path)
    assert load_checkpoint(path)["epoch"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["m.pt"]
