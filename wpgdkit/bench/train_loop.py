"""``train-loop`` (slow, not in the default set): the toolkit's training loop against a minimal hand-written one."""

from __future__ import annotations

import os
import tempfile
import time

import torch

from wpgdkit.bench.harness import BenchConfig, BenchRow, interleaved_times, register_benchmark, summarize, timing_summary
from wpgdkit.errors import WpgdkitError

__all__ = ["bench_train_loop", "hand_written_epoch"]

_EPS = 8 / 255
_STEPS = 8
_FULL_TRAIN_IMAGES = 60000
#: Most timed repeats of each side (one repeat is a training epoch).
_MAX_REPEATS = 3


def _sizes(quick: bool) -> dict[str, int]:
    return {"limit": 256} if quick else {"limit": 4096}


def _train_config(config: BenchConfig, threat, limit: int | None, out: str):
    from wpgdkit.training import DataConfig, TrainConfig

    return TrainConfig(
        data=DataConfig("fashion-mnist", limit=limit, val_fraction=0.0, augment=False, data_dir=config.data_dir,
                        seed=config.seed),
        model="small-cnn", method="pgd", norm="linf", eps=threat.eps, step_size=threat.step, steps=threat.steps,
        random_start=True, eval_steps=0, epochs=1, batch_size=config.batch, schedule="constant", out=out,
        device=config.device, amp=False, seed=config.seed,
    )


def toolkit_epoch(config: BenchConfig, threat, limit: int | None, out_dir: str):
    """One epoch through :func:`wpgdkit.training.train` (data loading, checkpoint and log included).

    Each call writes into a new folder under ``out_dir``: training never
    replaces a finished run.
    """
    from wpgdkit.training import train

    folder = tempfile.mkdtemp(prefix="epoch-", dir=out_dir)
    return train(_train_config(config, threat, limit, os.path.join(folder, "bench.pt")))


def hand_written_epoch(config: BenchConfig, threat, limit: int, device: torch.device) -> None:
    """The loop a researcher would write: the same data, batches, model, optimiser and PGD.

    SGD with Nesterov momentum (lr 0.1, momentum 0.9, weight decay 5e-4, as
    :class:`~wpgdkit.training.TrainConfig`'s defaults), constant rate; PGD
    from a uniform random start, sign steps of ``threat.step``, projection and
    clamp to [0, 1], the model in eval mode while attacked.
    """
    import torch.nn.functional as F

    from wpgdkit.models import create_model, dataset_normalization
    from wpgdkit.training import DataConfig, prepare_data
    from wpgdkit.training.data import batch_generator

    data = prepare_data(DataConfig("fashion-mnist", limit=limit, val_fraction=0.0, augment=False,
                                   data_dir=config.data_dir, seed=config.seed))
    torch.manual_seed(config.seed)
    mean, std = dataset_normalization("fashion-mnist")
    model = create_model("small-cnn", num_classes=10, input_shape=(1, 28, 28), mean=mean, std=std).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4, nesterov=True)
    eps, step = threat.eps, threat.step
    for _, x, y in batch_generator(data.train, batch_size=config.batch, seed=config.seed, epoch=0):
        x, y = x.to(device), y.to(device)
        model.eval()
        adv = (x + torch.empty_like(x).uniform_(-eps, eps)).clamp(0, 1)
        for _ in range(threat.steps):
            adv.requires_grad_(True)
            (grad,) = torch.autograd.grad(F.cross_entropy(model(adv), y), adv)
            adv = torch.min(torch.max(adv.detach() + step * grad.sign(), x - eps), x + eps).clamp(0, 1)
        model.train()
        loss = F.cross_entropy(model(adv), y)
        opt.zero_grad()
        loss.backward()
        opt.step()


@register_benchmark("train-loop", "wpgdkit train vs a hand-written PGD-8 loop, one epoch of small-cnn on "
                                  "Fashion-MNIST, and a full 60,000-image epoch (needs Fashion-MNIST)",
                    default=False)
def bench_train_loop(config: BenchConfig) -> list[BenchRow]:
    """One PGD-8 epoch of :func:`wpgdkit.training.train` vs the same epoch written by hand.

    Both train ``small-cnn`` with ℓ∞ PGD (ε = 8/255, 8 steps of the threat
    model's default step, random start) on the same 4,096 Fashion-MNIST
    training images (quick: 256), the same batches of ``config.batch``, the
    same initial weights and optimiser, for one epoch, including loading the
    data; the toolkit also writes its checkpoint and log. One untimed epoch
    of 256 images of each first (none when ``config.warmup`` is 0), then the
    two alternate, at most 3 repeats; ``ratio`` = hand-written / toolkit (1:
    no overhead). A full run adds one
    PGD-8 epoch of all 60,000 training images through the toolkit (minutes on
    a CPU). Skipped, with the reason, without Fashion-MNIST.
    """
    from wpgdkit.attacks import ThreatModel
    from wpgdkit.datasets import load_tensors

    threat = ThreatModel(eps=_EPS, steps=_STEPS)
    limit = _sizes(config.quick)["limit"]
    case = f"small-cnn, PGD-{_STEPS}, {limit:,} Fashion-MNIST images, batch {config.batch}"
    full_case = f"small-cnn, PGD-{_STEPS}, all {_FULL_TRAIN_IMAGES:,} Fashion-MNIST images, batch {config.batch}"
    try:
        load_tensors("fashion-mnist", "train", limit=1, data_dir=config.data_dir)
    except WpgdkitError as exc:
        reason = "Fashion-MNIST not available: " + " ".join(str(exc).split())
        rows = [BenchRow.skipped("train-loop", case, "wpgdkit train", "hand-written loop", reason)]
        if not config.quick:
            rows.append(BenchRow.skipped("train-loop", full_case, "wpgdkit train", None, reason))
        return rows
    device = config.torch_device()
    rows = []
    with tempfile.TemporaryDirectory(prefix="wpgdkit-bench-train-") as tmp:
        for _ in range(min(config.warmup, 1)):
            hand_written_epoch(config, threat, 256, device)
            toolkit_epoch(config, threat, 256, tmp)
        repeats = min(config.repeats, _MAX_REPEATS)
        times = interleaved_times(
            {"toolkit": lambda: toolkit_epoch(config, threat, limit, tmp),
             "hand": lambda: hand_written_epoch(config, threat, limit, device)},
            repeats=repeats, warmup=0, sync=device)
        measured = {key: summarize(ts, label="train-loop", sub_label=case, description=key)
                    for key, ts in times.items()}
        toolkit_s, hand_s = measured["toolkit"].median, measured["hand"].median
        rows.append(BenchRow.timed(
            "train-loop", case, "wpgdkit train", "hand-written loop", toolkit_s, hand_s, unit="epoch",
            note=(f"toolkit/hand-written {toolkit_s / hand_s:.3f}; {limit / toolkit_s:,.0f} images/s, data loading "
                  f"included; median of {repeats}"),
            extra={"images": limit, "batch": config.batch, "threat": threat.to_dict(), "device": str(device),
                   "repeats": repeats, "warmup": config.warmup, "toolkit_over_hand_written": toolkit_s / hand_s,
                   "toolkit_images_per_s": limit / toolkit_s, "hand_written_images_per_s": limit / hand_s,
                   **timing_summary(measured["toolkit"], "toolkit"), **timing_summary(measured["hand"], "hand_written")},
        ))
        if not config.quick:
            start = time.perf_counter()
            result = toolkit_epoch(config, threat, None, tmp)
            seconds = time.perf_counter() - start
            history = getattr(result, "history", None) or [{}]
            epoch_s = history[0].get("seconds") if isinstance(history[0], dict) else None
            rows.append(BenchRow.timed(
                "train-loop", full_case, "wpgdkit train", None, seconds, None, unit="epoch",
                note=f"{_FULL_TRAIN_IMAGES / seconds:,.0f} images/s, data loading included; one run",
                extra={"images": _FULL_TRAIN_IMAGES, "batch": config.batch, "threat": threat.to_dict(),
                       "device": str(device), "wall_s": seconds, "epoch_s": epoch_s,
                       "images_per_s": _FULL_TRAIN_IMAGES / seconds},
            ))
    return rows
