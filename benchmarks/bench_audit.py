"""Benchmark: the audit's 20-step PGD against torchattacks' PGD, and the cost of auditing several checkpoints.

Part 1 (attack). On one small CNN and the same Fashion-MNIST test points
(``--points``, in batches of ``--batch``), the audit's attack
(:func:`wpgdkit.audit.attack_batch`, ``pgd``: ℓ∞, ε = ``--eps``, 20 steps of
2.5 ε / 20, random start, clamp to [0, 1]) and ``torchattacks.PGD`` with the
same budget, step, steps and random start. After a warm-up pass of each, full
passes alternate (ours, theirs, ours, ...) ``--repeats`` times; reported are
the median images/s of each, the ratio ours / theirs (target ≥ 1; with the
median of the ratios of adjacent pairs and the ratio of the fastest passes as
cross-checks on a shared machine), and the
adversarial accuracy of each (mean over the repeats; each repeat draws new
random starts) with the difference and its binomial standard error
``sqrt(a1 (1 − a1) / n + a2 (1 − a2) / n)`` for n points (conservative: the
averaging over repeats only lowers the variance). Ours should be no higher,
within noise.

The model is a ``small-cnn`` trained here with PGD for ``--train-epochs`` on
``--train-limit`` Fashion-MNIST training images (so that its adversarial
accuracy is not trivially 0), or the one in ``--checkpoint``.

Part 2 (audit). :func:`wpgdkit.audit.audit` on 1 checkpoint and on 4 (copies
of the same one, so every model costs the same), ``--audit-points`` test
points; the per-model wall time of each (median over ``--audit-repeats``) and
the ratio 4-model / 1-model per model (target ≤ 1: loading the data and the
metric is paid once). ``attack_batch`` is wrapped to count, per model, the
batches it attacks: each model must be attacked exactly once
(``ceil(points / batch)`` calls, one model object per checkpoint).

    python benchmarks/bench_audit.py [--checkpoint PATH | --save-checkpoint PATH] [--points 1000] [--batch 250] [--eps 0.1]
        [--repeats 5] [--threads N] [--audit-points 1000] [--audit-repeats 3] [--skip-audit] [--json out.json]

Needs torchattacks (``pip install 'wpgdkit[autoattack]'``) and Fashion-MNIST
(Debian's ``dataset-fashion-mnist``, or ``--data-dir``).
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import shutil
import statistics
import tempfile
import time
from collections import Counter
from pathlib import Path

import torch

from wpgdkit.audit import AttackConfig, AuditConfig, attack_batch, audit
from wpgdkit.audit import core as audit_core
from wpgdkit.datasets import load_tensors
from wpgdkit.training import DataConfig, TrainConfig, load_checkpoint, train
from wpgdkit.training.checkpoint import model_from_checkpoint

STEPS = 20


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def train_model(folder: Path, *, eps: float, limit: int, epochs: int, steps: int, data_dir: str | None) -> Path:
    """A small CNN trained with PGD on a Fashion-MNIST subset (seeded)."""
    out = folder / "fm-small-cnn-pgd.pt"
    config = TrainConfig(data=DataConfig("fashion-mnist", limit=limit, val_fraction=0.0, data_dir=data_dir),
                         model="small-cnn", method="pgd", norm="linf", eps=eps, steps=steps, eval_steps=0,
                         epochs=epochs, batch_size=128, lr=0.05, schedule="constant", out=str(out), device="cpu",
                         amp=False)
    train(config)
    return out


# --- part 1: throughput and strength of one 20-step PGD pass -------------------------------------


def bench_attack(model, x, y, *, eps: float, batch: int, repeats: int, device: torch.device) -> dict:
    import torchattacks

    step = 2.5 * eps / STEPS
    config = AttackConfig(name="pgd", eps=eps, norm="linf", steps=STEPS, step_size=step, bounds=(0.0, 1.0))
    theirs_attack = torchattacks.PGD(model, eps=eps, alpha=step, steps=STEPS, random_start=True)
    batches = [(x[i:i + batch].to(device), y[i:i + batch].to(device)) for i in range(0, len(x), batch)]

    def ours(repeat: int) -> list[torch.Tensor]:
        return [attack_batch(model, xb, yb, config=config, seeds=[1000 * repeat + b])
                for b, (xb, yb) in enumerate(batches)]

    def theirs(repeat: int) -> list[torch.Tensor]:
        torch.manual_seed(1000 * repeat)  # torchattacks draws its random start from the global RNG
        return [theirs_attack(xb, yb) for xb, yb in batches]

    runs = {"ours": ours, "theirs": theirs}
    times: dict[str, list[float]] = {key: [] for key in runs}
    accuracy: dict[str, list[float]] = {key: [] for key in runs}
    max_delta: dict[str, float] = {key: 0.0 for key in runs}
    for key, run in runs.items():  # warm-up: allocator, oneDNN kernels
        run(-1)
    for repeat in range(repeats):  # interleaved: ours, theirs, ours, ...
        for key, run in runs.items():
            _sync(device)
            start = time.perf_counter()
            adv = run(repeat)
            _sync(device)
            times[key].append(time.perf_counter() - start)
            with torch.no_grad():
                correct = sum(int((model(a).argmax(1) == yb).sum()) for a, (_, yb) in zip(adv, batches))
                delta = max(float((a - xb).abs().max()) for a, (xb, _) in zip(adv, batches))
            accuracy[key].append(correct / len(x))
            max_delta[key] = max(max_delta[key], delta)
    with torch.no_grad():
        clean = sum(int((model(xb).argmax(1) == yb).sum()) for xb, yb in batches) / len(x)
    n = len(x)
    rate = {key: n / statistics.median(t) for key, t in times.items()}
    acc = {key: statistics.mean(a) for key, a in accuracy.items()}
    se = math.sqrt(sum(a * (1 - a) / n for a in acc.values()))
    paired = statistics.median(b / a for a, b in zip(times["ours"], times["theirs"]))  # theirs_s / ours_s
    return {
        "points": n, "batch": batch, "eps": eps, "steps": STEPS, "step_size": step, "repeats": repeats,
        "clean_accuracy": clean,
        "ours_images_per_s": rate["ours"], "theirs_images_per_s": rate["theirs"],
        "speed_ratio_ours_over_theirs": rate["ours"] / rate["theirs"], "paired_speed_ratio_median": paired,
        "ours_min_pass_s": min(times["ours"]), "theirs_min_pass_s": min(times["theirs"]),
        "speed_ratio_of_minima": min(times["theirs"]) / min(times["ours"]),
        "ours_adversarial_accuracy": acc["ours"], "theirs_adversarial_accuracy": acc["theirs"],
        "accuracy_difference_ours_minus_theirs": acc["ours"] - acc["theirs"], "difference_binomial_se": se,
        "ours_adversarial_accuracy_per_repeat": accuracy["ours"],
        "theirs_adversarial_accuracy_per_repeat": accuracy["theirs"],
        "ours_pass_s": times["ours"], "theirs_pass_s": times["theirs"],
        "max_linf_perturbation": max_delta,
    }


# --- part 2: one audit of 1 checkpoint vs 4 ------------------------------------------------------


def bench_audit(checkpoint: Path, *, eps: float, points: int, batch: int, repeats: int, device: str,
                data_dir: str | None) -> dict:
    folder = Path(tempfile.mkdtemp(prefix="bench-audit-"))
    try:
        copies = []
        for i in range(4):
            copy = folder / f"model-{i}.pt"
            shutil.copyfile(checkpoint, copy)
            copies.append(str(copy))
        calls: Counter[int] = Counter()
        original = audit_core.attack_batch
        tags = iter(range(10**9))

        def counting(model, *args, **kwargs):
            # Tag the model object itself: an id() could be reused by the next model once one is freed.
            if not hasattr(model, "_bench_audit_tag"):
                model._bench_audit_tag = next(tags)
            calls[model._bench_audit_tag] += 1
            return original(model, *args, **kwargs)

        audit_core.attack_batch = counting
        try:
            def run(paths: list[str]) -> tuple[float, list[int]]:
                calls.clear()
                config = AuditConfig(checkpoints=tuple(paths), attack="pgd", eps=eps, norm="linf", steps=STEPS,
                                     limit=points, batch_size=batch, device=device, data_dir=data_dir)
                start = time.perf_counter()
                audit(config)
                return time.perf_counter() - start, sorted(calls.values())

            run(copies[:1])  # warm-up
            times: dict[int, list[float]] = {1: [], 4: []}
            counts: dict[int, list[int]] = {}
            for _ in range(repeats):
                for k in (1, 4):
                    seconds, counts[k] = run(copies[:k])
                    times[k].append(seconds)
        finally:
            audit_core.attack_batch = original
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    batches = math.ceil(points / batch)
    per_model = {k: statistics.median(t) / k for k, t in times.items()}
    return {
        "points": points, "batch": batch, "repeats": repeats,
        "one_model_s": statistics.median(times[1]), "four_models_s": statistics.median(times[4]),
        "per_model_s_1": per_model[1], "per_model_s_4": per_model[4],
        "per_model_ratio_4_over_1": per_model[4] / per_model[1],
        "attack_calls_per_model_1": counts[1], "attack_calls_per_model_4": counts[4],
        "expected_calls_per_model": batches,
        "each_model_attacked_once": counts[1] == [batches] and counts[4] == [batches] * 4,
        "one_model_runs_s": times[1], "four_models_runs_s": times[4],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", default=None, help="a Fashion-MNIST checkpoint (default: train a small CNN)")
    parser.add_argument("--save-checkpoint", default=None, help="keep the small CNN trained here at this path")
    parser.add_argument("--points", type=int, default=1000, help="Fashion-MNIST test points attacked")
    parser.add_argument("--batch", type=int, default=250)
    parser.add_argument("--eps", type=float, default=0.1)
    parser.add_argument("--repeats", type=int, default=5, help="timed passes of each attack (median reported)")
    parser.add_argument("--train-limit", type=int, default=6000, help="training images of the small CNN")
    parser.add_argument("--train-epochs", type=int, default=1)
    parser.add_argument("--train-steps", type=int, default=5, help="PGD steps while training")
    parser.add_argument("--audit-points", type=int, default=1000)
    parser.add_argument("--audit-repeats", type=int, default=3)
    parser.add_argument("--skip-audit", action="store_true", help="only part 1")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--json", default=None, help="write the results here")
    args = parser.parse_args()
    if min(args.points, args.batch, args.repeats, args.audit_points, args.audit_repeats) < 1:
        parser.error("--points, --batch, --repeats, --audit-points and --audit-repeats must be at least 1")

    if args.threads is not None:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    import torchattacks

    header = {
        "torch": torch.__version__, "torchattacks": torchattacks.__version__, "threads": torch.get_num_threads(),
        "device": str(device), "cpu": platform.processor() or platform.machine(),
        "python": platform.python_version(),
    }
    print(f"torch {header['torch']}, torchattacks {header['torchattacks']}, {header['threads']} threads, "
          f"device {header['device']}")

    workdir = Path(tempfile.mkdtemp(prefix="bench-audit-model-"))
    try:
        if args.checkpoint is None:
            start = time.perf_counter()
            checkpoint = train_model(workdir, eps=args.eps, limit=args.train_limit, epochs=args.train_epochs,
                                     steps=args.train_steps, data_dir=args.data_dir)
            trained = (f"small-cnn trained here: PGD ε={args.eps:g}, {args.train_steps} steps, "
                       f"{args.train_epochs} epoch(s) on {args.train_limit} images ({time.perf_counter() - start:.0f} s)")
            if args.save_checkpoint:
                shutil.copyfile(checkpoint, args.save_checkpoint)
                trained += f", saved to {args.save_checkpoint}"
        else:
            checkpoint = Path(args.checkpoint)
            trained = f"checkpoint {checkpoint}"
        header["model"] = trained
        print(trained)
        payload = load_checkpoint(checkpoint)
        model = model_from_checkpoint(payload, device=device)
        x, y = load_tensors("fashion-mnist", "test", limit=args.points, data_dir=args.data_dir)

        row = bench_attack(model, x, y, eps=args.eps, batch=args.batch, repeats=args.repeats, device=device)
        print(f"PGD-{STEPS}, ℓ∞ ε={args.eps:g}, step {row['step_size']:.4g}, {row['points']} points in batches of "
              f"{args.batch}, median of {args.repeats} passes (clean accuracy {row['clean_accuracy']:.1%}):")
        print(f"  ours   (wpgdkit.audit.attack_batch) {row['ours_images_per_s']:8.1f} images/s   "
              f"adversarial accuracy {row['ours_adversarial_accuracy']:.2%}")
        print(f"  theirs (torchattacks.PGD)           {row['theirs_images_per_s']:8.1f} images/s   "
              f"adversarial accuracy {row['theirs_adversarial_accuracy']:.2%}")
        print(f"  speed ours / theirs {row['speed_ratio_ours_over_theirs']:.3f} (median of paired ratios "
              f"{row['paired_speed_ratio_median']:.3f}, ratio of the fastest passes {row['speed_ratio_of_minima']:.3f})")
        print(f"  accuracy ours − theirs "
              f"{row['accuracy_difference_ours_minus_theirs'] * 100:+.2f} ± {row['difference_binomial_se'] * 100:.2f} "
              f"points (binomial SE); max |δ|∞ ours {row['max_linf_perturbation']['ours']:.6f}, "
              f"theirs {row['max_linf_perturbation']['theirs']:.6f}")
        result = {"header": header, "attack": row}

        if not args.skip_audit:
            audit_row = bench_audit(checkpoint, eps=args.eps, points=args.audit_points, batch=args.batch,
                                    repeats=args.audit_repeats, device=args.device, data_dir=args.data_dir)
            result["audit"] = audit_row
            print(f"audit of {args.audit_points} points, batch {args.batch}, median of {args.audit_repeats}:")
            print(f"  1 checkpoint  {audit_row['one_model_s']:7.2f} s  = {audit_row['per_model_s_1']:.2f} s/model")
            print(f"  4 checkpoints {audit_row['four_models_s']:7.2f} s  = {audit_row['per_model_s_4']:.2f} s/model   "
                  f"ratio per model 4/1 {audit_row['per_model_ratio_4_over_1']:.3f}")
            print(f"  attack_batch calls per model: 1 checkpoint {audit_row['attack_calls_per_model_1']}, "
                  f"4 checkpoints {audit_row['attack_calls_per_model_4']} (expected {audit_row['expected_calls_per_model']}"
                  f" each): each model attacked once: {audit_row['each_model_attacked_once']}")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as out:
            json.dump(result, out, indent=2)


if __name__ == "__main__":
    main()
