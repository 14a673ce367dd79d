"""``train-loop`` (slow, not in the default set): the toolkit's training loop against a minimal hand-written one.

The comparison is an epoch against a bare hand-written loop with the same
schedule, both writing nothing, or both writing their checkpoint (two rows).
"""

from __future__ import annotations

import contextlib
import json
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from wpgdkit.bench.harness import BenchConfig, BenchRow, register_benchmark, summarize, timing_summary
from wpgdkit.errors import WpgdkitError

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = ["bench_train_loop", "hand_written_epoch", "toolkit_epoch", "shuffled_times"]

_EPS = 8 / 255
_STEPS = 8
_FULL_TRAIN_IMAGES = 60000
#: Most timed repeats of each of the four sides (one repeat is a training epoch); quick: of a 256-image epoch.
_MAX_REPEATS = 3
_MAX_QUICK_REPEATS = 5
#: The toolkit's default schedule, per step, as both sides run it.
_SCHEDULE = "piecewise"


def _sizes(quick: bool) -> dict[str, int]:
    return {"limit": 256} if quick else {"limit": 4096}


def _train_config(config: BenchConfig, threat, limit: int | None, out: str):
    from wpgdkit.training import DataConfig, TrainConfig

    return TrainConfig(
        data=DataConfig("fashion-mnist", limit=limit, val_fraction=0.0, augment=False, data_dir=config.data_dir,
                        seed=config.seed),
        model="small-cnn", method="pgd", norm="linf", eps=threat.eps, step_size=threat.step, steps=threat.steps,
        random_start=True, eval_steps=0, epochs=1, batch_size=config.batch, schedule=_SCHEDULE, out=out,
        device=config.device, amp=False, memory_format="contiguous", seed=config.seed,
    )


def toolkit_epoch(config: BenchConfig, threat, limit: int | None, out_dir: str, *, write: bool = True):
    """One epoch through :func:`wpgdkit.training.train`, data loading included.

    ``write``: the epoch's checkpoint and log line are written as in any run;
    False leaves them out (the one function that writes them is replaced for
    the call), everything else as it is. Each call trains into a new folder
    under ``out_dir``: training never replaces a finished run.
    """
    from wpgdkit.training import train

    folder = tempfile.mkdtemp(prefix="epoch-", dir=out_dir)
    with contextlib.nullcontext() if write else _writing_nothing():
        return train(_train_config(config, threat, limit, os.path.join(folder, "bench.pt")))


@contextlib.contextmanager
def _writing_nothing() -> Iterator[None]:
    from wpgdkit.training import loop

    saved = loop._save_epoch
    loop._save_epoch = lambda out, record, checkpoint: None
    try:
        yield
    finally:
        loop._save_epoch = saved


def hand_written_epoch(config: BenchConfig, threat, limit: int, device: torch.device, *,
                       write_to: str | None = None) -> None:
    """The loop a researcher would write: the same data, batches, model, optimiser, schedule and PGD.

    SGD with Nesterov momentum (lr 0.1, momentum 0.9, weight decay 5e-4, as
    :class:`~wpgdkit.training.TrainConfig`'s defaults) and the piecewise
    schedule stepped per batch (×0.1 at 50 % and 75 % of the steps, the
    toolkit's default); PGD from a uniform random start, sign steps of
    ``threat.step``, projection and clamp to [0, 1], the model in eval mode
    while attacked. Nothing is read from the device during the epoch.

    ``write_to``: a folder; the epoch's checkpoint (model, optimiser and
    scheduler state, ``torch.save``) and a JSON log line with the epoch's mean
    loss are written there, as the toolkit writes its own. None: nothing.
    """
    import torch
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
    total_steps = -(-len(data.train) // config.batch)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda step: 1.0 if step < 0.5 * total_steps else 0.1 if step < 0.75 * total_steps else 0.01)
    eps, step = threat.eps, threat.step
    running = torch.zeros((), device=device)
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
        sched.step()
        if write_to is not None:
            running += loss.detach() * len(y)
    if write_to is not None:
        torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                    "epoch": 1}, os.path.join(write_to, "hand.pt"))
        with open(os.path.join(write_to, "hand.log.jsonl"), "a", encoding="utf-8") as log:
            log.write(json.dumps({"epoch": 1, "train_loss": running.item() / len(data.train)}) + "\n")


def shuffled_times(fns: dict[str, Callable[[], Any]], *, repeats: int, seed: int = 0,
                   sync: Any = False) -> dict[str, tuple[list[float], list[float]]]:
    """Wall and CPU seconds of each call of each function, in a new seeded random order at every repeat.

    Neither a fixed order nor a rotation of it will do on a machine whose
    speed drifts or whose caches remember the previous call: a rotation still
    runs every function after the same one. CPU time is this process's
    (``time.process_time``): with one torch thread it shrugs off other
    processes on a shared CPU, which wall time does not (on CUDA it misses the
    GPU's work: read the wall times there).
    """
    import random

    from wpgdkit.bench.harness import _synchronize

    order = list(fns)
    rng = random.Random(seed)
    times: dict[str, tuple[list[float], list[float]]] = {name: ([], []) for name in order}
    for _ in range(repeats):
        rng.shuffle(order)
        for name in order:
            _synchronize(sync)
            wall, cpu = time.perf_counter(), time.process_time()
            fns[name]()
            _synchronize(sync)
            times[name][0].append(time.perf_counter() - wall)
            times[name][1].append(time.process_time() - cpu)
    return times


@register_benchmark("train-loop", "wpgdkit train vs a hand-written PGD-8 loop with the same schedule, one epoch of "
                                  "small-cnn on Fashion-MNIST, both writing nothing and both writing their checkpoint, "
                                  "and a full 60,000-image epoch (needs Fashion-MNIST)",
                    default=False)
def bench_train_loop(config: BenchConfig) -> list[BenchRow]:
    """One PGD-8 epoch of :func:`wpgdkit.training.train` vs the same epoch written by hand: two rows.

    Both train ``small-cnn`` with ℓ∞ PGD (ε = 8/255, 8 steps of the threat
    model's default step, random start) on the same 4,096 Fashion-MNIST
    training images (quick: 256), the same batches of ``config.batch``, the
    same initial weights, optimiser and piecewise schedule, for one epoch,
    loading the data included. The first row compares them writing nothing
    (the toolkit's checkpoint and log left out), the second both writing
    their checkpoint (the toolkit its checkpoint and log line; the hand loop
    ``torch.save`` of model, optimiser and scheduler and a log line).

    One untimed 256-image epoch of each of the four first (none when
    ``config.warmup`` is 0), then they run in a seeded random order, at most 3
    repeats each (quick: 5); ``ratio`` = hand-written / toolkit from the
    median wall times (1: no overhead). On a CPU the note and ``extra`` add
    the CPU-time ratio, the median of the per-repeat ratios, which a shared
    machine disturbs far less. A full run adds one PGD-8 epoch of all 60,000
    training images through the toolkit (minutes on a CPU). Skipped, with the
    reason, without Fashion-MNIST.
    """
    from wpgdkit.attacks import ThreatModel
    from wpgdkit.datasets import load_tensors

    threat = ThreatModel(eps=_EPS, steps=_STEPS)
    limit = _sizes(config.quick)["limit"]
    case = f"small-cnn, PGD-{_STEPS}, {limit:,} Fashion-MNIST images, batch {config.batch}"
    cases = {"nothing": f"{case}, both writing nothing", "checkpoint": f"{case}, both writing their checkpoint"}
    sides = {"nothing": ("wpgdkit train", "hand-written loop"),
             "checkpoint": ("wpgdkit train", "hand-written loop + torch.save")}
    full_case = f"small-cnn, PGD-{_STEPS}, all {_FULL_TRAIN_IMAGES:,} Fashion-MNIST images, batch {config.batch}"
    try:
        load_tensors("fashion-mnist", "train", limit=1, data_dir=config.data_dir)
    except WpgdkitError as exc:
        reason = "Fashion-MNIST not available: " + " ".join(str(exc).split())
        rows = [BenchRow.skipped("train-loop", cases[key], *sides[key], reason) for key in cases]
        if not config.quick:
            rows.append(BenchRow.skipped("train-loop", full_case, "wpgdkit train", None, reason))
        return rows
    device = config.torch_device()
    rows = []
    with tempfile.TemporaryDirectory(prefix="wpgdkit-bench-train-") as tmp:

        def hand(images: int, write: bool) -> None:
            hand_written_epoch(config, threat, images, device,
                               write_to=tempfile.mkdtemp(prefix="hand-", dir=tmp) if write else None)

        for _ in range(min(config.warmup, 1)):
            for write in (False, True):
                hand(256, write)
                toolkit_epoch(config, threat, 256, tmp, write=write)
        repeats = min(config.repeats, _MAX_QUICK_REPEATS if config.quick else _MAX_REPEATS)
        times = shuffled_times(
            {"toolkit_nothing": lambda: toolkit_epoch(config, threat, limit, tmp, write=False),
             "hand_nothing": lambda: hand(limit, False),
             "toolkit_checkpoint": lambda: toolkit_epoch(config, threat, limit, tmp, write=True),
             "hand_checkpoint": lambda: hand(limit, True)},
            repeats=repeats, seed=config.seed, sync=device)
        for key in cases:
            rows.append(_row(key, cases[key], sides[key], times[f"toolkit_{key}"], times[f"hand_{key}"], limit,
                             repeats, config, threat, device))
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


def _row(key: str, case: str, sides: tuple[str, str], toolkit: tuple[list[float], list[float]],
         hand: tuple[list[float], list[float]], limit: int, repeats: int, config: BenchConfig, threat,
         device) -> BenchRow:
    measured = {side: summarize(wall, label="train-loop", sub_label=case, description=side)
                for side, (wall, _) in (("toolkit", toolkit), ("hand", hand))}
    toolkit_s, hand_s = measured["toolkit"].median, measured["hand"].median
    paired_wall = statistics.median(t / h for t, h in zip(toolkit[0], hand[0]))
    extra: dict[str, Any] = {
        "writes": key, "images": limit, "batch": config.batch, "schedule": _SCHEDULE, "threat": threat.to_dict(),
        "device": str(device), "repeats": repeats, "warmup": config.warmup,
        "toolkit_over_hand_written": toolkit_s / hand_s, "paired_wall_ratio_median": paired_wall,
        "toolkit_images_per_s": limit / toolkit_s, "hand_written_images_per_s": limit / hand_s,
        **timing_summary(measured["toolkit"], "toolkit"), **timing_summary(measured["hand"], "hand_written"),
    }
    note = f"toolkit/hand-written {toolkit_s / hand_s:.3f} (paired {paired_wall:.3f})"
    if device.type == "cpu":
        paired_cpu = statistics.median(t / h for t, h in zip(toolkit[1], hand[1]))
        extra.update(paired_cpu_ratio_median=paired_cpu, toolkit_cpu_s=toolkit[1], hand_written_cpu_s=hand[1])
        note += f", CPU time {paired_cpu:.3f}"
    note += f"; {limit / toolkit_s:,.0f} images/s, data loading included; median of {repeats}"
    return BenchRow.timed("train-loop", case, *sides, toolkit_s, hand_s, unit="epoch", note=note, extra=extra)
