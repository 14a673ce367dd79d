"""The paper's experiments as one command each, at a scale the user picks (``wpgdkit reproduce``).

=====================  ===============================================================
``gap-correlation``    CE vs PGD: accuracy-gap heatmap beside the metric, ρ(G, C) for
                       every metric shipped for the dataset (Table 1, Figs. 1–4)
``p-sweep``            PGD and WPGD for p ∈ {1, 2.5, 10}: NE, AE, S − S_PGD, and the
                       accuracy/robustness trade-off against p (Table 3, Fig. 10)
``imbalance``          two-class problems, similar and dissimilar pair, balanced and
                       with ratio 0.3, CE vs PGD: validation error per epoch (Sec. 3.2,
                       Fig. 5)
``entropy``            entropy histograms of CE vs PGD predictions (Fig. 7)
=====================  ===============================================================

Every experiment trains the checkpoints it needs into ``<out>/runs/`` (named by
their settings, shared between experiments, resumed when interrupted, reused
when complete), audits them with :func:`wpgdkit.audit.audit`, and writes
``<out>/<experiment>/report.md`` with its tables, plots, results JSON and the
exact commands that reproduce each number.
"""

from __future__ import annotations

import json
import math
import shlex
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from wpgdkit import __version__
from wpgdkit.atomic import atomic_path, atomic_write_text
from wpgdkit.jsonutil import json_value
from wpgdkit.errors import WpgdkitError
from wpgdkit.registry import Registry

__all__ = [
    "SCALES",
    "ReproduceConfig",
    "ExperimentResult",
    "list_experiments",
    "get_experiment",
    "resolve_settings",
    "run_experiment",
]


# --- scales -----------------------------------------------------------------------------

# quick: a CPU in minutes (Fashion-MNIST, or the toy problem); paper: the paper's Sec. 5 on a GPU.
SCALES: dict[str, dict[str, Any]] = {
    "quick": dict(dataset="fashion-mnist", model="small-cnn", epochs=2, limit=6000, test_limit=1000, eps=0.1,
                  norm="linf", steps=5, eval_steps=20, lr=0.05, batch_size=128, imbalance_epochs=4,
                  imbalance_limit=3000),
    "paper": dict(dataset="cifar10", model="wrn-16-10", epochs=200, limit=None, test_limit=None, eps=4 / 255,
                  norm="linf", steps=8, eval_steps=20, lr=0.1, batch_size=128, imbalance_epochs=200,
                  imbalance_limit=None),
}
# Settings that fit the toy problem whatever the scale: 2-D points, an ℓ2 budget, an MLP.
TOY = dict(model="mlp", eps=0.4, norm="l2", lr=0.05, limit=None, test_limit=None)
P_VALUES = (1.0, 2.5, 10.0)
IMBALANCE_RATIO = 0.3
# (similar pair, dissimilar pair) by label; other datasets take the closest and the farthest pair of their metric.
PAIRS = {"cifar10": ((3, 5), (0, 7)), "fashion-mnist": ((0, 6), (1, 8)), "toy": ((0, 2), (0, 1)),
         "mnist": ((4, 9), (0, 1))}


@dataclass(frozen=True)
class ReproduceConfig:
    """What ``wpgdkit reproduce`` runs; None takes the scale's preset.

    Attributes
    ----------
    experiment : str
        Experiment registry name (:func:`list_experiments`).
    scale : {"quick", "paper"}
    dataset, model : str or None
    epochs : int or None
    limit : int or None
        Training points (a seeded subset); ``test_limit`` the first N test points audited.
    eps : float or None
        Training and evaluation budget; ``norm`` its norm.
    steps, eval_steps : int or None
        Inner PGD/WPGD steps in training; PGD steps of the audit (the paper: 8 and 20).
    metric : str or None
        The label metric for WPGD and S (default: the dataset's shipped WordNet metric, else linear).
    out : str
        Run folder: checkpoints in ``runs/``, one report folder per experiment.
    device : {"auto", "cpu", "cuda"}
    seed : int
    data_dir : str or None
        Dataset folder (else ``$WPGDKIT_DATA_DIR``, ``./data`` and the system folders).
    download : bool
        Fetch a missing dataset through torchvision.
    """

    experiment: str
    scale: str = "quick"
    dataset: str | None = None
    model: str | None = None
    epochs: int | None = None
    limit: int | None = None
    test_limit: int | None = None
    eps: float | None = None
    norm: str | None = None
    steps: int | None = None
    eval_steps: int | None = None
    metric: str | None = None
    out: str = "wpgdkit-results"
    device: str = "auto"
    seed: int = 0
    data_dir: str | None = None
    download: bool = False


@dataclass
class ExperimentResult:
    """What an experiment leaves behind."""

    experiment: str
    folder: Path
    report: Path
    results: dict[str, Any]
    plots: list[Path] = field(default_factory=list)


ExperimentFn = Callable[["_Context"], ExperimentResult]
_EXPERIMENTS: Registry[tuple[str, ExperimentFn]] = Registry("experiment")


def _register(name: str, description: str) -> Callable[[ExperimentFn], ExperimentFn]:
    def wrap(fn: ExperimentFn) -> ExperimentFn:
        _EXPERIMENTS.register(name, (description, fn))
        return fn

    return wrap


def list_experiments() -> list[str]:
    """Registered experiment names, in the paper's order."""
    return _EXPERIMENTS.names()


def get_experiment(name: str) -> tuple[str, ExperimentFn]:
    """``(description, function)``; UnknownNameError listing the valid names otherwise."""
    return _EXPERIMENTS.get(name)


def resolve_settings(config: ReproduceConfig) -> dict[str, Any]:
    """The scale's preset, overridden by the toy problem's needs and then by the flags."""
    if config.scale not in SCALES:
        raise WpgdkitError(f"unknown scale {config.scale!r}; choose one of: {', '.join(SCALES)}")
    settings = dict(SCALES[config.scale])
    dataset = config.dataset or settings["dataset"]
    settings["dataset"] = dataset
    if dataset == "toy":
        settings.update(TOY)
        settings["imbalance_limit"] = None
    for key in ("model", "epochs", "limit", "test_limit", "eps", "norm", "steps", "eval_steps"):
        value = getattr(config, key)
        if value is not None:
            settings[key] = value
    if config.epochs is not None:
        settings["imbalance_epochs"] = config.epochs
    if config.limit is not None:
        settings["imbalance_limit"] = config.limit
    _check_settings(settings)
    return settings


def _check_settings(s: dict[str, Any]) -> None:
    from wpgdkit.datasets import get_dataset
    from wpgdkit.models import list_models

    get_dataset(s["dataset"])
    if s["model"] not in list_models():
        raise WpgdkitError(f"unknown model {s['model']!r}; choose one of: {', '.join(list_models())}")
    checks = [
        (s["epochs"] >= 1, f"--epochs must be at least 1, got {s['epochs']}"),
        (s["limit"] is None or s["limit"] >= 2, f"--limit must be at least 2, got {s['limit']}"),
        (s["test_limit"] is None or s["test_limit"] >= 1, f"--test-limit must be at least 1, got {s['test_limit']}"),
        (math.isfinite(s["eps"]) and s["eps"] > 0, f"--eps must be positive, got {s['eps']}"),
        (s["norm"] in ("linf", "l2"), f"unknown norm {s['norm']!r}; choose one of: linf, l2"),
        (s["steps"] >= 1, f"--steps must be at least 1, got {s['steps']}"),
        (s["eval_steps"] >= 1, f"--eval-steps must be at least 1, got {s['eval_steps']}"),
    ]
    for ok, message in checks:
        if not ok:
            raise WpgdkitError(message)


# --- the run context: training with reuse, auditing, commands -------------------------


class _Context:
    def __init__(self, config: ReproduceConfig, settings: dict[str, Any], progress: Any | None) -> None:
        self.config, self.s, self.progress = config, settings, progress
        self.out = Path(config.out)
        self.runs = self.out / "runs"
        self.folder = self.out / config.experiment
        self.commands: list[str] = []
        self.metric_file = self._metric_file()

    def _metric_file(self) -> str | None:
        if self.config.metric is not None:
            if not Path(self.config.metric).is_file():
                raise WpgdkitError(f"--metric {self.config.metric} not found")
            return self.config.metric
        from wpgdkit.labelmetric.shipped import read_manifest
        from wpgdkit.resources import metrics_dir

        shipped = {entry["file"] for entry in read_manifest()["metrics"]}
        dataset = self.s["dataset"]
        for file in (f"{dataset}-wordnet.csv", f"{dataset}-linear.csv", f"{dataset}-paper.csv"):
            if file in shipped:
                return _display_path(metrics_dir() / file)
        return None

    def shipped_metrics(self) -> dict[str, str]:
        """Every metric to correlate the gap with: the chosen one, plus the dataset's other shipped ones."""
        from wpgdkit.labelmetric.shipped import read_manifest
        from wpgdkit.resources import metrics_dir

        found = {Path(self.metric_file).name: self.metric_file} if self.metric_file else {}
        for entry in read_manifest()["metrics"]:
            if entry["provenance"].get("dataset") == self.s["dataset"] or entry["file"].startswith(self.s["dataset"] + "-"):
                found.setdefault(entry["file"], _display_path(metrics_dir() / entry["file"]))
        return found

    def checkpoint(self, method: str, *, p: float | None = None, classes: tuple[int, ...] | None = None,
                   imbalance: float | None = None, epochs: int | None = None, limit: Any = "default",
                   val_fraction: float = 0.0) -> str:
        """Train (or resume, or reuse) one model; returns its checkpoint path."""
        from wpgdkit.training import DataConfig, TrainConfig, load_checkpoint, train

        s = self.s
        epochs = epochs or s["epochs"]
        limit = s["limit"] if limit == "default" else limit
        if method == "wpgd" and self.metric_file is None:
            raise WpgdkitError(f"no label metric for {s['dataset']}: pass --metric")
        name = _run_name(s, method, p, classes, imbalance, epochs, limit)
        path = self.runs / f"{name}.pt"
        config = TrainConfig(
            data=DataConfig(s["dataset"], classes=tuple(str(c) for c in classes) if classes else None,
                            imbalance=imbalance, limit=limit, val_fraction=val_fraction, seed=self.config.seed,
                            data_dir=self.config.data_dir, download=self.config.download),
            model=s["model"], method=method, metric=self.metric_file if method == "wpgd" else None, p=p or 1.0,
            norm=s["norm"], eps=s["eps"], steps=s["steps"], eval_steps=0, epochs=epochs, batch_size=s["batch_size"],
            lr=s["lr"], out=str(path), resume=True, device=self.config.device, seed=self.config.seed,
        )
        self.commands.append(_train_command(config))
        done = path.exists() and int(load_checkpoint(path)["epoch"]) >= epochs
        if not done:
            self.runs.mkdir(parents=True, exist_ok=True)
            with _phase(self.progress, "training", path.stem, epochs) as reporter:
                train(config, progress=reporter)
        return str(path)

    def audit(self, checkpoints: list[str], *, baseline: str | None = None, reference: str | None = None,
              attack: str = "pgd", metric: str | None = "default"):
        from wpgdkit.audit import AuditConfig, audit

        metric = self.metric_file if metric == "default" else metric
        config = AuditConfig(checkpoints=tuple(checkpoints), baseline=baseline, reference=reference, metric=metric,
                             attack=attack, eps=self.s["eps"], norm=self.s["norm"], steps=self.s["eval_steps"],
                             limit=self.s["test_limit"], device=self.config.device, seed=self.config.seed,
                             data_dir=self.config.data_dir)
        self.commands.append(_audit_command(config))
        with _phase(self.progress, "auditing", ", ".join(Path(c).stem for c in checkpoints), attack) as reporter:
            return audit(config, progress=reporter)

    def write(self, result_name: str, results: dict[str, Any], report: str, plots: list[Path]) -> ExperimentResult:
        self.folder.mkdir(parents=True, exist_ok=True)
        payload = {"experiment": result_name, "tool_version": __version__, "scale": self.config.scale,
                   "settings": self.s, "results": results, "commands": self.commands}
        atomic_write_text(self.folder / "results.json", json.dumps(json_value(payload), indent=1) + "\n")
        text = report + "\n## Commands\n\nEach number above comes from these commands (run from the same folder):\n\n```sh\n"
        text += "\n".join(dict.fromkeys(self.commands)) + "\n```\n"
        text += f"\nThe whole experiment: `{_reproduce_command(self.config)}`\n"
        report_path = self.folder / "report.md"
        atomic_write_text(report_path, text)
        return ExperimentResult(result_name, self.folder, report_path, results, plots)


def _display_path(path: Path) -> str:
    """Relative to the working folder when inside it, so recorded commands run from a checkout anywhere."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


@contextmanager
def _phase(progress: Any | None, kind: str, name: str, detail: Any) -> Iterator[Any]:
    """The reporter of one training or audit, from ``progress.training``/``progress.auditing`` (context managers)."""
    if progress is None:
        yield None
        return
    with getattr(progress, kind)(name, detail) as reporter:
        yield reporter


def _run_name(s, method, p, classes, imbalance, epochs, limit) -> str:
    parts = [s["dataset"], s["model"], method]
    if p is not None:
        parts.append(f"p{p:g}")
    if classes:
        parts.append("c" + "-".join(str(c) for c in classes))
    if imbalance is not None:
        parts.append(f"imb{imbalance:g}")
    if method != "ce":
        parts.append(f"{s['norm']}{s['eps']:.4g}")
    parts.append(f"e{epochs}")
    if limit is not None:
        parts.append(f"n{limit}")
    return "-".join(parts).replace("/", "_")


def _train_command(c) -> str:
    words = ["wpgdkit", "train", "--dataset", c.data.dataset, "--model", c.model, "--method", c.method]
    if c.method == "wpgd":
        words += ["--metric", c.metric, "--p", f"{c.p:g}"]
    if c.method != "ce":
        words += ["--norm", c.norm, "--eps", f"{c.eps:.6g}", "--steps", str(c.steps)]
    if c.data.classes:
        words += ["--classes", ",".join(c.data.classes)]
    if c.data.imbalance is not None:
        words += ["--imbalance", f"{c.data.imbalance:g}"]
    if c.data.limit is not None:
        words += ["--limit", str(c.data.limit)]
    if c.data.data_dir is not None:
        words += ["--data-dir", c.data.data_dir]
    words += ["--val-fraction", f"{c.data.val_fraction:g}", "--eval-steps", "0", "--epochs", str(c.epochs),
              "--lr", f"{c.lr:g}", "--seed", str(c.seed), "--out", c.out]
    return shlex.join(words)


def _audit_command(c) -> str:
    words = ["wpgdkit", "audit", *c.checkpoints]
    if c.baseline:
        words += ["--baseline", c.baseline]
    if c.reference:
        words += ["--reference", c.reference]
    if c.metric:
        words += ["--metric", c.metric]
    words += ["--attack", c.attack, "--norm", c.norm, "--eps", f"{c.eps:.6g}", "--steps", str(c.steps)]
    if c.limit is not None:
        words += ["--limit", str(c.limit)]
    if c.data_dir is not None:
        words += ["--data-dir", c.data_dir]
    words += ["--seed", str(c.seed)]
    return shlex.join(words)


def _reproduce_command(c: ReproduceConfig) -> str:
    words = ["wpgdkit", "reproduce", c.experiment, "--scale", c.scale]
    for key in ("dataset", "model", "epochs", "limit", "test_limit", "eps", "norm", "steps", "eval_steps", "metric",
                "data_dir"):
        value = getattr(c, key)
        if value is not None:
            words += ["--" + key.replace("_", "-"), f"{value:.6g}" if isinstance(value, float) else str(value)]
    words += ["--out", c.out, "--seed", str(c.seed)]
    return shlex.join(words)


def _fmt(value: float | None, spec: str = ".2f") -> str:
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else format(value, spec)


def _md_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def _setting_line(s: dict[str, Any], scale: str) -> str:
    eps = f"{s['eps']:.4g}" + (f" ({s['eps'] * 255:.3g}/255)" if s["dataset"] != "toy" else "")
    return (f"Scale `{scale}`: {s['dataset']}, {s['model']}, {s['epochs']} epoch(s) on "
            f"{s['limit'] or 'all'} training points, {s['norm']} ε = {eps}, {s['steps']} inner steps; audit: PGD-"
            f"{s['eval_steps']} on {s['test_limit'] or 'all'} test points. wpgdkit {__version__}.\n")


# --- plots ------------------------------------------------------------------------------


def _figure(path: Path, draw: Callable[[Any], None], *, size: tuple[float, float]) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=size)
    try:
        draw(fig)
        fig.tight_layout()
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=110, format="png")
    finally:
        plt.close(fig)
    return path


def _heatmap(ax, matrix: np.ndarray, classes: tuple[str, ...], title: str, cmap: str) -> None:
    k = len(classes)
    image = ax.imshow(matrix, cmap=cmap, interpolation="nearest")
    if k <= 40:
        ax.set_xticks(range(k), labels=classes, rotation=90, fontsize=7)
        ax.set_yticks(range(k), labels=classes, fontsize=7)
    ax.set_title(title, fontsize=9)
    ax.figure.colorbar(image, ax=ax, fraction=0.046, pad=0.04)


# --- experiments ------------------------------------------------------------------------


@_register("gap-correlation", "CE vs PGD: accuracy gap beside the metric, ρ(G, C) (Table 1, Figs. 1–4)")
def _gap_correlation(ctx: _Context) -> ExperimentResult:
    from wpgdkit.audit import gap_correlation
    from wpgdkit.labelmetric import read_metric

    ce, pgd = ctx.checkpoint("ce"), ctx.checkpoint("pgd")
    report = ctx.audit([ce, pgd], baseline=ce, reference=pgd)
    gap = report.models[1].gap
    correlations = {}
    for name, file in ctx.shipped_metrics().items():
        metric = read_metric(file)
        if metric.classes != report.classes or len(report.classes) < 3:
            continue
        correlations[name] = gap_correlation(gap, torch.tensor(metric.matrix)).to_dict()
    rows = [[m.name, _fmt(m.natural_error), _fmt(m.adversarial_error)] for m in report.models]
    text = f"# Accuracy gap and the label metric ({ctx.s['dataset']})\n\n" + _setting_line(ctx.s, ctx.config.scale)
    text += "\nThe paper's Table 1 and Figs. 1–4: G = |C_PGD − C_CE| between the row-normalised natural confusion "
    text += "matrices, correlated with the metric over the off-diagonal pairs. Negative ρ: PGD's lost accuracy sits on close classes.\n\n"
    text += _md_table(["model", "NE %", "AE %"], rows)
    text += "\n" + _md_table(["metric", "ρ Pearson", "p-value", "ρ Spearman", "pairs"],
                             [[n, _fmt(c["pearson"], "+.3f"), _fmt(c["pearson_pvalue"], ".2g"),
                               _fmt(c["spearman"], "+.3f"), str(c["pairs"])] for n, c in correlations.items()])
    k = len(report.classes)
    if k >= 3:
        off = gap.numpy()[~np.eye(k, dtype=bool)]
        text += (f"\nThe gap's largest off-diagonal entry is {off.max():.3f}; the mean off-diagonal gap is "
                 f"{off.mean():.4f}, and the diagonal (per-class accuracy change) averages "
                 f"{float(np.diag(gap.numpy()).mean()):.3f}.\n")
        text += _reading_gap(correlations)
    plots = []
    if report.metric is not None:
        plot = ctx.folder / "gap-vs-metric.png"
        ctx.folder.mkdir(parents=True, exist_ok=True)
        plots.append(_figure(plot, lambda fig: _gap_panels(fig, gap.numpy(), report.metric.matrix, report.classes),
                             size=(12, 5.5)))
        text += "\n![accuracy gap beside the metric](gap-vs-metric.png)\n"
    results = {"models": [_summary(m) for m in report.models], "correlation": correlations,
               "gap": gap.tolist(), "classes": list(report.classes)}
    return ctx.write("gap-correlation", results, text, plots)


def _reading_gap(correlations: dict[str, dict]) -> str:
    lines = []
    for name, c in correlations.items():
        rho, pval = c["pearson"], c["pearson_pvalue"]
        if rho is None or (isinstance(rho, float) and math.isnan(rho)):
            lines.append(f"- {name}: ρ is undefined (a constant gap or metric).")
            continue
        sign = "negative, as the paper reports" if rho < 0 else "positive, unlike the paper's Table 1"
        strength = "significant at 5 %" if pval < 0.05 else "not significant at 5 %"
        lines.append(f"- {name}: Pearson ρ = {rho:+.3f} is {sign} ({strength}, p = {pval:.2g}).")
    return "\n**Reading.**\n\n" + "\n".join(lines) + "\n" if lines else ""


def _gap_panels(fig, gap: np.ndarray, metric: np.ndarray, classes: tuple[str, ...]) -> None:
    a, b = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    _heatmap(a, gap, classes, "accuracy gap G = |C_PGD − C_CE|", "magma")
    _heatmap(b, metric, classes, "label metric C", "viridis")


@_register("p-sweep", "PGD and WPGD for p ∈ {1, 2.5, 10}: NE, AE, S − S_PGD (Table 3, Fig. 10)")
def _p_sweep(ctx: _Context) -> ExperimentResult:
    pgd = ctx.checkpoint("pgd")
    wpgd = [ctx.checkpoint("wpgd", p=p) for p in P_VALUES]
    by_pgd = ctx.audit([pgd, *wpgd], reference=pgd)
    by_wpgd = ctx.audit([pgd, *wpgd], reference=pgd, attack="wpgd")
    ps = [0.0, *P_VALUES]  # the paper's Table 3 lists PGD as p = 0
    rows, results = [], []
    for p, a, b in zip(ps, by_pgd.models, by_wpgd.models):
        rows.append([a.name, _fmt(p, "g"), _fmt(a.natural_error), _fmt(a.adversarial_error),
                     _fmt(b.adversarial_error), _fmt(b.score, ".4f"), _fmt(b.score_delta, "+.4f"),
                     _fmt(a.score_delta, "+.4f"), _fmt(b.severity_adversarial, ".3f")])
        results.append({"p": p, "name": a.name, "natural_error": a.natural_error,
                        "adversarial_error": a.adversarial_error, "adversarial_error_wpgd_attack": b.adversarial_error,
                        "score": b.score, "score_delta": b.score_delta, "score_delta_pgd_attack": a.score_delta,
                        "severity_wpgd_attack": b.severity_adversarial})
    text = f"# Accuracy and robustness against p ({ctx.s['dataset']})\n\n" + _setting_line(ctx.s, ctx.config.scale)
    text += (f"\nMetric: `{Path(ctx.metric_file).name}`. AE under PGD-{ctx.s['eval_steps']}; S (eq. 7, class-balanced, "
             "see the README) under WPGD with p = 1, the attacker knowing the metric as in the paper's Table 3, "
             "and under PGD for comparison. PGD is p = 0.\n\n")
    text += _md_table(["model", "p", "NE %", "AE % (PGD)", "AE % (WPGD)", "S", "S − S_PGD", "S − S_PGD (PGD attack)",
                       "severity (WPGD)"], rows)
    text += ("\nS counts every adversarial prediction, correct ones at cost 0, so it mixes how often the adversary "
             "succeeds with how far it goes; the severity column is the mean cost of the adversarial mistakes alone.\n")
    text += _reading_sweep(results)
    plot = ctx.folder / "tradeoff.png"
    ctx.folder.mkdir(parents=True, exist_ok=True)
    _figure(plot, lambda fig: _tradeoff(fig, results), size=(10, 4))
    text += "\n![accuracy/robustness trade-off against p](tradeoff.png)\n"
    return ctx.write("p-sweep", {"rows": results}, text, [plot])


def _reading_sweep(rows: list[dict]) -> str:
    wpgd = [r for r in rows if r["p"] > 0]
    deltas = [r["score_delta"] for r in wpgd]
    ne = [r["natural_error"] for r in wpgd]
    p_list = ", ".join(f"{r['p']:g}" for r in wpgd)
    lines = []
    if all(d is not None for d in deltas):
        falling = all(b < a for a, b in zip(deltas, deltas[1:]))
        lines.append(f"- S − S_PGD for p = {p_list}: "
                     f"{', '.join(f'{d:+.4f}' for d in deltas)}; "
                     + ("it falls as p rises, as in the paper's Table 3." if falling else
                        "it does not fall monotonically as p rises, unlike the paper's Table 3."))
    ne_falls = all(b <= a for a, b in zip(ne, ne[1:]))
    lines.append(f"- NE for the same p: {', '.join(f'{v:.2f} %' for v in ne)} (PGD {rows[0]['natural_error']:.2f} %); "
                 + ("natural error does not rise with p, consistent with Fig. 10." if ne_falls else
                    "natural error does not fall with p here, unlike Fig. 10."))
    ae_list = ", ".join(f"{r['adversarial_error']:.2f} %" for r in rows)
    lines.append(f"- AE under PGD: {ae_list} (PGD, then p = {p_list}).")
    severity = [r["severity_wpgd_attack"] for r in rows]
    if all(v is not None for v in severity):
        sev_list = ", ".join(f"{v:.3f}" for v in severity)
        lines.append(f"- Mean cost of the adversary's mistakes (WPGD attack): {sev_list} (PGD, then p = {p_list}).")
    return "\n**Reading.**\n\n" + "\n".join(lines) + "\n"


def _tradeoff(fig, rows: list[dict]) -> None:
    ps = [r["p"] for r in rows]
    a, b = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    a.plot(ps, [r["natural_error"] for r in rows], "o-", label="NE (clean)")
    a.plot(ps, [r["adversarial_error"] for r in rows], "s-", label="AE (PGD)")
    a.plot(ps, [r["adversarial_error_wpgd_attack"] for r in rows], "^--", label="AE (WPGD attack)")
    a.set_xlabel("p (0 = PGD)")
    a.set_ylabel("error [%]")
    a.set_xscale("symlog", linthresh=1.0)
    a.legend(fontsize=8)
    a.set_title("accuracy & robustness vs p", fontsize=9)
    deltas = [r["score_delta"] if r["score_delta"] is not None else float("nan") for r in rows]
    b.plot(ps, deltas, "o-", color="tab:red")
    b.axhline(0.0, color="grey", lw=0.8)
    b.set_xscale("symlog", linthresh=1.0)
    b.set_xlabel("p (0 = PGD)")
    b.set_ylabel("S − S_PGD")
    b.set_title("weighted robustness score (lower: closer classes)", fontsize=9)


@_register("imbalance", "similar vs dissimilar pair, balanced vs ratio 0.3, CE vs PGD (Sec. 3.2, Fig. 5)")
def _imbalance(ctx: _Context) -> ExperimentResult:
    from wpgdkit.datasets import get_dataset
    from wpgdkit.training import load_checkpoint

    spec = get_dataset(ctx.s["dataset"])
    similar, dissimilar = _pairs(ctx)
    curves, rows = {}, []
    for label, pair in (("similar", similar), ("dissimilar", dissimilar)):
        for imbalance in (None, IMBALANCE_RATIO):
            for method in ("ce", "pgd"):
                path = ctx.checkpoint(method, classes=pair, imbalance=imbalance, epochs=ctx.s["imbalance_epochs"],
                                      limit=ctx.s["imbalance_limit"], val_fraction=0.2)
                history = load_checkpoint(path)["history"]
                val_error = [100 * (1 - h["val_accuracy"]) for h in history if "val_accuracy" in h]
                audited = ctx.audit([path], metric=None)
                key = f"{label}/{'balanced' if imbalance is None else f'ratio {imbalance:g}'}/{method}"
                curves[key] = val_error
                m = audited.models[0]
                rows.append({"pair": label, "classes": [spec.classes[c] for c in pair], "imbalance": imbalance,
                             "method": method, "val_error_per_epoch": val_error, "natural_error": m.natural_error,
                             "adversarial_error": m.adversarial_error,
                             "per_class_natural_error": _per_class_error(m)})
    text = f"# Class imbalance and similar classes ({ctx.s['dataset']})\n\n" + _setting_line(
        {**ctx.s, "epochs": ctx.s["imbalance_epochs"], "limit": ctx.s["imbalance_limit"]}, ctx.config.scale)
    text += (f"\nThe paper's Sec. 3.2 and Fig. 5: two 2-class problems, a similar pair "
             f"({' vs '.join(spec.classes[c] for c in similar)}) and a dissimilar one "
             f"({' vs '.join(spec.classes[c] for c in dissimilar)}), balanced and with the second class down-sampled to "
             f"{IMBALANCE_RATIO:g} of its size; CE vs PGD. Validation error on a 20 % held-out split per epoch; "
             "NE/AE and per-class NE on the test points of the pair.\n\n")
    text += _md_table(["pair", "data", "method", "final val error %", "test NE %", "per-class NE %", "test AE %"], [
        [r["pair"] + " (" + " vs ".join(r["classes"]) + ")", "balanced" if r["imbalance"] is None else f"ratio {r['imbalance']:g}",
         r["method"], _fmt(r["val_error_per_epoch"][-1] if r["val_error_per_epoch"] else None),
         _fmt(r["natural_error"]), " / ".join(_fmt(v, ".1f") for v in r["per_class_natural_error"]),
         _fmt(r["adversarial_error"])] for r in rows])
    text += _reading_imbalance(rows)
    plot = ctx.folder / "validation-curves.png"
    ctx.folder.mkdir(parents=True, exist_ok=True)
    _figure(plot, lambda fig: _curves(fig, curves), size=(10, 7))
    text += "\n![validation error per epoch](validation-curves.png)\n"
    return ctx.write("imbalance", {"rows": rows, "pairs": {"similar": list(similar), "dissimilar": list(dissimilar)}},
                     text, [plot])


def _per_class_error(m) -> list[float]:
    counts = m.confusion_natural.double()
    n = counts.sum(1).clamp_min(1)
    return (100 * (1 - counts.diag() / n)).tolist()


def _pairs(ctx: _Context) -> tuple[tuple[int, int], tuple[int, int]]:
    if ctx.s["dataset"] in PAIRS:
        return PAIRS[ctx.s["dataset"]]
    if ctx.metric_file is None:
        raise WpgdkitError(f"no class pairs known for {ctx.s['dataset']}: pass --metric to pick the closest and farthest")
    from wpgdkit.labelmetric import read_metric

    c = read_metric(ctx.metric_file).matrix.copy()
    k = c.shape[0]
    np.fill_diagonal(c, np.inf)
    near = np.unravel_index(np.argmin(c), c.shape)
    np.fill_diagonal(c, -np.inf)
    far = np.unravel_index(np.argmax(c), c.shape)
    assert k >= 2
    return tuple(sorted(int(i) for i in near)), tuple(sorted(int(i) for i in far))  # type: ignore[return-value]


def _reading_imbalance(rows: list[dict]) -> str:
    def final(pair, imbalance, method):
        r = next(r for r in rows if r["pair"] == pair and r["imbalance"] == imbalance and r["method"] == method)
        return r["natural_error"]

    lines = []
    for pair in ("similar", "dissimilar"):
        for imbalance in (None, IMBALANCE_RATIO):
            cost = final(pair, imbalance, "pgd") - final(pair, imbalance, "ce")
            lines.append(f"- {pair} pair, {'balanced' if imbalance is None else f'ratio {imbalance:g}'}: PGD's test NE "
                         f"is {cost:+.2f} points from CE's.")
    sim = final("similar", None, "pgd") - final("similar", None, "ce")
    dis = final("dissimilar", None, "pgd") - final("dissimilar", None, "ce")
    lines.append("- " + ("PGD costs more clean accuracy on the similar pair than on the dissimilar one, as in Fig. 5."
                         if sim > dis else
                         "PGD does not cost more clean accuracy on the similar pair than on the dissimilar one here, "
                         "unlike Fig. 5."))
    sim_imb = final("similar", IMBALANCE_RATIO, "pgd") - final("similar", IMBALANCE_RATIO, "ce")
    lines.append("- " + ("Imbalance widens PGD's cost on the similar pair, as the paper reports."
                         if sim_imb > sim else "Imbalance does not widen PGD's cost on the similar pair here."))
    return "\n**Reading.**\n\n" + "\n".join(lines) + "\n"


def _curves(fig, curves: dict[str, list[float]]) -> None:
    panels = {}
    for key, values in curves.items():
        pair, data, method = key.split("/")
        panels.setdefault((pair, data), []).append((method, values))
    for i, ((pair, data), series) in enumerate(sorted(panels.items())):
        ax = fig.add_subplot(2, 2, i + 1)
        for method, values in series:
            ax.plot(range(1, len(values) + 1), values, "o-", label=method.upper())
        ax.set_title(f"{pair} pair, {data}", fontsize=9)
        ax.set_xlabel("epoch")
        ax.set_ylabel("validation error [%]")
        ax.legend(fontsize=8)


@_register("entropy", "entropy histograms of CE vs PGD predictions (Fig. 7)")
def _entropy(ctx: _Context) -> ExperimentResult:
    ce, pgd = ctx.checkpoint("ce"), ctx.checkpoint("pgd")
    report = ctx.audit([ce, pgd])
    k = report.num_classes
    rows, results = [], {}
    for m in report.models:
        nat, adv = m.predictions.natural_entropy, m.predictions.adversarial_entropy
        rows.append([m.name, _fmt(float(nat.mean()), ".3f"), _fmt(float(nat.median()), ".3f"),
                     _fmt(float((nat < 0.1 * math.log(k)).double().mean()) * 100, ".1f"),
                     _fmt(float(adv.mean()), ".3f")])
        results[m.name] = {"natural_mean": float(nat.mean()), "natural_median": float(nat.median()),
                           "adversarial_mean": float(adv.mean()), "confident_share": float((nat < 0.1 * math.log(k)).double().mean()),
                           "histogram": np.histogram(nat.numpy(), bins=20, range=(0, math.log(k)))[0].tolist()}
    text = f"# Confidence of CE and PGD models ({ctx.s['dataset']})\n\n" + _setting_line(ctx.s, ctx.config.scale)
    text += (f"\nThe paper's Fig. 7: the entropy H(softmax(f(x))) of each test prediction, in nats (max log K = "
             f"{math.log(k):.3f}). Robust models are expected to be less confident: higher entropy.\n\n")
    text += _md_table(["model", "mean H (clean)", "median H (clean)", "% with H < 0.1 log K", "mean H (adversarial)"], rows)
    ce_mean, pgd_mean = results[report.models[0].name]["natural_mean"], results[report.models[1].name]["natural_mean"]
    text += ("\n**Reading.** " + (f"PGD's predictions have higher mean entropy ({pgd_mean:.3f} vs {ce_mean:.3f} nats): "
                                  "the robust model is less confident, as in Fig. 7.\n" if pgd_mean > ce_mean else
                                  f"PGD's predictions do not have higher mean entropy ({pgd_mean:.3f} vs {ce_mean:.3f} "
                                  "nats), unlike Fig. 7.\n"))
    plot = ctx.folder / "entropy.png"
    ctx.folder.mkdir(parents=True, exist_ok=True)
    _figure(plot, lambda fig: _entropy_hist(fig, report), size=(7, 4))
    text += "\n![entropy histograms](entropy.png)\n"
    return ctx.write("entropy", results, text, [plot])


def _entropy_hist(fig, report) -> None:
    ax = fig.add_subplot(1, 1, 1)
    top = math.log(report.num_classes)
    for m, color in zip(report.models, ("tab:blue", "tab:orange")):
        ax.hist(m.predictions.natural_entropy.numpy(), bins=20, range=(0, top), alpha=0.55, color=color,
                label=f"{m.method.upper()} ({m.name})")
    ax.set_xlabel("entropy of the prediction [nats]")
    ax.set_ylabel("test points")
    ax.set_yscale("log")
    ax.legend(fontsize=8)
    ax.set_title("prediction entropy on clean test points", fontsize=9)


def _summary(m) -> dict[str, Any]:
    return {"name": m.name, "method": m.method, "natural_error": m.natural_error,
            "adversarial_error": m.adversarial_error, "score": m.score}


# --- entry point ------------------------------------------------------------------------


def run_experiment(config: ReproduceConfig, *, progress: Any | None = None) -> ExperimentResult:
    """Run one experiment: train what is missing, audit, write the report.

    Parameters
    ----------
    config : ReproduceConfig
    progress : keyword-only, optional
        Has ``training(name, epochs)`` and ``auditing(names, attack)``, each a
        context manager yielding the progress reporter handed to
        :func:`wpgdkit.training.train` or :func:`wpgdkit.audit.audit` (or None).

    Returns
    -------
    result : ExperimentResult

    Raises
    ------
    WpgdkitError
        For unknown names, bad settings, missing data, or an existing run
        folder holding checkpoints trained with other settings.
    """
    _, fn = get_experiment(config.experiment)
    settings = resolve_settings(config)
    out = Path(config.out)
    if out.exists() and not out.is_dir():
        raise WpgdkitError(f"--out {out} exists and is not a folder")
    context = _Context(config, settings, progress)
    _check_data(config, settings)
    return fn(context)


def _check_data(config: ReproduceConfig, settings: dict[str, Any]) -> None:
    """Fail on missing data before the first model trains, not after it (minutes to hours)."""
    from wpgdkit.datasets import load_split

    # The test split is what every audit reads; training reads the train split
    # from the same folder, so a missing dataset shows here.
    load_split(settings["dataset"], "test", data_dir=config.data_dir, download=config.download, seed=config.seed)


def experiment_descriptions() -> dict[str, str]:
    """``{name: description}`` for ``--help``."""
    return {name: get_experiment(name)[0] for name in list_experiments()}

