"""Training refuses what cannot train, stops on divergence, and never leaves or poisons files."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from wpgdkit.checkpoint import load_checkpoint
from wpgdkit.errors import OutputError, WpgdkitError
from wpgdkit.labelmetric import write_metric
from wpgdkit.labelmetric.core import LabelMetric
from wpgdkit.training import DataConfig, TrainConfig, log_path_for, train
from wpgdkit.training.loop import DivergenceError


def toy(tmp_path, **changes) -> TrainConfig:
    base = dict(data=DataConfig("toy", limit=128, val_fraction=0.0), model="mlp", method="pgd", norm="l2", eps=0.4,
                steps=1, eval_steps=0, epochs=1, batch_size=64, lr=0.05, out=str(tmp_path / "run.pt"), device="cpu")
    base.update(changes)
    return TrainConfig(**base)


@pytest.mark.parametrize("changes, fragment", [
    ({"lr": math.inf}, "lr must be a number in (0, 1000]"), ({"lr": math.nan}, "lr must be"), ({"lr": -1.0}, "lr must be"),
    ({"momentum": math.nan}, "momentum must be a number in [0, 1)"), ({"momentum": -5.0}, "momentum must be"),
    ({"momentum": 1.0}, "momentum must be"), ({"weight_decay": math.nan}, "weight_decay must be"),
    ({"weight_decay": -1.0}, "weight_decay must be a number in [0, 1]"), ({"p": math.inf}, "p must be"),
    ({"lam": math.nan}, "lam must be"), ({"epochs": 0}, "epochs must be"), ({"batch_size": 0}, "batch_size must be"),
    ({"seed": -1}, "seed must be a whole number in [0, 4294967295]"), ({"seed": 2**70}, "seed must be"),
    ({"workers": -1}, "workers must be"), ({"eval_steps": -1}, "eval_steps must be"),
    ({"data": DataConfig("toy", limit=1)}, "limit must be"), ({"data": DataConfig("toy", val_fraction=1.0)}, "val_fraction"),
    ({"data": DataConfig("toy", imbalance=0.0)}, "imbalance must be"),
    ({"eps": math.nan}, "eps must be"), ({"steps": 0}, "steps must be"),
])
def test_out_of_range_settings_are_refused_before_any_work(tmp_path, changes, fragment):
    with pytest.raises(WpgdkitError, match=fragment.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        train(toy(tmp_path, **changes))
    assert list(tmp_path.iterdir()) == []


def test_a_ball_larger_than_the_data_range_is_refused(tmp_path):
    pytest.importorskip("wpgdkit.datasets")
    with pytest.raises(WpgdkitError, match=r"eps must be at most 1 \(the width of the data range"):
        train(toy(tmp_path, data=DataConfig("fashion-mnist", limit=64), norm="linf", eps=1e9))
    with pytest.raises(WpgdkitError, match=r"eps must be at most 28 \(the diameter of the data range"):
        train(toy(tmp_path, data=DataConfig("fashion-mnist", limit=64), norm="l2", eps=29.0))
    assert list(tmp_path.iterdir()) == []


def test_an_overflowing_powered_metric_is_refused(tmp_path):
    metric = write_metric(LabelMetric(("0", "1", "2"), (1 - torch.eye(3).double().numpy()) * 1e10), tmp_path / "m.csv")
    with pytest.raises(WpgdkitError, match="C\\^p finite in float32"):
        train(toy(tmp_path, method="wpgd", metric=str(metric), p=4.0))


def test_divergence_stops_with_one_line_and_keeps_the_last_finite_checkpoint(tmp_path):
    config = toy(tmp_path, method="ce", epochs=3, lr=1.0)
    calls = {"n": 0}

    def poison(record):
        calls["n"] += 1
        if calls["n"] == 1:  # after epoch 1 is saved, the weights blow up
            with torch.no_grad():
                next(iter(model_holder)).fill_(math.nan)

    model_holder = []
    real_step = torch.optim.SGD.step

    def capture(self, *args, **kwargs):
        if not model_holder:
            model_holder.append(self.param_groups[0]["params"][0])
        return real_step(self, *args, **kwargs)

    torch.optim.SGD.step = capture
    try:
        with pytest.raises(DivergenceError, match=r"loss became nan at epoch 2, step 1 of 2; .* keeps epoch 1"):
            train(config, on_epoch_end=poison)
    finally:
        torch.optim.SGD.step = real_step
    kept = load_checkpoint(config.out)  # refuses non-finite weights: this one is finite
    assert kept.epoch == 1
    for line in log_path_for(config.out).read_text().splitlines():
        json.loads(line, parse_constant=lambda c: pytest.fail(f"{c} in the log"))


def test_a_huge_learning_rate_diverges_to_one_error(tmp_path):
    with pytest.raises(DivergenceError, match="diverged|became"):
        train(toy(tmp_path, method="ce", lr=999.0, epochs=5, data=DataConfig("toy", limit=600, val_fraction=0.0)))


def test_a_full_disk_is_one_error_and_leaves_the_previous_checkpoint(tmp_path, monkeypatch):
    config = toy(tmp_path, method="ce", epochs=2)

    real_save = torch.save
    calls = {"n": 0}

    def full(obj, f, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("[enforce fail at inline_container.cc:778] . PytorchStreamWriter failed writing file data/3: file write failed")
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", full)
    with pytest.raises(OutputError, match="cannot write .*run.pt: .*file write failed"):
        train(config)
    assert load_checkpoint(config.out).epoch == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.log.jsonl", "run.pt"]  # no temporary, no lock


def test_a_second_process_on_the_same_out_gets_one_line(tmp_path):
    import fcntl

    config = toy(tmp_path, method="ce")
    lock = tmp_path / ".run.pt.lock"
    fd = os.open(lock, os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)  # another wpgdkit train holds it
    try:
        with pytest.raises(WpgdkitError, match="another process is training into"):
            train(config)
        assert not (tmp_path / "run.pt").exists()
    finally:
        os.close(fd)
    train(config)  # free again
    assert not lock.exists()


def test_temporaries_of_a_killed_run_are_removed_when_the_run_goes_on(tmp_path):
    config = toy(tmp_path, method="ce", epochs=2)
    train(TrainConfig(**{**config.__dict__, "epochs": 1}))
    stale = tmp_path / ".run.pt.abc123.tmp"  # what a SIGKILL during a checkpoint write leaves
    stale.write_bytes(b"half a checkpoint")
    other = tmp_path / ".other.pt.abc123.tmp"  # another run's: not ours to touch
    other.write_bytes(b"x")
    train(TrainConfig(**{**config.__dict__, "force": True}))
    assert not stale.exists() and other.exists()


@pytest.mark.slow
def test_sigterm_unwinds_like_ctrl_c(tmp_path):
    out = tmp_path / "run.pt"
    args = [sys.executable, "-m", "wpgdkit", "train", "--dataset", "toy", "--model", "mlp", "--method", "pgd",
            "--norm", "l2", "--eps", "0.4", "--steps", "20", "--limit", "3000", "--epochs", "200", "--eval-steps", "0",
            "--device", "cpu", "--quiet", "--threads", "1", "--out", str(out)]
    proc = subprocess.Popen(args, stderr=subprocess.PIPE, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    deadline = time.time() + 120
    while not out.exists() and time.time() < deadline:  # wait for the first checkpoint
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert err.count("\n") == 1 and "interrupted" in err and "Traceback" not in err
    names = {p.name for p in tmp_path.iterdir()}
    assert names <= {"run.pt", "run.log.jsonl"}  # no temporary, no lock
    assert load_checkpoint(out).epoch >= 1


def test_asymmetric_costs_are_a_valid_metric_for_training(tmp_path):
    # Cost-sensitive problems are often asymmetric (missing a fault costs more than a false alarm).
    costs = tmp_path / "asym.csv"
    costs.write_text(",0,1,2\n0,0,10,1\n1,1,0,1\n2,5,1,0\n")
    config = toy(tmp_path, method="wpgd", metric=str(costs))
    train(config)
    assert load_checkpoint(config.out).metric.matrix[0, 1] == 10 and load_checkpoint(config.out).metric.matrix[1, 0] == 1
