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
from wpgdkit.training import DataConfig, TrainConfig, load_checkpoint, log_path_for, run_settings, train


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
    s = state.settings
    assert s.method == method and state.epoch == 2 and s.p == 2.5 and s.lam == float("inf")
    assert s.model.name == "mlp" and s.model.input_shape == (2,)
    assert s.data.dataset == "toy" and s.data.classes == ("0", "1", "2")
    assert (s.threat.norm, s.threat.eps, s.threat.steps, s.threat.random_start) == ("l2", 0.4, 3, True)
    assert s.threat.step == pytest.approx(2.5 * 0.4 / 3)
    assert state.metric.matrix.tolist() == PAPER_TOY_METRIC.matrix.tolist()
    assert state.optimizer_state["param_groups"][0]["nesterov"] is True
    assert state.complete and state.fingerprint() == run_settings(config).fingerprint()
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
    assert load_checkpoint(config.out).epoch == 1
    resumed = train(TrainConfig(**{**config.__dict__, "resume": True}))
    a = load_checkpoint(straight.checkpoint).state_dict
    b = load_checkpoint(resumed.checkpoint).state_dict
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    timing = {"images_per_s", "seconds"}
    strip = lambda history: [{k: v for k, v in r.items() if k not in timing} for r in history]  # noqa: E731
    assert strip(resumed.history) == strip(straight.history)


def test_resume_refuses_other_settings(tmp_path):
    config = toy_config(tmp_path, "ce", epochs=1)
    train(config)
    with pytest.raises(WpgdkitError, match=r"cannot resume .*optimizer\.lr=0\.05 vs 0\.01"):
        train(TrainConfig(**{**config.__dict__, "resume": True, "lr": 0.01}))


def test_an_existing_run_is_never_silently_replaced(tmp_path):
    config = toy_config(tmp_path, "ce", epochs=1)
    train(config)
    before = (tmp_path / "ce.pt").read_bytes()
    with pytest.raises(WpgdkitError, match="already holds a run"):
        train(config)
    assert (tmp_path / "ce.pt").read_bytes() == before
    assert len(log_path_for(config.out).read_text().splitlines()) == 1
    # force starts over: one epoch sequence in the log, not two.
    train(TrainConfig(**{**config.__dict__, "force": True, "seed": 1}))
    assert [json.loads(line)["epoch"] for line in log_path_for(config.out).read_text().splitlines()] == [1]
    assert load_checkpoint(config.out).settings.seed == 1


def test_fingerprint_covers_every_setting_that_changes_the_weights(tmp_path, toy_metric):
    base = toy_config(tmp_path, "wpgd", metric=toy_metric)
    reference = run_settings(base).fingerprint()
    changed = [{"lr": 0.01}, {"epochs": 3}, {"eps": 0.5}, {"steps": 4}, {"step_size": 0.1}, {"p": 2.0},
               {"lam": 10.0}, {"seed": 1}, {"momentum": 0.5}, {"weight_decay": 0.0}, {"schedule": "cosine"},
               {"batch_size": 32}, {"model": "linear"}, {"random_start": False},
               {"data": DataConfig("toy", limit=500, val_fraction=0.2)},
               {"data": DataConfig("toy", limit=600, val_fraction=0.1)},
               {"data": DataConfig("toy", limit=600, val_fraction=0.2, classes=("0", "1"))}]
    fingerprints = [run_settings(TrainConfig(**{**base.__dict__, **change})).fingerprint() for change in changed]
    assert reference not in fingerprints and len(set(fingerprints)) == len(changed)
    other = tmp_path / "other.csv"
    write_metric(PAPER_TOY_METRIC.with_provenance(), other)
    scaled = tmp_path / "scaled.csv"
    scaled.write_text(",0,1,2\n0,0,10,0.02\n1,10,0,1\n2,0.02,1,0\n")
    assert run_settings(TrainConfig(**{**base.__dict__, "metric": str(scaled)})).fingerprint() != reference
    # Where things run is not part of the run.
    same = [{"device": "cpu", "amp": False}, {"deterministic": False}, {"eval_steps": 7}, {"workers": 1},
            {"out": str(tmp_path / "elsewhere.pt")}, {"metric": str(other)}]
    assert all(run_settings(TrainConfig(**{**base.__dict__, **c})).fingerprint() == reference for c in same)


def test_metric_must_match_the_classes(tmp_path, toy_metric):
    sub = toy_config(tmp_path, "wpgd", metric=toy_metric, data=DataConfig("toy", classes=("0", "2"), limit=300))
    state = load_checkpoint(train(TrainConfig(**{**sub.__dict__, "epochs": 1})).checkpoint)
    assert state.metric.classes == ("0", "2")
    assert state.metric.matrix.tolist() == [[0, 0.01], [0.01, 0]]  # sliced to the sub-problem
    other = tmp_path / "other.csv"
    other.write_text(",a,b,c\na,0,1,1\nb,1,0,1\nc,1,1,0\n")
    with pytest.raises(MetricFormatError, match="not the 3 classes"):
        train(toy_config(tmp_path, "wpgd", metric=str(other), out=str(tmp_path / "other.pt")))


@pytest.mark.parametrize(
    "changes, fragment",
    [
        ({"method": "wpgd"}, "needs a label metric"),
        ({"eps": 0.0}, "eps must be"),
        ({"steps": 0}, "steps must be"),
        ({"p": 0.0}, "p must be"),
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
    a = load_checkpoint(single).state_dict
    b = load_checkpoint(double).state_dict
    # The averaged gradient of two half-batches is the full batch's, up to float summation order.
    # float32 by design (gloo DDP): 16 SGD steps at lr 0.05 do not amplify ~1e-7 rounding (3e-8 measured), so
    # rtol 1e-4/atol 1e-5 is a ~800x margin, while summed instead of averaged gradients miss it ~1000x.
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-4, atol=1e-5)
    assert len(log_path_for(double).read_text().splitlines()) == 2  # rank 0 alone writes the log
