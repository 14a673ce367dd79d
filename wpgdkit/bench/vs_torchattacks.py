"""``torchattacks``: the toolkit's PGD against ``torchattacks.PGD``, time and adversarial accuracy.

(The module is not called ``torchattacks`` so that it never stands in for the
library.) :func:`compare_with_torchattacks` is shared with the ``audit``
benchmark, which runs it on a PGD-trained small CNN with the audit's budget.
"""

from __future__ import annotations

import itertools
import math
import statistics
import time
from typing import TYPE_CHECKING, Any

from wpgdkit.bench.harness import BenchConfig, BenchRow, interleaved_times, register_benchmark
from wpgdkit.errors import WpgdkitError

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from torch import nn

__all__ = ["TORCHATTACKS_MISSING", "compare_with_torchattacks", "bench_torchattacks"]

#: Why the comparisons are skipped without torchattacks.
TORCHATTACKS_MISSING = "torchattacks is not installed: pip install 'wpgdkit[autoattack]'"

_EPS = 8 / 255
_STEPS = 10
_MODEL = "mlp"
_LR, _MOMENTUM = 0.05, 0.9
_FM_SHAPE = (1, 28, 28)


def compare_with_torchattacks(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, threat, batch: int,
                              repeats: int, warmup: int, device: torch.device) -> dict[str, Any]:
    """Our ``pgd`` attack (:func:`~wpgdkit.attacks.create_attack`) vs ``torchattacks.PGD``, pass for pass.

    Both get the same model, points (in batches of ``batch``), ε, steps,
    step (``threat.step``) and random start; full passes over the points
    alternate (ours, theirs, ...). Each repeat draws new random starts for
    both (ours from per-batch seeds, theirs from the global RNG, seeded).

    Returns
    -------
    result : dict
        ``ours_times_s``/``reference_times_s`` (seconds per pass),
        ``clean_accuracy``, ``ours_adversarial_accuracy`` and
        ``reference_adversarial_accuracy`` (means over the repeats, with the
        per-repeat values), ``accuracy_difference`` and its conservative
        binomial standard error ``difference_binomial_se``, and the largest
        ℓ∞ perturbation of each side.
    """
    import torch

    import torchattacks

    from wpgdkit.attacks import AttackConfig, create_attack

    if threat.norm != "linf" or threat.restarts != 1 or threat.bounds != (0.0, 1.0):
        raise WpgdkitError("the torchattacks comparison runs one ℓ∞ PGD restart on images in [0, 1]")
    ours_attack = create_attack(AttackConfig(name="pgd", threat=threat), model)
    theirs_attack = torchattacks.PGD(model, eps=threat.eps, alpha=threat.step, steps=threat.steps,
                                     random_start=threat.random_start)
    batches = [(x[i:i + batch].to(device), y[i:i + batch].to(device)) for i in range(0, len(x), batch)]
    calls = {"ours": itertools.count(), "theirs": itertools.count()}

    def ours() -> list[torch.Tensor]:
        r = next(calls["ours"])
        return [ours_attack(xb, yb, seeds=[1000 * r + b]) for b, (xb, yb) in enumerate(batches)]

    def theirs() -> list[torch.Tensor]:
        torch.manual_seed(1000 * next(calls["theirs"]))  # torchattacks draws its start from the global RNG
        return [theirs_attack(xb, yb) for xb, yb in batches]

    accuracy: dict[str, list[float]] = {"ours": [], "theirs": []}
    max_delta = {"ours": 0.0, "theirs": 0.0}

    def score(name: str, adv: list[torch.Tensor]) -> None:
        with torch.no_grad():
            correct = sum(int((model(a).argmax(1) == yb).sum()) for a, (_, yb) in zip(adv, batches))
            delta = max(float((a - xb).abs().max()) for a, (xb, _) in zip(adv, batches))
        accuracy[name].append(correct / len(x))
        max_delta[name] = max(max_delta[name], delta)

    model.eval()
    times = interleaved_times({"ours": ours, "theirs": theirs}, repeats=repeats, warmup=warmup, sync=device,
                              on_result=score)
    with torch.no_grad():
        clean = sum(int((model(xb).argmax(1) == yb).sum()) for xb, yb in batches) / len(x)
    acc = {name: statistics.mean(a) for name, a in accuracy.items()}
    return {
        "torchattacks": getattr(torchattacks, "__version__", None), "points": len(x), "batch": batch,
        "eps": threat.eps, "steps": threat.steps, "step_size": threat.step, "random_start": threat.random_start,
        "device": str(device), "clean_accuracy": clean,
        "ours_adversarial_accuracy": acc["ours"], "reference_adversarial_accuracy": acc["theirs"],
        "accuracy_difference": acc["ours"] - acc["theirs"],
        # Conservative: averaging over the repeats only lowers the variance.
        "difference_binomial_se": math.sqrt(sum(a * (1 - a) / len(x) for a in acc.values())),
        "ours_adversarial_accuracy_per_repeat": accuracy["ours"],
        "reference_adversarial_accuracy_per_repeat": accuracy["theirs"],
        "ours_max_linf_perturbation": max_delta["ours"], "reference_max_linf_perturbation": max_delta["theirs"],
        "paired_ratio_median": statistics.median(t / o for o, t in zip(times["ours"], times["theirs"])),
        "ours_times_s": times["ours"], "reference_times_s": times["theirs"],
    }


def comparison_row(benchmark: str, case: str, ours: str, result: dict[str, Any], setup: dict[str, Any]) -> BenchRow:
    """The row of a :func:`compare_with_torchattacks` result (seconds per pass over the points)."""
    ours_s = statistics.median(result["ours_times_s"])
    theirs_s = statistics.median(result["reference_times_s"])
    note = (f"adv. accuracy ours {result['ours_adversarial_accuracy']:.1%}, "
            f"theirs {result['reference_adversarial_accuracy']:.1%} "
            f"(± {result['difference_binomial_se']:.1%}; clean {result['clean_accuracy']:.1%}, {setup['data']})")
    return BenchRow.timed(benchmark, case, ours, "torchattacks.PGD", ours_s, theirs_s, unit="pass", note=note,
                          extra={**setup, **result, "ours_images_per_s": result["points"] / ours_s,
                                 "reference_images_per_s": result["points"] / theirs_s})


def _train_fast_at(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, steps: int, batch: int, eps: float,
                   seed: int) -> None:
    """"Fast" adversarial training (Wong et al., 2020): FGSM from a random start, step 1.25 ε.

    Plain SGD with momentum written out: constructing a ``torch.optim``
    optimiser imports ``torch._dynamo``, seconds that would dwarf a quick run.
    """
    import torch
    import torch.nn.functional as F

    g = torch.Generator().manual_seed(seed)
    params = [p for p in model.parameters() if p.requires_grad]
    velocity = [torch.zeros_like(p) for p in params]
    model.train()
    for _ in range(steps):
        index = torch.randint(0, len(x), (min(batch, len(x)),), generator=g)
        xb, yb = x[index], y[index]
        start = ((xb + (2 * torch.rand(xb.shape, generator=g).to(xb.device) - 1) * eps).clamp(0, 1)).requires_grad_(True)
        (grad,) = torch.autograd.grad(F.cross_entropy(model(start), yb), start)
        adv = (xb + (start.detach() + 1.25 * eps * grad.sign() - xb).clamp(-eps, eps)).clamp(0, 1)
        grads = torch.autograd.grad(F.cross_entropy(model(adv), yb), params)
        with torch.no_grad():
            for p, v, dp in zip(params, velocity, grads):
                v.mul_(_MOMENTUM).add_(dp)
                p.add_(v, alpha=-_LR)
    model.eval()


def _setup(config: BenchConfig, device: torch.device, points: int, train_steps: int):
    """(model, x, y, description): Fashion-MNIST and a quickly trained MLP, or random images as a fallback."""
    import torch

    from wpgdkit.datasets import load_tensors
    from wpgdkit.models import create_model, dataset_normalization

    torch.manual_seed(config.seed)
    try:
        x_train, y_train = load_tensors("fashion-mnist", "train", limit=max(train_steps * 128, 1000), seed=config.seed,
                                        data_dir=config.data_dir)
        x, y = load_tensors("fashion-mnist", "test", limit=points, seed=config.seed, data_dir=config.data_dir)
    except WpgdkitError as exc:
        model = create_model(_MODEL, num_classes=10, input_shape=_FM_SHAPE).to(device).eval()
        g = torch.Generator().manual_seed(config.seed)
        x = torch.rand(points, *_FM_SHAPE, generator=g).to(device)
        with torch.no_grad():
            y = model(x).argmax(dim=1)
        reason = " ".join(str(exc).split())[:120]
        return model, x, y, {"data": "random images", "model": f"{_MODEL}, untrained; labels = its own predictions",
                             "why_not_fashion_mnist": reason}
    mean, std = dataset_normalization("fashion-mnist")
    model = create_model(_MODEL, num_classes=10, input_shape=_FM_SHAPE, mean=mean, std=std).to(device)
    start = time.perf_counter()
    _train_fast_at(model, x_train.to(device), y_train.to(device), steps=train_steps, batch=128, eps=_EPS,
                   seed=config.seed)
    return model, x.to(device), y.to(device), {
        "data": "fashion-mnist test",
        "model": f"{_MODEL} trained here: FGSM-RS ε=8/255, {train_steps} steps of 128 Fashion-MNIST images",
        "train_s": time.perf_counter() - start,
    }


@register_benchmark("torchattacks", "the toolkit's PGD vs torchattacks.PGD: time and adversarial "
                                       "accuracy (skipped without torchattacks)")
def bench_torchattacks(config: BenchConfig) -> list[BenchRow]:
    """The ``pgd`` attack vs ``torchattacks.PGD``, same model, points and budget.

    ℓ∞ ε = 8/255, 10 steps of the threat model's default step, random start,
    clamp to [0, 1]. The model is the toolkit's ``mlp`` trained here in
    seconds with "fast" adversarial training (FGSM from a random start) on 300
    batches of Fashion-MNIST (quick: 20), attacked on 512 test points (quick:
    64) in batches of ``config.batch``. Without Fashion-MNIST: random images
    and an untrained MLP whose own predictions are the labels (clean accuracy
    100 %). See :func:`compare_with_torchattacks`. Skipped when torchattacks
    is not installed.
    """
    from wpgdkit.attacks import ThreatModel

    points, train_steps = (64, 20) if config.quick else (512, 300)
    threat = ThreatModel(eps=_EPS, steps=_STEPS)
    case = f"{_MODEL}, {points} points, ℓ∞ {threat.eps_label}, {_STEPS} steps"
    try:
        import torchattacks  # noqa: F401
    except ImportError:
        return [BenchRow.skipped("torchattacks", case, "wpgdkit PGD", "torchattacks.PGD", TORCHATTACKS_MISSING)]
    device = config.torch_device()
    model, x, y, setup = _setup(config, device, points, train_steps)
    result = compare_with_torchattacks(model, x, y, threat=threat, batch=config.batch, repeats=config.repeats,
                                       warmup=config.warmup, device=device)
    return [comparison_row("torchattacks", case, "wpgdkit PGD", result, setup)]
