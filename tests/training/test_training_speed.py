"""What the loop's speed-ups must not change: the weights, the records, the errors and the checkpoints.

- a seeded run equals, bit for bit, the same training written out by hand;
- reading the statistics from the device in blocks (``SYNC_EVERY``) changes
  neither the weights nor the records, and a non-finite loss is still
  reported at its step;
- the batched augmentation is the per-image loop's;
- a run in channels-last layout saves contiguous tensors that load alike into
  a contiguous network; ``auto`` keeps the default layout on a CPU;
- one process under torchrun (process group, DistributedDataParallel) gives
  the plain run's weights.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import types

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import wpgdkit.training.loop as loop
from wpgdkit.attacks import PGD, WPGD
from wpgdkit.errors import UnknownNameError, WpgdkitError
from wpgdkit.labelmetric import read_metric, write_metric
from wpgdkit.labelmetric.shipped import PAPER_TOY_METRIC
from wpgdkit.training import DataConfig, TrainConfig, load_checkpoint, log_path_for, run_settings, train
from wpgdkit.training.data import augment_batch, batch_generator, batch_seed, prepare_data
from wpgdkit.training.loop import DivergenceError, contiguous_tensors

TIMING = {"images_per_s", "seconds"}


def toy_config(tmp_path, method: str = "pgd", **changes) -> TrainConfig:
    base = dict(data=DataConfig("toy", limit=600, val_fraction=0.2), model="mlp", method=method, norm="l2", eps=0.4,
                steps=3, eval_steps=2, epochs=2, batch_size=64, lr=0.05, out=str(tmp_path / f"{method}.pt"),
                device="cpu", deterministic=True)
    base.update(changes)
    return TrainConfig(**base)


@pytest.fixture
def toy_metric(tmp_path):
    return str(write_metric(PAPER_TOY_METRIC, tmp_path / "toy.csv"))


def strip(history):
    return [{k: v for k, v in record.items() if k not in TIMING} for record in history]


def hand_replica(config: TrainConfig) -> tuple[dict[str, torch.Tensor], list[float]]:
    """The run of ``config`` written out plainly: its final weights and per-epoch mean training losses."""
    data = prepare_data(config.data)
    settings = run_settings(config)
    torch.manual_seed(config.seed)
    model = settings.model.build()
    threat = config.threat(data.input_range)
    if config.method == "pgd":
        attack = PGD(model, threat=threat)
    else:
        attack = WPGD(model, read_metric(config.metric), p=config.p, lam=config.lam, threat=threat)
    opt = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum,
                          weight_decay=config.weight_decay, nesterov=True)
    total = config.epochs * -(-len(data.train) // config.batch_size)
    sched = torch.optim.lr_scheduler.LambdaLR(  # piecewise: ×0.1 at half the steps, ×0.01 at three quarters
        opt, lambda step: 1.0 if step / total < 0.5 else 0.1 if step / total < 0.75 else 0.01)
    losses = []
    for epoch in range(config.epochs):
        summed = seen = 0.0
        for index, x, y in batch_generator(data.train, batch_size=config.batch_size, seed=config.seed, epoch=epoch):
            x = attack(x, y, generator=torch.Generator().manual_seed(batch_seed(config.seed, epoch, index, 1)))
            model.train()
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            summed += loss.item() * len(y)
            seen += len(y)
        losses.append(summed / seen)
    return model.state_dict(), losses


@pytest.mark.parametrize("method, changes", [("pgd", {}), ("wpgd", {"p": 2.5}), ("wpgd", {"p": 2.0, "lam": 2.0})])
def test_a_seeded_run_is_the_hand_written_loop_bit_for_bit(tmp_path, toy_metric, method, changes):
    config = toy_config(tmp_path, method, metric=toy_metric if method == "wpgd" else None, **changes)
    result = train(config)
    weights, losses = hand_replica(config)
    saved = load_checkpoint(result.checkpoint).state_dict
    assert saved.keys() == weights.keys()
    assert all(torch.equal(saved[k], weights[k]) for k in weights)
    assert [r["train_loss"] for r in result.history] == losses  # float64 sums in step order, exactly


def test_reading_the_statistics_in_blocks_changes_nothing(tmp_path, toy_metric, monkeypatch):
    runs = {}
    for every in (1, 3, loop.SYNC_EVERY):
        monkeypatch.setattr(loop, "SYNC_EVERY", every)
        progress = Recorder()
        result = train(toy_config(tmp_path / str(every), "wpgd", metric=toy_metric), progress=progress)
        runs[every] = (load_checkpoint(result.checkpoint).state_dict, strip(result.history), progress)
    (w1, h1, p1), *others = runs.values()
    for weights, history, progress in others:
        assert all(torch.equal(w1[k], weights[k]) for k in w1) and history == h1
        assert progress.advances == p1.advances == [8, 8]  # one advance per batch, whenever read
    last = p1.stats[-1]  # the display's last numbers are the epoch's record
    assert last["loss"] == h1[-1]["train_loss"] and last["acc"] == h1[-1]["train_adversarial_accuracy"]


class Recorder:
    def __init__(self) -> None:
        self.advances: list[int] = []
        self.stats: list[dict[str, float]] = []

    def start_epoch(self, epoch, batches):
        self.advances.append(0)

    def advance(self, stats):
        self.advances[-1] += 1
        self.stats.append(stats)

    def end_epoch(self, record):
        pass


def test_a_non_finite_loss_is_reported_at_its_step_though_read_later(tmp_path, monkeypatch):
    calls = {"n": 0}

    def cross_entropy(logits, y, **kwargs):
        calls["n"] += 1
        loss = F.cross_entropy(logits, y, **kwargs)
        return loss * math.nan if calls["n"] >= 4 else loss  # the 4th step: epoch 2, step 2 of 2

    monkeypatch.setattr(loop, "F", types.SimpleNamespace(cross_entropy=cross_entropy))
    config = toy_config(tmp_path, "ce", data=DataConfig("toy", limit=128, val_fraction=0.0), eval_steps=0, epochs=3)
    with pytest.raises(DivergenceError, match=r"loss became nan at epoch 2, step 2 of 2; .* keeps epoch 1"):
        train(config)
    assert load_checkpoint(config.out).epoch == 1
    assert len(log_path_for(config.out).read_text().splitlines()) == 1


def per_image_augment(x, *, generator, padding=4):
    """The loop augment_batch replaced: one crop (and flip) per image."""
    n, _, h, w = x.shape
    padded = F.pad(x, (padding, padding, padding, padding))
    offsets = torch.randint(0, 2 * padding + 1, (n, 2), generator=generator)
    flips = torch.rand(n, generator=generator) < 0.5
    out = torch.empty_like(x)
    for i in range(n):
        dy, dx = int(offsets[i, 0]), int(offsets[i, 1])
        crop = padded[i, :, dy:dy + h, dx:dx + w]
        out[i] = crop.flip(-1) if flips[i] else crop
    return out


@pytest.mark.parametrize("shape, padding", [((64, 3, 32, 32), 4), ((5, 1, 6, 6), 2), ((3, 3, 64, 64), 4)])
def test_batched_augmentation_is_the_per_image_loop(shape, padding):
    x = torch.rand(shape)
    for seed in range(4):
        expected = per_image_augment(x, generator=torch.Generator().manual_seed(seed), padding=padding)
        got = augment_batch(x, generator=torch.Generator().manual_seed(seed), padding=padding)
        assert torch.equal(got, expected) and got.is_contiguous()
        nhwc = x.contiguous(memory_format=torch.channels_last)
        assert torch.equal(augment_batch(nhwc, generator=torch.Generator().manual_seed(seed), padding=padding),
                           expected)


# --- layout -----------------------------------------------------------------------------------------


@pytest.fixture
def images_npz(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "images.npz"
    np.savez(path, x_train=rng.integers(0, 256, (96, 1, 16, 16), dtype=np.uint8), y_train=rng.integers(0, 3, 96),
             x_test=rng.integers(0, 256, (12, 1, 16, 16), dtype=np.uint8), y_test=rng.integers(0, 3, 12))
    return str(path)


def image_config(tmp_path, images_npz, **changes) -> TrainConfig:
    base = dict(data=DataConfig(images_npz, val_fraction=0.25), model="small-cnn", method="pgd", eps=8 / 255,
                steps=1, eval_steps=1, epochs=1, batch_size=32, out=str(tmp_path / "run.pt"), device="cpu")
    base.update(changes)
    return TrainConfig(**base)


def test_a_channels_last_run_saves_contiguous_tensors_that_load_alike(tmp_path, images_npz, monkeypatch):
    built = []
    build = loop._build_network
    monkeypatch.setattr(loop, "_build_network", lambda *a, **k: built.append(build(*a, **k)) or built[-1])
    result = train(image_config(tmp_path, images_npz, memory_format="channels_last"))
    (live,) = built
    conv = live.net.features[3].weight
    assert conv.is_contiguous(memory_format=torch.channels_last) and not conv.is_contiguous()  # it trained NHWC
    state = load_checkpoint(result.checkpoint)
    assert all(t.is_contiguous() for t in state.state_dict.values())
    momenta = [v for s in state.optimizer_state["state"].values() for v in s.values() if torch.is_tensor(v)]
    assert momenta and all(t.is_contiguous() for t in momenta)
    fresh = state.settings.model.build()  # contiguous
    state.load_weights_into(fresh)
    trained = live.state_dict()
    assert all(torch.equal(v, trained[k]) for k, v in fresh.state_dict().items())
    assert all(v.is_contiguous() for v in fresh.state_dict().values())


def test_contiguous_tensors_copies_only_what_is_not_contiguous():
    nhwc = torch.rand(2, 3, 4, 5).contiguous(memory_format=torch.channels_last)
    plain = torch.rand(3)
    out = contiguous_tensors({"a": nhwc, "b": [plain, (nhwc, 7)], "c": "x"})
    assert out["a"].is_contiguous() and torch.equal(out["a"], nhwc) and out["b"][0] is plain
    assert isinstance(out["b"][1], tuple) and out["b"][1][1] == 7 and out["c"] == "x"


def test_auto_keeps_the_default_layout_on_a_cpu_without_measuring(tmp_path, images_npz, monkeypatch):
    monkeypatch.setitem(sys.modules, "wpgdkit.models.layout", None)  # importing it would now fail
    reference = train(image_config(tmp_path / "a", images_npz, memory_format="contiguous"))
    auto = train(image_config(tmp_path / "b", images_npz))  # auto is the default
    a, b = (load_checkpoint(r.checkpoint).state_dict for r in (reference, auto))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_memory_format_is_checked_and_is_not_part_of_the_run(tmp_path, images_npz):
    with pytest.raises(UnknownNameError, match="unknown memory_format 'nhwc'; choose one of: auto, contiguous"):
        train(image_config(tmp_path, images_npz, memory_format="nhwc"))
    with pytest.raises(WpgdkitError, match="memory_format must be auto or contiguous for inputs of shape 2: "
                                           "channels_last applies to images"):
        train(toy_config(tmp_path, "ce", memory_format="channels_last"))
    assert not (tmp_path / "run.pt").exists() and not (tmp_path / "ce.pt").exists()
    base = image_config(tmp_path, images_npz)
    assert {run_settings(TrainConfig(**{**base.__dict__, "memory_format": fmt})).fingerprint()
            for fmt in loop.MEMORY_FORMATS} == {run_settings(base).fingerprint()}


# --- torchrun ----------------------------------------------------------------------------------------


@pytest.mark.slow
def test_torchrun_one_process_goes_through_ddp_with_the_plain_runs_weights(tmp_path):
    args = ["--dataset", "toy", "--model", "mlp", "--method", "pgd", "--norm", "l2", "--eps", "0.4", "--steps", "2",
            "--limit", "256", "--val-fraction", "0", "--epochs", "2", "--batch-size", "64", "--device", "cpu",
            "--deterministic", "--quiet", "--eval-steps", "0"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    plain = tmp_path / "plain.pt"
    subprocess.run([sys.executable, "-m", "wpgdkit", "train", *args, "--out", str(plain)], check=True, env=env,
                   capture_output=True, timeout=300)
    launched = tmp_path / "torchrun.pt"
    run = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "1",
                          "-m", "wpgdkit", "train", *args, "--out", str(launched)], env=env, capture_output=True,
                         text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    a, b = load_checkpoint(plain).state_dict, load_checkpoint(launched).state_dict
    assert all(torch.equal(a[k], b[k]) for k in a)  # the mean of one gradient is that gradient


def test_one_process_under_torchrun_starts_a_process_group(monkeypatch):
    import torch.distributed as dist

    from wpgdkit.training.distributed import setup_distributed

    for name, value in {"TORCHELASTIC_RUN_ID": "test", "WORLD_SIZE": "1", "RANK": "0", "LOCAL_RANK": "0",
                        "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(29500 + os.getpid() % 1000)}.items():
        monkeypatch.setenv(name, value)
    ctx = setup_distributed("cpu")
    try:
        assert ctx.initialised and dist.get_backend() == "gloo" and ctx.world_size == 1
        model = torch.nn.Linear(2, 2)
        assert isinstance(ctx.wrap(model), torch.nn.parallel.DistributedDataParallel)
        assert ctx.all_reduce_sum(torch.tensor([1.5, 2.0], dtype=torch.float64)).tolist() == [1.5, 2.0]
    finally:
        ctx.close()
    monkeypatch.delenv("TORCHELASTIC_RUN_ID")
    plain = setup_distributed("cpu")  # a plain process: no group
    assert not plain.initialised and plain.wrap(model) is model


def test_cli_memory_format(tmp_path, images_npz):
    from typer.testing import CliRunner

    from wpgdkit.cli import app

    runner = CliRunner()
    quick = ["--epochs", "1", "--steps", "1", "--eval-steps", "0", "--batch-size", "32", "--device", "cpu", "--quiet"]
    out = tmp_path / "cl.pt"
    result = runner.invoke(app, ["train", "--dataset", images_npz, "--memory-format", "channels_last", "--out",
                                 str(out), *quick])
    assert result.exit_code == 0, result.stderr
    assert all(t.is_contiguous() for t in load_checkpoint(out).state_dict.values())
    bad = runner.invoke(app, ["train", "--dataset", images_npz, "--memory-format", "nhwc", "--out",
                              str(tmp_path / "x.pt"), *quick])
    assert bad.exit_code == 2 and "auto" in bad.stderr and "channels_last" in bad.stderr
    toy = runner.invoke(app, ["train", "--dataset", "toy", "--model", "mlp", "--memory-format", "channels_last",
                              "--out", str(tmp_path / "toy.pt"), *quick])
    assert toy.exit_code != 0
    assert toy.stderr.strip().splitlines() == ["wpgdkit: error: --memory-format must be auto or contiguous for inputs "
                                               "of shape 2: channels_last applies to images (C×H×W)"]
