"""Training on a CUDA GPU: bf16 autocast, channels-last, statistics read in blocks, augmentation, NCCL torchrun.

Marked ``cuda`` and skipped without a GPU; ``benchmarks/gpu_check.sh`` runs
them (``pytest -m cuda``). They were written on a machine without one: the
first GPU run is their first run.
"""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import wpgdkit.training.loop as loop
from wpgdkit.training import DataConfig, TrainConfig, load_checkpoint, train
from wpgdkit.training.data import augment_batch, prepare_data
from wpgdkit.training.distributed import DistributedContext

pytestmark = [pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]

TIMING = {"images_per_s", "seconds"}


@pytest.fixture(autouse=True)
def restore_determinism():
    """A deterministic run switches torch's deterministic algorithms on for the process; put the switch back."""
    before = torch.are_deterministic_algorithms_enabled()
    yield
    torch.use_deterministic_algorithms(before)


@pytest.fixture
def images32(tmp_path):
    """3×32×32 uint8 images: the CIFAR shape, so the run augments (on the GPU, with a CUDA generator)."""
    rng = np.random.default_rng(0)
    path = tmp_path / "images32.npz"
    np.savez(path, x_train=rng.integers(0, 256, (160, 3, 32, 32), dtype=np.uint8), y_train=rng.integers(0, 4, 160),
             x_test=rng.integers(0, 256, (16, 3, 32, 32), dtype=np.uint8), y_test=rng.integers(0, 4, 16))
    return str(path)


def image_config(tmp_path, images32, **changes) -> TrainConfig:
    base = dict(data=DataConfig(images32, val_fraction=0.2), model="small-cnn", method="pgd", eps=8 / 255, steps=2,
                eval_steps=1, epochs=1, batch_size=32, out=str(tmp_path / "run.pt"), device="cuda")
    base.update(changes)
    return TrainConfig(**base)


def test_bf16_autocast_run_with_augmentation_writes_a_checkpoint_that_loads_on_the_cpu(tmp_path, images32):
    config = image_config(tmp_path, images32, amp=True)
    assert prepare_data(config.data).augment  # 32×32 images: augmented on the GPU
    result = train(config)
    record = result.history[0]
    assert np.isfinite(record["train_loss"]) and 0 <= record["val_robust_accuracy"] <= 1
    state = load_checkpoint(result.checkpoint)  # onto the CPU
    assert state.amp is True
    assert all(t.device.type == "cpu" and t.is_contiguous() for t in state.state_dict.values())
    model = state.build_model("cpu")
    assert model(torch.rand(2, 3, 32, 32)).shape == (2, 4)


def test_a_channels_last_run_on_cuda_loads_identically_into_a_contiguous_cpu_model(tmp_path, images32, monkeypatch):
    built = []
    build = loop._build_network
    monkeypatch.setattr(loop, "_build_network", lambda *a, **k: built.append(build(*a, **k)) or built[-1])
    result = train(image_config(tmp_path, images32, memory_format="channels_last"))
    (live,) = built
    assert live.net.features[3].weight.is_contiguous(memory_format=torch.channels_last)
    state = load_checkpoint(result.checkpoint)
    assert all(t.is_contiguous() for t in state.state_dict.values())
    fresh = state.settings.model.build()
    state.load_weights_into(fresh)
    trained = {k: v.cpu() for k, v in live.state_dict().items()}
    assert all(torch.equal(v, trained[k]) for k, v in fresh.state_dict().items())


def test_auto_measures_once_and_leaves_the_model_and_the_random_state_as_they_were(tmp_path, images32):
    config = image_config(tmp_path, images32)
    data = prepare_data(config.data)
    ctx = DistributedContext(0, 1, torch.device("cuda"))
    torch.manual_seed(0)
    model = loop.run_settings(config).model.build().cuda()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rng = torch.cuda.get_rng_state(), torch.get_rng_state()
    layout = loop._memory_format(config, ctx, data, model)
    assert layout in (torch.contiguous_format, torch.channels_last)
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    assert torch.equal(torch.cuda.get_rng_state(), rng[0]) and torch.equal(torch.get_rng_state(), rng[1])
    deterministic = TrainConfig(**{**config.__dict__, "deterministic": True})
    assert loop._memory_format(deterministic, ctx, data, model) == torch.contiguous_format


def test_augmentation_draws_on_the_generators_device():
    x = torch.rand(16, 3, 32, 32, device="cuda")
    out = augment_batch(x, generator=torch.Generator(device="cuda").manual_seed(3))
    g = torch.Generator(device="cuda").manual_seed(3)  # the same draws, then the per-image crops
    offsets = torch.randint(0, 9, (16, 2), generator=g, device="cuda").cpu()
    flips = (torch.rand(16, generator=g, device="cuda") < 0.5).cpu()
    padded = F.pad(x, (4, 4, 4, 4))
    for i in range(16):
        crop = padded[i, :, offsets[i, 0]:offsets[i, 0] + 32, offsets[i, 1]:offsets[i, 1] + 32]
        assert torch.equal(out[i], crop.flip(-1) if flips[i] else crop)


def test_wpgd_reduced_objective_has_the_per_sample_gradient_on_cuda():
    from wpgdkit.losses import wasserstein_loss

    g = torch.Generator().manual_seed(0)
    logits = (3 * torch.randn(256, 10, generator=g)).cuda()
    target = torch.randint(0, 10, (256,), generator=g).cuda()
    cost_p = (torch.rand(10, 10, generator=g) * 3).pow(2.5).cuda()
    a, b = logits.clone().requires_grad_(True), logits.clone().requires_grad_(True)
    (ga,) = torch.autograd.grad(wasserstein_loss(a, target, cost_p, reduction="sum"), a)
    (gb,) = torch.autograd.grad(wasserstein_loss(b, target, cost_p, reduction="none").sum(), b)
    assert torch.equal(ga, gb)


def toy_config(tmp_path, **changes) -> TrainConfig:
    base = dict(data=DataConfig("toy", limit=600, val_fraction=0.2), model="mlp", method="pgd", norm="l2", eps=0.4,
                steps=3, eval_steps=2, epochs=2, batch_size=64, lr=0.05, out=str(tmp_path / "toy.pt"), device="cuda",
                amp=False, deterministic=True)
    base.update(changes)
    return TrainConfig(**base)


def test_reading_the_statistics_in_blocks_changes_nothing_on_cuda(tmp_path, monkeypatch):
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    runs = []
    for every in (1, loop.SYNC_EVERY):
        monkeypatch.setattr(loop, "SYNC_EVERY", every)
        result = train(toy_config(tmp_path / str(every)))
        history = [{k: v for k, v in r.items() if k not in TIMING} for r in result.history]
        runs.append((load_checkpoint(result.checkpoint).state_dict, history))
    (w1, h1), (w2, h2) = runs
    assert h1 == h2 and all(torch.equal(w1[k], w2[k]) for k in w1)


@pytest.mark.slow
def test_torchrun_one_process_on_nccl_gives_the_plain_runs_weights(tmp_path):
    args = ["--dataset", "toy", "--model", "mlp", "--method", "pgd", "--norm", "l2", "--eps", "0.4", "--steps", "2",
            "--limit", "256", "--val-fraction", "0", "--epochs", "2", "--batch-size", "64", "--device", "cuda",
            "--no-amp", "--deterministic", "--quiet", "--eval-steps", "0"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUBLAS_WORKSPACE_CONFIG": ":4096:8"}
    plain = tmp_path / "plain.pt"
    first = subprocess.run([sys.executable, "-m", "wpgdkit", "train", *args, "--out", str(plain)], env=env,
                           capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stderr[-2000:]
    launched = tmp_path / "nccl.pt"
    run = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "1",
                          "-m", "wpgdkit", "train", *args, "--out", str(launched)], env=env, capture_output=True,
                         text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    a, b = load_checkpoint(plain).state_dict, load_checkpoint(launched).state_dict
    assert all(torch.equal(a[k], b[k]) for k in a)
