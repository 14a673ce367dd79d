"""``attack-step``: time per inner step of WPGD (Wasserstein loss) against PGD (cross-entropy).

The paper (Sec. 5.2) states that WPGD costs the same as PGD: the Wasserstein
loss (eq. 5) is a row gather and a dot product next to a forward and backward
pass. This measures it with the attack objects training and the audit use.
"""

from __future__ import annotations

import statistics
from typing import TYPE_CHECKING

from wpgdkit.bench.harness import (
    BenchConfig,
    BenchRow,
    interleaved_times,
    random_metric,
    register_benchmark,
    summarize,
    timing_summary,
)

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = ["STEP_MODELS", "bench_attack_step"]

#: Models timed, with their input shapes.
STEP_MODELS = {"small-cnn": (1, 28, 28), "wrn-16-10": (3, 32, 32)}
_WRN_CPU_BATCH = 4
_WRN_CPU_REPEATS = 3
_NUM_CLASSES = 10
_P = 2.5
_EPS = 8 / 255


@register_benchmark("attack-step", "WPGD vs PGD time per inner step on small-cnn and wrn-16-10")
def bench_attack_step(config: BenchConfig) -> list[BenchRow]:
    """Time per step of :class:`~wpgdkit.attacks.WPGD` (p = 2.5) vs :class:`~wpgdkit.attacks.PGD`.

    K = 10 classes, a random valid metric, ℓ∞ ε = 8/255 with the threat
    model's default step, no random start, random inputs and labels.
    Small CNN (1×28×28): batch ``config.batch`` (quick: at most 8), 2 steps
    per timed call (quick: 1). WRN-16-10 (3×32×32): on a CPU batch 4, 1 step
    per call and at most 3 repeats (one step takes seconds); on CUDA batch
    ``config.batch`` and 2 steps; left out by ``quick``. After the warm-up
    calls, each repeat runs PGD and WPGD in a seeded random order
    (:func:`~wpgdkit.bench.train_loop.shuffled_times`); the per-step medians
    and interquartile ranges come from ``torch.utils.benchmark`` measurements
    of the raw wall times; the median of the per-repeat ratios is a
    cross-check on a shared machine, and on a CPU so is that of the CPU times
    (``paired_cpu_ratio_median``), which other processes disturb far less.
    """
    import torch

    from wpgdkit.attacks import PGD, WPGD, ThreatModel
    from wpgdkit.bench.train_loop import shuffled_times
    from wpgdkit.models import count_parameters, create_model

    device = config.torch_device()
    metric = random_metric(_NUM_CLASSES, seed=config.seed)
    rows = []
    for name, shape in STEP_MODELS.items():
        repeats, warmup = config.repeats, config.warmup
        if name == "small-cnn":
            batch, steps = (min(config.batch, 8), 1) if config.quick else (config.batch, 2)
        else:
            if config.quick:
                rows.append(BenchRow.skipped("attack-step", name, "WPGD", "PGD",
                                             "left out by --quick (seconds per step on a CPU)"))
                continue
            batch, steps = (config.batch, 2) if device.type == "cuda" else (_WRN_CPU_BATCH, 1)
            if device.type != "cuda":
                repeats, warmup = min(repeats, _WRN_CPU_REPEATS), min(warmup, 1)
        torch.manual_seed(config.seed)
        model = create_model(name, num_classes=_NUM_CLASSES, input_shape=shape).to(device)
        g = torch.Generator().manual_seed(config.seed + 1)
        x = torch.rand(batch, *shape, generator=g).to(device)
        y = torch.randint(0, _NUM_CLASSES, (batch,), generator=g).to(device)
        threat = ThreatModel(eps=_EPS, steps=steps, random_start=False)
        pgd = PGD(model, threat=threat)
        wpgd = WPGD(model, metric, p=_P, threat=threat)
        calls = {"pgd": lambda: pgd(x, y), "wpgd": lambda: wpgd(x, y)}
        if warmup:
            interleaved_times(calls, repeats=warmup, warmup=0, sync=device)  # untimed
        both = shuffled_times(calls, repeats=repeats, seed=config.seed, sync=device)
        times = {key: wall for key, (wall, _) in both.items()}
        case = f"{name}, {'×'.join(map(str, shape))}, batch {batch}"
        measured = {key: summarize(ts, per_call=steps, label="attack-step", sub_label=case, description=key.upper())
                    for key, ts in times.items()}
        pgd_s, wpgd_s = measured["pgd"].median, measured["wpgd"].median
        paired = statistics.median(w / q for q, w in zip(times["pgd"], times["wpgd"]))
        noisy = [key.upper() for key, m in measured.items() if timing_summary(m, key)[f"{key}_noisy"]]
        cpu_note, cpu_extra = "", {}
        if device.type == "cpu":
            paired_cpu = statistics.median(w / q for q, w in zip(both["pgd"][1], both["wpgd"][1]))
            cpu_note, cpu_extra = f", CPU time {paired_cpu:.3f}", {"paired_cpu_ratio_median": paired_cpu}
        rows.append(BenchRow.timed(
            "attack-step", case, "WPGD", "PGD", wpgd_s, pgd_s, unit="step",
            note=(f"WPGD/PGD {wpgd_s / pgd_s:.3f} (paired {paired:.3f}{cpu_note}); {repeats}×{steps} steps"
                  + (f"; noisy: IQR > 10% of the median ({', '.join(noisy)})" if noisy else "")),
            extra={"model": name, "parameters": count_parameters(model), "input_shape": list(shape), "batch": batch,
                   "steps_per_call": steps, "repeats": repeats, "warmup": warmup, "num_classes": _NUM_CLASSES,
                   "p": _P, "threat": threat.to_dict(), "device": str(device), "wpgd_over_pgd": wpgd_s / pgd_s,
                   "paired_ratio_median": paired, **cpu_extra,
                   **timing_summary(measured["wpgd"], "wpgd_step"), **timing_summary(measured["pgd"], "pgd_step")},
        ))
    return rows
