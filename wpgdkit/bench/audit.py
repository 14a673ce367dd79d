"""``audit`` (slow, not in the default set): the audit's PGD against torchattacks, and the cost of auditing 1 vs 4 checkpoints.

Both parts use a small CNN trained here with PGD on Fashion-MNIST through
:func:`wpgdkit.training.train`, so that its adversarial accuracy is not
trivially 0.
"""

from __future__ import annotations

import itertools
import math
import shutil
import statistics
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from wpgdkit.bench.harness import BenchConfig, BenchRow, interleaved_times, register_benchmark
from wpgdkit.bench.vs_torchattacks import TORCHATTACKS_MISSING, compare_with_torchattacks, comparison_row
from wpgdkit.errors import WpgdkitError

__all__ = ["AUDIT_EPS", "AUDIT_STEPS", "count_attack_calls", "bench_audit"]

#: The audit's budget here: ℓ∞ ε = 0.1 (the usual Fashion-MNIST budget), 20 steps (the paper's evaluation).
AUDIT_EPS = 0.1
AUDIT_STEPS = 20
#: Most timed repeats of the multi-checkpoint audit (one repeat audits 5 models).
_AUDIT_REPEATS = 3
_MODELS = 4


def _sizes(quick: bool) -> dict[str, int]:
    if quick:
        return {"points": 64, "audit_points": 64, "train_limit": 512, "train_steps": 2}
    return {"points": 1000, "audit_points": 1000, "train_limit": 6000, "train_steps": 5}


@contextmanager
def count_attack_calls() -> Iterator[Counter[int]]:
    """Inside the block, attack-object calls counted per attacked model (models tagged in call order).

    Wraps :meth:`wpgdkit.attacks.base.Attack.__call__`, which every adversary
    of the registry goes through, and restores it on exit. A model is tagged
    on the object itself: an ``id()`` could be reused once a model is freed.
    """
    from wpgdkit.attacks.base import Attack

    calls: Counter[int] = Counter()
    tags = itertools.count()
    original = Attack.__call__

    def counting(self, x, y, **kwargs):
        tag = getattr(self.model, "_wpgdkit_bench_tag", None)
        if tag is None:
            tag = next(tags)
            self.model._wpgdkit_bench_tag = tag
        calls[tag] += 1
        return original(self, x, y, **kwargs)

    Attack.__call__ = counting
    try:
        yield calls
    finally:
        Attack.__call__ = original


def _train(folder: Path, config: BenchConfig, sizes: dict[str, int]) -> tuple[Path, dict[str, Any]]:
    """A small CNN trained for one epoch with PGD on a seeded Fashion-MNIST subset."""
    from wpgdkit.training import DataConfig, TrainConfig, train

    out = folder / "fm-small-cnn-pgd.pt"
    train_config = TrainConfig(
        data=DataConfig("fashion-mnist", limit=sizes["train_limit"], val_fraction=0.0, augment=False,
                        data_dir=config.data_dir, seed=config.seed),
        model="small-cnn", method="pgd", norm="linf", eps=AUDIT_EPS, steps=sizes["train_steps"], eval_steps=0,
        epochs=1, batch_size=config.batch, lr=0.05, schedule="constant", out=str(out), device=config.device,
        amp=False, seed=config.seed)
    start = time.perf_counter()
    train(train_config)
    return out, {
        "data": "fashion-mnist test",
        "model": (f"small-cnn trained here: PGD ε={AUDIT_EPS:g}, {sizes['train_steps']} steps, 1 epoch of "
                  f"{sizes['train_limit']:,} Fashion-MNIST images"),
        "train_s": time.perf_counter() - start,
    }


def _multi_checkpoint(checkpoint: Path, folder: Path, config: BenchConfig, points: int) -> BenchRow:
    """One audit of 1 checkpoint vs one of 4 (copies, so every model costs the same), per model."""
    from wpgdkit.audit import AuditConfig, audit

    copies = []
    for i in range(_MODELS):
        copy = folder / f"model-{i}.pt"
        shutil.copyfile(checkpoint, copy)
        copies.append(str(copy))
    repeats = min(config.repeats, _AUDIT_REPEATS)
    counts: dict[int, list[int]] = {}

    def run(k: int) -> None:
        audit(AuditConfig(checkpoints=tuple(copies[:k]), attack="pgd", eps=AUDIT_EPS, norm="linf",
                          steps=AUDIT_STEPS, limit=points, batch_size=config.batch, device=config.device,
                          data_dir=config.data_dir, seed=config.seed))

    with count_attack_calls() as calls:
        def audited(k: int):
            def go() -> list[int]:
                calls.clear()
                run(k)
                return sorted(calls.values())
            return go

        if config.warmup:
            run(1)  # data, metric and kernels; the 4-checkpoint audit is not warmed up separately
        times = interleaved_times({"1": audited(1), str(_MODELS): audited(_MODELS)}, repeats=repeats, warmup=0,
                                  on_result=lambda name, value: counts.__setitem__(int(name), value))
    per_model = {int(name): statistics.median(ts) / int(name) for name, ts in times.items()}
    expected = math.ceil(points / config.batch)
    counted = bool(counts[1])
    once = counts[1] == [expected] and counts[_MODELS] == [expected] * _MODELS if counted else None
    ratio_4_1 = per_model[_MODELS] / per_model[1]
    note = f"per model {_MODELS}/1 {ratio_4_1:.3f}; " + (
        f"each model attacked once ({expected} batch calls): {'yes' if once else 'NO'}" if counted
        else "attack calls not seen (the audit does not call an attack object)")
    return BenchRow.timed(
        "audit", f"audit of {points:,} points, PGD-{AUDIT_STEPS}, batch {config.batch}", f"{_MODELS} checkpoints",
        "1 checkpoint", per_model[_MODELS], per_model[1], unit="model", note=note,
        extra={"points": points, "batch": config.batch, "repeats": repeats, "models": _MODELS,
               "one_model_s": statistics.median(times["1"]), "four_models_s": statistics.median(times[str(_MODELS)]),
               "per_model_s_1": per_model[1], "per_model_s_4": per_model[_MODELS],
               "per_model_ratio_4_over_1": ratio_4_1,
               "attack_calls_per_model_1": counts[1], "attack_calls_per_model_4": counts[_MODELS],
               "expected_calls_per_model": expected, "each_model_attacked_once": once,
               "one_model_runs_s": times["1"], "four_models_runs_s": times[str(_MODELS)]},
    )


@register_benchmark("audit", "the audit's PGD-20 vs torchattacks.PGD on a PGD-trained small-cnn, and the "
                             "per-model cost of auditing 1 vs 4 checkpoints; trains the model first "
                             "(needs Fashion-MNIST)", default=False)
def bench_audit(config: BenchConfig) -> list[BenchRow]:
    """Two rows on a small CNN trained here (one epoch of PGD on Fashion-MNIST).

    Model: ``small-cnn`` trained by :func:`wpgdkit.training.train` with ℓ∞
    PGD (ε = 0.1, 5 steps; quick: 2) on 6,000 training images (quick: 512).

    1. The audit's adversary (``pgd`` from :func:`~wpgdkit.attacks.create_attack`:
       ℓ∞ ε = 0.1, 20 steps of the threat model's default step, random
       start) vs ``torchattacks.PGD`` on 1,000 test points (quick: 64) in
       batches of ``config.batch``: time per pass and adversarial accuracy
       (:func:`~wpgdkit.bench.vs_torchattacks.compare_with_torchattacks`).
       Skipped without torchattacks.
    2. :func:`wpgdkit.audit.audit` of 1 checkpoint and of 4 (copies of the
       same one, so every model costs the same) on 1,000 test points (quick:
       64), alternating; the per-model wall time of each (median of at most 3
       repeats) and ``ratio`` = 1-checkpoint / 4-checkpoint per
       model (above 1: the data and the metric are loaded once). Attack calls
       are counted per model: each must be attacked exactly once,
       ``ceil(points / batch)`` calls.

    Both rows are skipped, with the reason, without Fashion-MNIST.
    """
    from wpgdkit.attacks import ThreatModel
    from wpgdkit.datasets import load_tensors
    from wpgdkit.training import load_checkpoint

    sizes = _sizes(config.quick)
    threat = ThreatModel(eps=AUDIT_EPS, steps=AUDIT_STEPS)
    attack_case = f"small-cnn (PGD-trained), {sizes['points']:,} points, ℓ∞ {threat.eps_label}, {AUDIT_STEPS} steps"
    audit_case = f"audit of {sizes['audit_points']:,} points, PGD-{AUDIT_STEPS}, batch {config.batch}"
    try:
        x, y = load_tensors("fashion-mnist", "test", limit=sizes["points"], seed=config.seed, data_dir=config.data_dir)
    except WpgdkitError as exc:
        reason = "Fashion-MNIST not available: " + " ".join(str(exc).split())
        return [BenchRow.skipped("audit", attack_case, "audit PGD", "torchattacks.PGD", reason),
                BenchRow.skipped("audit", audit_case, f"{_MODELS} checkpoints", "1 checkpoint", reason)]
    device = config.torch_device()
    rows = []
    with tempfile.TemporaryDirectory(prefix="wpgdkit-bench-audit-") as tmp:
        folder = Path(tmp)
        checkpoint, setup = _train(folder, config, sizes)
        try:
            import torchattacks  # noqa: F401
        except ImportError:
            rows.append(BenchRow.skipped("audit", attack_case, "audit PGD", "torchattacks.PGD", TORCHATTACKS_MISSING))
        else:
            model = load_checkpoint(checkpoint).build_model(device)
            result = compare_with_torchattacks(model, x, y, threat=threat, batch=config.batch,
                                               repeats=config.repeats, warmup=config.warmup, device=device)
            rows.append(comparison_row("audit", attack_case, "audit PGD", result, setup))
        rows.append(_multi_checkpoint(checkpoint, folder, config, sizes["audit_points"]))
    return rows
