"""Do the paper's effects show? Accuracy-gap correlation ρ and the weighted score S vs p.

Trains CE, PGD and WPGD (p = 1, 2.5, 10) with the library's ``train`` and, on
the test split, measures:

* NE / AE: natural and adversarial error (PGD-20 with cross-entropy);
* ρ: Pearson and Spearman correlation between the accuracy gap
  G = |C_pgd − C_ce| (row-normalised natural confusion matrices, Definition 1)
  and the label metric, over the off-diagonal pairs (paper, Table 1);
* S: the weighted robustness score (eq. 7) under an attacker that knows the
  metric (WPGD-20 with p = 1, the paper's Table 3 setting), normalised as the
  mean cost of the adversarial predictions, S = (1/N) Σ_n C̃[y_n, ŷ_n] with
  C̃ = C / max C, so it is comparable across test-set sizes; reported as S − S_PGD.

This is a measurement script for the closing notes of the training work; the
audit command of a later release computes the same quantities.

    python benchmarks/paper_effects.py --dataset toy --out runs/effects-toy
    python benchmarks/paper_effects.py --dataset fashion-mnist --out runs/effects-fm
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from wpgdkit.attacks import PGDConfig, pgd_attack
from wpgdkit.datasets import get_dataset, load_tensors
from wpgdkit.labelmetric import matrix_correlation, read_metric
from wpgdkit.losses import WassersteinLoss
from wpgdkit.models import create_model
from wpgdkit.resources import metrics_dir
from wpgdkit.training import DataConfig, TrainConfig, load_checkpoint, train

SETTINGS = {
    "toy": dict(model="mlp", norm="l2", eps=0.4, steps=5, epochs=15, lr=0.05, limit=None, test_limit=None,
                metric="toy-paper.csv", extra_metrics=()),
    "fashion-mnist": dict(model="small-cnn", norm="linf", eps=0.1, steps=8, epochs=2, lr=0.05, limit=6000,
                          test_limit=1000, metric="fashion-mnist-wordnet.csv", extra_metrics=("fashion-mnist-linear.csv",)),
}
RUNS = [("ce", None), ("pgd", None), ("wpgd", 1.0), ("wpgd", 2.5), ("wpgd", 10.0)]


def run_name(method: str, p: float | None) -> str:
    return method if p is None else f"{method}-p{p:g}"


def train_all(dataset: str, settings: dict, out: Path) -> dict[str, Path]:
    paths = {}
    for method, p in RUNS:
        path = out / f"{run_name(method, p)}.pt"
        config = TrainConfig(
            data=DataConfig(dataset, limit=settings["limit"], val_fraction=0.0), model=settings["model"], method=method,
            metric=str(metrics_dir() / settings["metric"]), p=p or 1.0, norm=settings["norm"], eps=settings["eps"],
            steps=settings["steps"], eval_steps=0, epochs=settings["epochs"], lr=settings["lr"], out=str(path),
            device="cpu", resume=True,
        )
        if not (path.exists() and load_checkpoint(path)["epoch"] >= settings["epochs"]):
            train(config)
        paths[run_name(method, p)] = path
        print(f"wpgdkit train --dataset {dataset} --model {settings['model']} --method {method}"
              + (f" --metric metrics/{settings['metric']} --p {p:g}" if p else "")
              + f" --norm {settings['norm']} --eps {settings['eps']} --steps {settings['steps']} --eval-steps 0"
              + f" --epochs {settings['epochs']} --lr {settings['lr']}"
              + (f" --limit {settings['limit']}" if settings["limit"] else "") + f" --val-fraction 0 --out {path}")
    return paths


def load_model(path: Path) -> torch.nn.Module:
    state = load_checkpoint(path)
    m = state["model"]
    model = create_model(m["name"], num_classes=m["num_classes"], input_shape=tuple(m["input_shape"]),
                         mean=m["mean"], std=m["std"])
    model.load_state_dict(m["state_dict"])
    return model.eval()


def confusion(y: torch.Tensor, pred: torch.Tensor, k: int) -> np.ndarray:
    counts = torch.bincount(y * k + pred, minlength=k * k).reshape(k, k).double()
    return (counts / counts.sum(1, keepdim=True).clamp_min(1)).numpy()


def predictions(model, x, y, attack: PGDConfig | None, loss_fn=None, batch: int = 500) -> torch.Tensor:
    out = []
    for i in range(0, len(x), batch):
        xb, yb = x[i:i + batch], y[i:i + batch]
        if attack is not None:
            xb = pgd_attack(model, xb, yb, config=attack, loss_fn=loss_fn, generator=torch.Generator().manual_seed(i))
        with torch.no_grad():
            out.append(model(xb).argmax(1))
    return torch.cat(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", choices=sorted(SETTINGS), default="toy")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    settings = SETTINGS[args.dataset]
    args.out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    paths = train_all(args.dataset, settings, args.out)
    spec = get_dataset(args.dataset)
    k = spec.num_classes
    x, y = load_tensors(args.dataset, "test", limit=settings["test_limit"], seed=0)
    metric = read_metric(metrics_dir() / settings["metric"])
    cost = metric.matrix / metric.matrix.max()
    bounds = spec.input_range
    pgd20 = PGDConfig(eps=settings["eps"], step_size=2.5 * settings["eps"] / 20, steps=20, norm=settings["norm"], bounds=bounds)
    knows_metric = WassersteinLoss(torch.tensor(cost, dtype=torch.float32), p=1.0)
    rows, natural = {}, {}
    for name, path in paths.items():
        model = load_model(path)
        clean = predictions(model, x, y, None)
        adv = predictions(model, x, y, pgd20)
        adv_w = predictions(model, x, y, pgd20, knows_metric)
        natural[name] = confusion(y, clean, k)
        rows[name] = {
            "NE": float((clean != y).double().mean() * 100), "AE": float((adv != y).double().mean() * 100),
            "AE_wpgd_attack": float((adv_w != y).double().mean() * 100),
            "S": float(cost[y.numpy(), adv_w.numpy()].mean()),
        }
    gap = np.abs(natural["pgd"] - natural["ce"])
    correlations = {settings["metric"]: matrix_correlation(gap, metric.matrix).to_dict()}
    for extra in settings["extra_metrics"]:
        correlations[extra] = matrix_correlation(gap, read_metric(metrics_dir() / extra).matrix).to_dict()
    s_ref = rows["pgd"]["S"]
    for row in rows.values():
        row["S_minus_S_pgd"] = row["S"] - s_ref
    print(f"\n{args.dataset}: {len(y)} test points; AE under PGD-20 (cross-entropy); S under WPGD-20 (attacker knows C, p=1)")
    print(f"{'model':10} {'NE %':>7} {'AE %':>7} {'AE(WPGD) %':>11} {'S':>8} {'S − S_PGD':>10}")
    for name, r in rows.items():
        print(f"{name:10} {r['NE']:7.2f} {r['AE']:7.2f} {r['AE_wpgd_attack']:11.2f} {r['S']:8.4f} {r['S_minus_S_pgd']:10.4f}")
    for name, c in correlations.items():
        print(f"ρ(G = |C_pgd − C_ce|, {name}): Pearson {c['pearson']:.3f} (p={c['pearson_pvalue']:.2g}), "
              f"Spearman {c['spearman']:.3f}")
    (args.out / "effects.json").write_text(json.dumps({"rows": rows, "correlations": correlations,
                                                       "settings": settings}, indent=1, default=str))


if __name__ == "__main__":
    main()
