"""End-to-end training on the toy problem: CE, PGD, WPGD, checkpoints, resume, torchrun."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from wpgdkit.errors import MetricFormatError, WpgdkitError
from wpgdkit.labelmetric.shipped import PAPER_TOY_METRIC
from wpgdkit.labelmetric import write_metric
from wpgdkit.training import DataConfig, TrainConfig, load_checkpoint, log_path_for, train


def toy_config(tmp_path, method: str = "pgd", **changes) -> TrainConfig:
    base = dict(
        data=DataConfig("toy", limit=600, val_fraction=0.2), model="mlp", method=method, norm="l2", eps=0.4,
        steps=3, eval_steps=3, epochs=2, batch_size=64, lr=0.05, out=str(tmp_path / f"{method}.pt"),
        device="cpu", deterministic=True,
    )
    base.update(changes)
    return TrainConfig(**base)


@pytest.fixture
def toy_metric(tmp_path):
    return str(write_metric(PAPER_TOY_METRIC, tmp_path / "toy.csv"))


@pytest.mark.parametrize("method", ["ce", "pgd", "wpgd"])
def test_each_method_trains_and_writes_a_self_describing_checkpoint(tmp_path, toy_metric, method):
    config = toy_config(tmp_path, method, metric=toy_metric, p=2.5)
    result = train(config)
    assert len(result.history) == 2
    state = load_checkpoint(result.checkpoint)  # weights_only=True inside
    assert state["method"] == method and state["epoch"] == 2 and state["p"] == 2.5 and state["lam"] == "inf"
    assert state["model"]["name"] == "mlp" and state["model"]["input_shape"] == [2]
    assert state["data"]["dataset"] == "toy" and state["data"]["classes"] == ["0", "1", "2"]
    assert state["attack"] == {"norm": "l2", "eps": 0.4, "step_size": pytest.approx(2.5 * 0.4 / 3), "steps": 3,
                               "random_start": True}
    assert torch.equal(state["metric"]["matrix"], torch.tensor(PAPER_TOY_METRIC.matrix, dtype=torch.float64))
    assert state["optimizer"]["param_groups"][0]["nesterov"] is True
    lines = log_path_for(result.checkpoint).read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2]
    # The toy classes overlap only a little: any method beats chance by far.
    assert result.history[-1]["val_accuracy"] > 0.8


def test_resume_continues_to_the_uninterrupted_result(tmp_path, toy_metric):
    straight = train(toy_config(tmp_path / "a", "wpgd", metric=toy_metric, epochs=3))
    config = toy_config(tmp_path / "b", "wpgd", metric=toy_metric, epochs=3)

    def interrupt(record):
        if record["epoch"] == 1:
            raise KeyboardInterrupt  # a killed run, after epoch 1's checkpoint

    with pytest.raises(KeyboardInterrupt):
        train(config, on_epoch_end=interrupt)
    assert load_checkpoint(config.out)["epoch"] == 1
    resumed = train(TrainConfig(**{**config.__dict__, "resume": True}))
    a = load_checkpoint(straight.checkpoint)["model"]["state_dict"]
    b = load_checkpoint(resumed.checkpoint)["model"]["state_dict"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    timing = {"images_per_s", "seconds"}
    strip = lambda history: [{k: v for k, v in r.items() if k not in timing} for r in history]  # noqa: E731
    assert strip(resumed.history) == strip(straight.history)


def test_resume_refuses_other_settings(tmp_path):
    config = toy_config(tmp_path, "ce", epochs=1)
    train(config)
    with pytest.raises(WpgdkitError, match="cannot resume"):
        train(TrainConfig(**{**config.__dict__, "resume": True, "lr": 0.01}))


def test_metric_must_match_the_classes(tmp_path, toy_metric):
    sub = toy_config(tmp_path, "wpgd", metric=toy_metric, data=DataConfig("toy", classes=("0", "2"), limit=300))
    state = load_checkpoint(train(TrainConfig(**{**sub.__dict__, "epochs": 1})).checkpoint)
    assert state["metric"]["classes"] == ["0", "2"]
    assert state["metric"]["matrix"].tolist() == [[0, 0.01], [0.01, 0]]  # sliced to the sub-problem
    other = tmp_path / "other.csv"
    other.write_text(",a,b,c\na,0,1,1\nb,1,0,1\nc,1,1,0\n")
    with pytest.raises(MetricFormatError, match="neither"):
        train(toy_config(tmp_path, "wpgd", metric=str(other)))


@pytest.mark.parametrize(
    "changes, fragment",
    [
        ({"method": "wpgd"}, "needs --metric"),
        ({"eps": 0.0}, "--eps"),
        ({"steps": 0}, "--steps"),
        ({"p": 0.0}, "--p"),
        ({"method": "trades"}, "unknown method"),
        ({"model": "resnet-9000"}, "unknown model"),
        ({"out": "model.ckpt"}, ".pt"),
    ],
)
def test_bad_configs(tmp_path, changes, fragment):
    with pytest.raises(WpgdkitError, match=fragment):
        train(toy_config(tmp_path, **{"method": "pgd", **changes}))


@pytest.mark.slow
def test_torchrun_two_processes_match_one(tmp_path):
    args = ["--dataset", "toy", "--model", "mlp", "--method", "ce", "--limit", "512", "--val-fraction", "0",
            "--epochs", "2", "--batch-size", "64", "--lr", "0.05", "--device", "cpu", "--deterministic", "--quiet",
            "--eval-steps", "0"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    single = tmp_path / "single.pt"
    subprocess.run([sys.executable, "-m", "wpgdkit", "train", *args, "--out", str(single)], check=True, env=env,
                   capture_output=True, timeout=300)
    double = tmp_path / "ddp.pt"
    run = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                          "-m", "wpgdkit", "train", *args, "--out", str(double)], env=env, capture_output=True,
                         text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    a = load_checkpoint(single)["model"]["state_dict"]
    b = load_checkpoint(double)["model"]["state_dict"]
    # The averaged gradient of two half-batches is the full batch's, up to float summation order.
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-4, atol=1e-5)
    assert len(log_path_for(double).read_text().splitlines()) == 2  # rank 0 alone writes the log
