"""Benchmark: wpgdkit's training loop vs a minimal hand-written PGD loop.

Both train small-cnn with ℓ∞ PGD-8 (ε = 8/255, step 2/255) on the same
Fashion-MNIST subset, the same batches and the same initial weights, for one
epoch; runs alternate (toolkit, hand-written, ...) and the median epoch time
of each is compared. ``--full-epoch`` also times one PGD-8 epoch of the whole
training set through ``wpgdkit train``.

    python benchmarks/bench_train_loop.py [--limit 4096] [--repeats 3] [--full-epoch] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time

import torch
import torch.nn.functional as F

from wpgdkit.models import create_model, dataset_normalization
from wpgdkit.training import DataConfig, TrainConfig, prepare_data, train
from wpgdkit.training.data import batch_generator

EPS, STEP, STEPS, BATCH = 8 / 255, 2 / 255, 8, 128


def toolkit_epoch(limit: int, out_dir: str) -> float:
    config = TrainConfig(
        data=DataConfig("fashion-mnist", limit=limit, val_fraction=0.0, augment=False), model="small-cnn",
        method="pgd", eps=EPS, step_size=STEP, steps=STEPS, eval_steps=0, epochs=1, batch_size=BATCH,
        out=os.path.join(out_dir, "bench.pt"), device="cpu",
    )
    start = time.perf_counter()
    train(config)
    return time.perf_counter() - start


def hand_written_epoch(limit: int) -> float:
    """The loop a researcher would write: same data, batches, model and optimiser."""
    start = time.perf_counter()
    data = prepare_data(DataConfig("fashion-mnist", limit=limit, val_fraction=0.0, augment=False))
    torch.manual_seed(0)
    mean, std = dataset_normalization("fashion-mnist")
    model = create_model("small-cnn", num_classes=10, input_shape=(1, 28, 28), mean=mean, std=std)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4, nesterov=True)
    for _, x, y in batch_generator(data.train, batch_size=BATCH, seed=0, epoch=0):
        model.eval()
        delta = torch.empty_like(x).uniform_(-EPS, EPS)
        adv = (x + delta).clamp(0, 1)
        for _ in range(STEPS):
            adv.requires_grad_(True)
            grad, = torch.autograd.grad(F.cross_entropy(model(adv), y), adv)
            adv = torch.min(torch.max(adv.detach() + STEP * grad.sign(), x - EPS), x + EPS).clamp(0, 1)
        model.train()
        loss = F.cross_entropy(model(adv), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--limit", type=int, default=4096)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--full-epoch", action="store_true")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    out: dict = {"threads": torch.get_num_threads(), "limit": args.limit, "repeats": args.repeats}
    with tempfile.TemporaryDirectory() as tmp:
        hand_written_epoch(256)  # warm-up of both paths
        toolkit_epoch(256, tmp)
        toolkit, manual = [], []
        for _ in range(args.repeats):
            toolkit.append(toolkit_epoch(args.limit, tmp))
            manual.append(hand_written_epoch(args.limit))
        out.update(toolkit_s=statistics.median(toolkit), hand_written_s=statistics.median(manual))
        out["ratio"] = out["toolkit_s"] / out["hand_written_s"]
        print(f"small-cnn, PGD-8, {args.limit} Fashion-MNIST images, {out['threads']} threads, median of {args.repeats}:")
        print(f"  wpgdkit train loop  {out['toolkit_s']:.2f} s   hand-written loop  {out['hand_written_s']:.2f} s"
              f"   ratio {out['ratio']:.3f}")
        if args.full_epoch:
            config_seconds = _full_epoch(tmp)
            out["full_epoch_s"] = config_seconds
            out["full_epoch_images_per_s"] = 60000 / config_seconds
            print(f"  one PGD-8 epoch of all 60,000 images: {config_seconds:.1f} s ({60000 / config_seconds:.0f} img/s)")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(out, fh, indent=1)


def _full_epoch(out_dir: str) -> float:
    config = TrainConfig(
        data=DataConfig("fashion-mnist", val_fraction=0.0, augment=False), model="small-cnn", method="pgd",
        eps=EPS, step_size=STEP, steps=STEPS, eval_steps=0, epochs=1, batch_size=BATCH,
        out=os.path.join(out_dir, "full.pt"), device="cpu",
    )
    return train(config).history[0]["seconds"]


if __name__ == "__main__":
    main()
