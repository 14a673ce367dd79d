"""``loss``: the closed-form Wasserstein loss against POT solving the same transport problems one by one."""

from __future__ import annotations

import statistics
import warnings

import numpy as np

from wpgdkit.bench.harness import BenchConfig, BenchRow, interleaved_times, random_metric, register_benchmark, relative_error

__all__ = ["SINKHORN_REG", "EMD_TOLERANCE", "SINKHORN_TOLERANCE", "bench_loss"]

#: Regularisation of the Sinkhorn reference, relative to max(C^p).
SINKHORN_REG = 0.01
#: Agreement expected of ``ot.emd2`` (as in :func:`wpgdkit.labelmetric.ot_check.reference_check`).
EMD_TOLERANCE = 1e-9
#: Agreement expected of Sinkhorn's transport cost (ibid.).
SINKHORN_TOLERANCE = 1e-6


@register_benchmark("loss", "closed-form Wasserstein loss vs ot.emd2 / ot.sinkhorn2 (POT), K = 10, 100, 200, "
                            "CPU float64")
def bench_loss(config: BenchConfig) -> list[BenchRow]:
    """Closed form ``(C^p)[y] · softmax(z)`` (Lemma 4) on a batch vs POT on each row.

    Random logits (scale 3) and targets; ``C`` the distances between random
    points (a valid metric), p = 1; K = 10, 100, 200 (quick: 10, 100), batch
    ``config.batch`` (quick: at most 16), CPU, float64. Ours includes the
    softmax; POT gets the probabilities precomputed. Sinkhorn is POT's default
    solver at ``reg = 0.01·max(C^p)``: the transport plan to a one-hot
    marginal is forced, so ``sinkhorn2``'s value (the plan's transport cost)
    is exact up to convergence; the entropic objective would be lower by
    ``reg·H(q)``, reported as ``entropic_gap_mean``. The three calls
    alternate; ``agreement`` is the values' largest relative difference.
    """
    import torch

    import ot

    from wpgdkit.labelmetric.ot_check import entropy
    from wpgdkit.losses import wasserstein_loss

    ks = (10, 100) if config.quick else (10, 100, 200)
    batch = min(config.batch, 16) if config.quick else config.batch
    p = 1.0
    rows = []
    for k in ks:
        rng = np.random.default_rng([config.seed, k])
        cost_p = random_metric(k, seed=int(rng.integers(2**31))) ** p
        scale = float(cost_p.max())
        reg = SINKHORN_REG * scale
        logits = torch.from_numpy(rng.normal(scale=3.0, size=(batch, k)))
        target = torch.from_numpy(rng.integers(0, k, size=batch))
        cost_t = torch.from_numpy(cost_p)
        q = torch.softmax(logits, dim=1).numpy()
        t = target.numpy()
        onehots = np.eye(k)

        def ours() -> np.ndarray:
            return wasserstein_loss(logits, target, cost_t, reduction="none").numpy()

        def emd() -> np.ndarray:
            return np.array([ot.emd2(onehots[t[n]], q[n], cost_p) for n in range(batch)])

        def sinkhorn() -> np.ndarray:
            # Plain Sinkhorn divides by the zeros of the one-hot marginal on its way (harmlessly).
            with warnings.catch_warnings(), np.errstate(all="ignore"):
                warnings.simplefilter("ignore")
                return np.array([float(ot.sinkhorn2(onehots[t[n]], q[n], cost_p, reg)) for n in range(batch)])

        values = {"ours": ours(), "emd": emd(), "sinkhorn": sinkhorn()}
        times = interleaved_times({"ours": ours, "emd": emd, "sinkhorn": sinkhorn},
                                  repeats=config.repeats, warmup=config.warmup)
        med = {name: statistics.median(ts) for name, ts in times.items()}
        case = f"K={k}, batch {batch}, p={p:g}"
        common = {"num_classes": k, "batch": batch, "p": p, "dtype": "float64", "device": "cpu"}
        emd_err = relative_error(values["ours"], values["emd"], scale=scale)
        rows.append(BenchRow.timed(
            "loss", case, "closed form", "ot.emd2 loop", med["ours"], med["emd"], agreement=emd_err, unit="batch",
            note=f"{med['emd'] / batch * 1e3:.2f} ms per ot.emd2 call",
            extra={**common, "tolerance": EMD_TOLERANCE, "within_tolerance": emd_err <= EMD_TOLERANCE,
                   "ours_times_s": times["ours"], "reference_times_s": times["emd"]},
        ))
        sk_err = relative_error(values["ours"], values["sinkhorn"], scale=scale)
        gap = float(reg * entropy(q).mean())
        rows.append(BenchRow.timed(
            "loss", case, "closed form", "ot.sinkhorn2 loop", med["ours"], med["sinkhorn"], agreement=sk_err,
            unit="batch",
            note=f"reg {SINKHORN_REG:g}·max C; transport cost (entropic objective {gap:.2g} lower)",
            extra={**common, "reg": reg, "reg_relative": SINKHORN_REG, "entropic_gap_mean": gap,
                   "tolerance": SINKHORN_TOLERANCE, "within_tolerance": sk_err <= SINKHORN_TOLERANCE,
                   "ours_times_s": times["ours"], "reference_times_s": times["sinkhorn"]},
        ))
    return rows
