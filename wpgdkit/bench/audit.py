"""``audit`` (slow, not in the default set): the audit's PGD against torchattacks, and the cost of auditing 1 vs 4 checkpoints.

Both parts use a small CNN trained here with PGD on Fashion-MNIST through
:func:`wpgdkit.training.train`, so that its adversarial accuracy is not
trivially 0. The attack rows (:func:`compare_audit_attack`) time the audit's
attack path as the audit runs it (the layout it picks, its allocator setting)
against torchattacks, with early stop, against the bare floor of the loop, and
against the same PGD in the default layout and allocator.
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
from wpgdkit.bench.vs_torchattacks import TORCHATTACKS_MISSING
from wpgdkit.errors import WpgdkitError

__all__ = ["AUDIT_EPS", "AUDIT_STEPS", "count_attack_calls", "compare_audit_attack", "bench_audit"]

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


#: The sides of :func:`compare_audit_attack`, in the order their calls alternate.
ATTACK_SIDES = ("ours", "theirs", "early_stop", "floor", "default_layout")


def compare_audit_attack(model, x, y, *, threat, batch: int, repeats: int, warmup: int, device) -> dict[str, Any]:
    """The audit's PGD as the audit runs it, against torchattacks.PGD, early stop, the floor and the old path.

    Five sides, full passes over the points (in batches of ``batch``)
    alternating, each repeat with new random starts shared by our three PGD
    sides (per-batch seeds, as the audit's):

    - ``ours``: ``pgd`` from :func:`~wpgdkit.attacks.create_attack` on a copy
      of ``model`` in the layout :func:`~wpgdkit.models.layout.preferred_memory_format`
      picks (measured once, as the audit does; ``layout_trial_s``), inputs in
      that layout, inside :func:`~wpgdkit.allocator.retain_freed_memory`;
    - ``theirs``: ``torchattacks.PGD`` on ``model`` as given (channels-first),
      the global RNG seeded per repeat;
    - ``early_stop``: ``ours`` with ``early_stop=True`` (its forward passes
      counted, per point);
    - ``floor``: ``threat.steps`` × (forward + input-gradient backward) of the
      summed cross-entropy per batch, nothing else, in ``ours``' layout and
      allocator setting: what no PGD loop can beat;
    - ``default_layout``: our PGD on ``model`` as given, outside the allocator
      block (the audit's path before the layout and allocator changes).

    glibc's thresholds, once an allocator block has closed, stay at the
    ceilings of their adaptive values (:mod:`wpgdkit.allocator`): ``theirs``
    and ``default_layout`` run with those from the second pass on, which
    favours them if anything.

    Returns
    -------
    result : dict
        ``{side}_times_s`` (seconds per pass), ``{side}_adversarial_accuracy``
        (means over the repeats; not for the floor) with per-repeat values,
        ``clean_accuracy``, ``memory_format``, ``layout_trial_s``,
        ``early_stop_passes`` (point-passes spent by early stop, per pass) and
        ``full_passes`` (points × steps), ``paired_ratio_median`` per pair;
        ``{side}_cpu_s`` (process CPU seconds per pass, steadier than wall
        time on a shared machine) and ``cpu_ratio_median`` (reference / ours,
        paired; ``theirs_over_early_stop`` for the early-stop row).
    """
    import copy

    import torch
    import torch.nn.functional as F
    import torchattacks

    from wpgdkit.allocator import retain_freed_memory
    from wpgdkit.attacks import AttackConfig, create_attack
    from wpgdkit.models.layout import apply_memory_format, memory_format_name, preferred_memory_format, to_memory_format

    if threat.norm != "linf" or threat.restarts != 1 or threat.bounds != (0.0, 1.0):
        raise WpgdkitError("the torchattacks comparison runs one ℓ∞ PGD restart on images in [0, 1]")
    model.eval()
    start = time.perf_counter()
    fmt = preferred_memory_format(model, x[:min(batch, len(x))].to(device))
    trial_s = time.perf_counter() - start
    ours_model = apply_memory_format(copy.deepcopy(model), fmt).eval()
    counter = _RowCounter(ours_model)
    ours_attack = create_attack(AttackConfig("pgd", threat), ours_model)
    early_attack = create_attack(AttackConfig("pgd", threat, early_stop=True), counter)
    plain_attack = create_attack(AttackConfig("pgd", threat), model)
    theirs_attack = torchattacks.PGD(model, eps=threat.eps, alpha=threat.step, steps=threat.steps,
                                     random_start=threat.random_start)
    batches = [(x[i:i + batch].to(device), y[i:i + batch].to(device)) for i in range(0, len(x), batch)]
    ours_batches = [(to_memory_format(xb, fmt), yb) for xb, yb in batches]
    calls = {side: itertools.count() for side in ATTACK_SIDES}

    def seeded(side: str, attack, data):
        def run() -> list:
            r = next(calls[side])
            return [attack(xb, yb, seeds=[1000 * r + b]) for b, (xb, yb) in enumerate(data)]
        return run

    def retained(fn):
        def run():
            with retain_freed_memory():
                return fn()
        return run

    def theirs() -> list:
        torch.manual_seed(1000 * next(calls["theirs"]))  # torchattacks draws its start from the global RNG
        return [theirs_attack(xb, yb) for xb, yb in batches]

    def floor() -> None:
        for xb, yb in ours_batches:
            for _ in range(threat.steps):
                xb = xb.detach().requires_grad_(True)
                torch.autograd.grad(F.cross_entropy(ours_model(xb), yb, reduction="sum"), xb)

    def early() -> list:
        counter.rows = 0
        out = seeded("early_stop", early_attack, ours_batches)()
        passes.append(counter.rows)
        return out

    passes: list[int] = []
    cpu: dict[str, list[float]] = {side: [] for side in ATTACK_SIDES}

    def cpu_timed(side: str, fn):
        # CPU time beside the harness's wall time: steadier on a shared machine (one torch thread: the work done).
        def run():
            start = time.process_time()
            out = fn()
            cpu[side].append(time.process_time() - start)
            return out
        return run

    sides = {"ours": retained(seeded("ours", ours_attack, ours_batches)), "theirs": theirs,
             "early_stop": retained(early), "floor": retained(floor),
             "default_layout": seeded("default_layout", plain_attack, batches)}
    sides = {side: cpu_timed(side, fn) for side, fn in sides.items()}
    accuracy: dict[str, list[float]] = {side: [] for side in ATTACK_SIDES if side != "floor"}

    def score(side: str, adv) -> None:
        if side == "floor":
            return
        with torch.no_grad():
            correct = sum(int((model(a).argmax(1) == yb).sum()) for a, (_, yb) in zip(adv, batches))
        accuracy[side].append(correct / len(x))

    times = interleaved_times(sides, repeats=repeats, warmup=warmup, sync=device, on_result=score)
    with torch.no_grad():
        clean = sum(int((model(xb).argmax(1) == yb).sum()) for xb, yb in batches) / len(x)
    result: dict[str, Any] = {
        "torchattacks": getattr(torchattacks, "__version__", None), "points": len(x), "batch": batch,
        "eps": threat.eps, "steps": threat.steps, "step_size": threat.step, "random_start": threat.random_start,
        "device": str(device), "clean_accuracy": clean, "memory_format": memory_format_name(fmt),
        "layout_trial_s": trial_s, "early_stop_passes": passes[-repeats:], "full_passes": len(x) * threat.steps,
    }
    for side in ATTACK_SIDES:
        result[f"{side}_times_s"] = times[side]
        result[f"{side}_cpu_s"] = cpu[side][-repeats:]
        if side in accuracy:
            result[f"{side}_adversarial_accuracy"] = statistics.mean(accuracy[side])
            result[f"{side}_adversarial_accuracy_per_repeat"] = accuracy[side]
    result["paired_ratio_median"] = {
        side: statistics.median(t / o for o, t in zip(times["ours"], times[side])) for side in ATTACK_SIDES[1:]}
    result["cpu_ratio_median"] = {  # reference CPU time / ours, paired per repeat ("ours" of the early-stop row: it)
        side: statistics.median(t / o for o, t in zip(result["ours_cpu_s"], result[f"{side}_cpu_s"]))
        for side in ATTACK_SIDES[1:]}
    result["cpu_ratio_median"]["theirs_over_early_stop"] = statistics.median(
        t / o for o, t in zip(result["early_stop_cpu_s"], result["theirs_cpu_s"]))
    return result


class _RowCounter:
    """A model wrapper counting the points it is run on (forward passes per point)."""

    def __init__(self, model) -> None:
        self.model = model
        self.rows = 0

    def __call__(self, x):
        self.rows += len(x)
        return self.model(x)

    def __getattr__(self, name: str):
        return getattr(self.model, name)


def _attack_rows(case: str, result: dict[str, Any], setup: dict[str, Any]) -> list[BenchRow]:
    """The rows of :func:`compare_audit_attack`: vs torchattacks (plain and early stop), vs the floor, vs the old path."""
    med = {side: statistics.median(result[f"{side}_times_s"]) for side in ATTACK_SIDES}
    acc = {side: result[f"{side}_adversarial_accuracy"] for side in ATTACK_SIDES if side != "floor"}
    n = result["points"]
    se = math.sqrt(sum(a * (1 - a) / n for a in (acc["ours"], acc["theirs"])))
    layout = result["memory_format"]
    extra = {**setup, **result, "ours_images_per_s": n / med["ours"], "reference_images_per_s": n / med["theirs"]}
    spent = statistics.median(result["early_stop_passes"]) / result["full_passes"] if result["early_stop_passes"] else None
    cpu = result["cpu_ratio_median"]
    rows = [
        BenchRow.timed("audit", case, *ATTACK_ROWS[0], med["ours"], med["theirs"], unit="pass",
                       note=(f"CPU time ratio {cpu['theirs']:.2f}; AE ours {1 - acc['ours']:.1%}, theirs "
                             f"{1 - acc['theirs']:.1%} (± {se:.1%}; clean {result['clean_accuracy']:.1%}); ours in "
                             f"{layout}, malloc retained"),
                       extra=extra),
        BenchRow.timed("audit", case, *ATTACK_ROWS[1], med["early_stop"], med["theirs"], unit="pass",
                       note=(f"CPU time ratio {cpu['theirs_over_early_stop']:.2f}; AE early stop "
                             f"{1 - acc['early_stop']:.1%} (≥ ours {1 - acc['ours']:.1%}, same starts), "
                             f"theirs {1 - acc['theirs']:.1%}; "
                             + (f"{spent:.0%} of the forward/backward passes" if spent is not None else "")),
                       extra={"early_stop_pass_share": spent,
                              "early_stop_adversarial_accuracy": acc["early_stop"],
                              "ours_adversarial_accuracy": acc["ours"],
                              "cpu_ratio_median": cpu["theirs_over_early_stop"]}),
        BenchRow.timed("audit", case, *ATTACK_ROWS[2], med["ours"], med["floor"], unit="pass",
                       note=(f"CPU time ratio {cpu['floor']:.2f}; both in {layout}, malloc retained; ratio < 1: the "
                             f"loop's own cost"),
                       extra={"floor_times_s": result["floor_times_s"], "cpu_ratio_median": cpu["floor"]}),
        BenchRow.timed("audit", case, *ATTACK_ROWS[3], med["ours"], med["default_layout"], unit="pass",
                       note=(f"CPU time ratio {cpu['default_layout']:.2f}: what the layout ({layout}) and the "
                             f"retained allocator buy; AE "
                             f"{1 - acc['ours']:.1%} vs {1 - acc['default_layout']:.1%}"),
                       extra={"default_layout_times_s": result["default_layout_times_s"],
                              "cpu_ratio_median": cpu["default_layout"],
                              "default_layout_adversarial_accuracy": acc["default_layout"]}),
    ]
    return rows


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


#: The attack rows' (ours, reference), in order (also the skipped rows').
ATTACK_ROWS = (("audit PGD", "torchattacks.PGD"), ("audit PGD, early stop", "torchattacks.PGD"),
               ("audit PGD", f"floor: {AUDIT_STEPS} × (forward + input-gradient backward)"),
               ("audit PGD", "audit PGD, channels-first, malloc default"))


@register_benchmark("audit", "the audit's PGD-20 (and with early stop) vs torchattacks.PGD and vs the floor of "
                             "20 forward+backward passes on a PGD-trained small-cnn, and the per-model cost of "
                             "auditing 1 vs 4 checkpoints; trains the model first (needs Fashion-MNIST)", default=False)
def bench_audit(config: BenchConfig) -> list[BenchRow]:
    """Five rows on a small CNN trained here (one epoch of PGD on Fashion-MNIST).

    Model: ``small-cnn`` trained by :func:`wpgdkit.training.train` with ℓ∞
    PGD (ε = 0.1, 5 steps; quick: 2) on 6,000 training images (quick: 512).

    1.–4. The audit's adversary (``pgd`` from :func:`~wpgdkit.attacks.create_attack`:
       ℓ∞ ε = 0.1, 20 steps of the threat model's default step, random
       start) on 1,000 test points (quick: 64) in batches of
       ``config.batch``, as the audit runs it (its layout, its allocator
       setting), vs ``torchattacks.PGD``; the same with early stop vs
       ``torchattacks.PGD``; vs the floor of 20 × (forward + input-gradient
       backward); and vs itself in the default layout and allocator. Time per
       pass and adversarial error of each (:func:`compare_audit_attack`).
       Skipped without torchattacks.
    5. :func:`wpgdkit.audit.audit` of 1 checkpoint and of 4 (copies of the
       same one, so every model costs the same) on 1,000 test points (quick:
       64), alternating; the per-model wall time of each (median of at most 3
       repeats) and ``ratio`` = 1-checkpoint / 4-checkpoint per
       model (above 1: the data and the metric are loaded once). Attack calls
       are counted per model: each must be attacked exactly once,
       ``ceil(points / batch)`` calls.

    Every row is skipped, with the reason, without Fashion-MNIST.
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
        return [*(BenchRow.skipped("audit", attack_case, ours, ref, reason) for ours, ref in ATTACK_ROWS),
                BenchRow.skipped("audit", audit_case, f"{_MODELS} checkpoints", "1 checkpoint", reason)]
    device = config.torch_device()
    rows = []
    with tempfile.TemporaryDirectory(prefix="wpgdkit-bench-audit-") as tmp:
        folder = Path(tmp)
        checkpoint, setup = _train(folder, config, sizes)
        try:
            import torchattacks  # noqa: F401
        except ImportError:
            rows.extend(BenchRow.skipped("audit", attack_case, ours, ref, TORCHATTACKS_MISSING)
                        for ours, ref in ATTACK_ROWS)
        else:
            model = load_checkpoint(checkpoint).build_model(device)
            result = compare_audit_attack(model, x, y, threat=threat, batch=config.batch, repeats=config.repeats,
                                          warmup=config.warmup, device=device)
            rows.extend(_attack_rows(attack_case, result, setup))
        rows.append(_multi_checkpoint(checkpoint, folder, config, sizes["audit_points"]))
    return rows
