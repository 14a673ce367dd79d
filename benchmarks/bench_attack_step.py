"""Benchmark: time per inner step of PGD (cross-entropy) vs WPGD (Wasserstein loss).

The paper (Sec. 5.2) states that WPGD costs the same as PGD: the Wasserstein
loss (eq. 5) is a row gather and a dot product next to a forward and backward
pass. This measures it with :func:`wpgdkit.attacks.pgd_attack` on two models,
a small CNN on 1×28×28 (batch ``--batch``) and a WRN-16-10 on 3×32×32 (batch
``--wrn-batch``), taken from :mod:`wpgdkit.models` when it is importable and
otherwise from minimal inline definitions (the header says which). WPGD uses a
random valid K = 10 metric (distances between random points) with p = 2.5.

After one warm-up call of each, PGD and WPGD calls alternate (A B A B ...) so
slow drifts of the machine hit both alike; each call runs ``--steps`` steps
without random start, and the median over ``--repeats`` calls of the time per
step is reported, with the ratio WPGD / PGD (and, as cross-checks on a shared
machine, the minima and the median of the ratios of adjacent A B pairs).

    python benchmarks/bench_attack_step.py [--models small-cnn wrn-16-10] [--repeats 10] [--steps 5]
        [--batch 128] [--wrn-batch 32] [--device cpu] [--threads N] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from collections.abc import Callable

import torch
from torch import nn

from wpgdkit.attacks import PGDConfig, pgd_attack
from wpgdkit.errors import WpgdkitError
from wpgdkit.losses import WassersteinLoss

NUM_CLASSES = 10
P = 2.5
MODELS = {"small-cnn": (1, 28, 28), "wrn-16-10": (3, 32, 32)}


# --- inline fallbacks, used only when wpgdkit.models is not there --------------------------------


class InlineSmallCNN(nn.Sequential):
    """conv32-conv64-fc: two 3×3 conv + max-pool stages and a 128-unit head."""

    def __init__(self, channels: int, num_classes: int) -> None:
        super().__init__(
            nn.Conv2d(channels, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.AdaptiveAvgPool2d(4), nn.Flatten(), nn.Linear(64 * 16, 128), nn.ReLU(), nn.Linear(128, num_classes),
        )


class PreActBlock(nn.Module):
    """BN-ReLU-conv3×3-BN-ReLU-conv3×3 with an identity or 1×1 shortcut."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.bn1, self.conv1 = nn.BatchNorm2d(cin), nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn2, self.conv2 = nn.BatchNorm2d(cout), nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.shortcut = None if cin == cout and stride == 1 else nn.Conv2d(cin, cout, 1, stride, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(x))
        skip = x if self.shortcut is None else self.shortcut(out)
        out = self.conv1(out)
        return self.conv2(torch.relu(self.bn2(out))) + skip


class InlineWRN16x10(nn.Module):
    """WRN-16-10: conv16, three groups of 2 pre-activation blocks (160/320/640), BN-ReLU-pool-fc."""

    def __init__(self, channels: int, num_classes: int) -> None:
        super().__init__()
        widths, blocks, cin = (160, 320, 640), [], 16
        for group, width in enumerate(widths):
            for index in range(2):
                blocks.append(PreActBlock(cin, width, 2 if group > 0 and index == 0 else 1))
                cin = width
        self.stem = nn.Conv2d(channels, 16, 3, 1, 1, bias=False)
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Sequential(nn.BatchNorm2d(cin), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                                  nn.Linear(cin, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(self.stem(x)))


INLINE = {"small-cnn": InlineSmallCNN, "wrn-16-10": InlineWRN16x10}


def build_model(name: str) -> tuple[nn.Module, str]:
    """The registry's model if :mod:`wpgdkit.models` provides it, else the inline one."""
    shape = MODELS[name]
    try:
        from wpgdkit.models import create_model

        return create_model(name, num_classes=NUM_CLASSES, input_shape=shape), "wpgdkit.models"
    except (ImportError, WpgdkitError):
        return INLINE[name](shape[0], NUM_CLASSES), "inline"


# --- timing --------------------------------------------------------------------------------------


def random_metric(k: int, *, seed: int = 0) -> torch.Tensor:
    """Euclidean distances between random points: symmetric, zero diagonal, triangle inequality."""
    g = torch.Generator().manual_seed(seed)
    points = torch.rand(k, 3, generator=g)
    return torch.cdist(points, points)


def timed(fn: Callable[[], object], device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - start


def bench_model(name: str, *, batch: int, steps: int, repeats: int, device: torch.device) -> dict:
    torch.manual_seed(0)
    model, source = build_model(name)
    model.to(device)
    g = torch.Generator(device=device).manual_seed(1)
    x = torch.rand(batch, *MODELS[name], generator=g, device=device)
    y = torch.randint(0, NUM_CLASSES, (batch,), generator=g, device=device)
    config = PGDConfig(eps=8 / 255, step_size=2 / 255, steps=steps, random_start=False)
    wasserstein = WassersteinLoss(random_metric(NUM_CLASSES), p=P).to(device)
    runs = {
        "pgd": lambda: pgd_attack(model, x, y, config=config),
        "wpgd": lambda: pgd_attack(model, x, y, config=config, loss_fn=wasserstein),
    }
    for run in runs.values():  # warm-up: allocator, oneDNN kernels
        run()
    times: dict[str, list[float]] = {key: [] for key in runs}
    for _ in range(repeats):  # interleaved, A B A B ...
        for key, run in runs.items():
            times[key].append(timed(run, device) / steps)
    pgd_s, wpgd_s = (statistics.median(times[key]) for key in ("pgd", "wpgd"))
    # On a shared machine the median can land on a loaded stretch; the minimum and
    # the median of adjacent-pair ratios are shown next to it as cross-checks.
    paired = statistics.median(b / a for a, b in zip(times["pgd"], times["wpgd"]))
    return {
        "model": name, "model_source": source, "input_shape": list(MODELS[name]), "batch": batch, "steps": steps,
        "repeats": repeats, "pgd_step_s": pgd_s, "wpgd_step_s": wpgd_s, "ratio_wpgd_over_pgd": wpgd_s / pgd_s,
        "pgd_min_step_s": min(times["pgd"]), "wpgd_min_step_s": min(times["wpgd"]), "paired_ratio_median": paired,
        "pgd_step_times_s": times["pgd"], "wpgd_step_times_s": times["wpgd"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", choices=list(MODELS), default=list(MODELS))
    parser.add_argument("--repeats", type=int, default=10, help="timed calls of each attack (median reported)")
    parser.add_argument("--steps", type=int, default=5, help="attack steps per timed call")
    parser.add_argument("--batch", type=int, default=128, help="batch of the small CNN")
    parser.add_argument("--wrn-batch", type=int, default=32, help="batch of the WRN-16-10")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--json", default=None, help="write the results here")
    args = parser.parse_args()
    if args.repeats < 1 or args.steps < 1:
        parser.error("--repeats and --steps must be at least 1")

    if args.threads is not None:
        # 1 thread keeps the timing steady when another process shares a small machine.
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    header = {
        "torch": torch.__version__, "threads": torch.get_num_threads(), "device": str(device),
        "cpu": platform.processor() or platform.machine(), "python": platform.python_version(),
    }
    print(f"torch {header['torch']}, {header['threads']} threads, device {header['device']}, "
          f"K = {NUM_CLASSES}, p = {P}, eps 8/255, no random start")
    rows = []
    for name in args.models:
        batch = args.batch if name == "small-cnn" else args.wrn_batch
        row = bench_model(name, batch=batch, steps=args.steps, repeats=args.repeats, device=device)
        rows.append(row)
        print(f"{name:10s} ({row['model_source']}, batch {batch}, {args.repeats}×{args.steps} steps): "
              f"PGD {row['pgd_step_s'] * 1e3:8.2f} ms/step   WPGD {row['wpgd_step_s'] * 1e3:8.2f} ms/step   "
              f"WPGD/PGD {row['ratio_wpgd_over_pgd']:.3f}")
        print(f"{'':10s} min: PGD {row['pgd_min_step_s'] * 1e3:.2f} ms, WPGD {row['wpgd_min_step_s'] * 1e3:.2f} ms; "
              f"median of paired ratios {row['paired_ratio_median']:.3f}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as out:
            json.dump({"header": header, "results": rows}, out, indent=2)


if __name__ == "__main__":
    main()
