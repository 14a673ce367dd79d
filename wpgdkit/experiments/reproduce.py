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

Every experiment trains the checkpoints it needs into ``<out>/runs/`` through
:mod:`wpgdkit.experiments.runner` (named by their settings and fingerprint,
shared between experiments, resumed when interrupted, reused when complete and
of the very same settings), audits them with :func:`wpgdkit.audit.audit`, and
writes ``<out>/<experiment>/report.md`` with its tables, plots, results JSON
and the exact commands that reproduce each number. The report's words are in
:mod:`wpgdkit.experiments.prose`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from wpgdkit import __version__
from wpgdkit.atomic import atomic_write_text
from wpgdkit.errors import WpgdkitError
from wpgdkit.inputs import Range, check_number, check_seed, input_file
from wpgdkit.experiments import prose, runner
from wpgdkit.experiments.runner import fmt
from wpgdkit.jsonutil import json_value
from wpgdkit.registry import Registry

__all__ = [
    "SCALES",
    "AUDIT_ATTACKS",
    "model_measures",
    "attack_measures",
    "ReproduceConfig",
    "ExperimentResult",
    "list_experiments",
    "get_experiment",
    "resolve_settings",
    "custom_settings",
    "experiment_command",
    "run_experiment",
]


# --- scales -----------------------------------------------------------------------------

# quick: a CPU in minutes (Fashion-MNIST, or the toy problem); cpu: adequately trained models on a CPU
# (the MLP on all 60,000 Fashion-MNIST images for 10 epochs, audited on the full 10,000-image test
# set); paper: the paper's Sec. 5 on a GPU.
SCALES: dict[str, dict[str, Any]] = {
    "quick": dict(dataset="fashion-mnist", model="small-cnn", epochs=2, limit=6000, test_limit=1000, eps=0.1,
                  norm="linf", steps=5, eval_steps=20, lr=0.05, batch_size=128, imbalance_epochs=4,
                  imbalance_limit=3000),
    "cpu": dict(dataset="fashion-mnist", model="mlp", epochs=10, limit=None, test_limit=None, eps=0.1,
                norm="linf", steps=5, eval_steps=20, lr=0.05, batch_size=128, imbalance_epochs=10,
                imbalance_limit=None),
    "paper": dict(dataset="cifar10", model="wrn-16-10", epochs=200, limit=None, test_limit=None, eps=4 / 255,
                  norm="linf", steps=8, eval_steps=20, lr=0.1, batch_size=128, imbalance_epochs=200,
                  imbalance_limit=None),
}
# Settings that fit the toy problem whatever the scale: 2-D points, an ℓ2 budget, an MLP.
TOY = dict(model="mlp", eps=0.4, norm="l2", lr=0.05, limit=None, test_limit=None)
P_VALUES = (1.0, 2.5, 10.0)
#: The adversaries every model of ``gap-correlation`` and ``p-sweep`` is audited with, at the scale's budget and
#: ``eval_steps``: PGD-20 (the paper's), the metric-aware WPGD attack (Table 3's, p = 1), APGD-CE (Croce & Hein
#: 2020; at least as strong as PGD) and worst-cost (targeted attacks towards the costliest classes first: the
#: audit's estimate of the worst-case S).
AUDIT_ATTACKS = ("pgd", "wpgd", "apgd-ce", "worst-cost")
METRIC_ATTACKS = frozenset({"wpgd", "worst-cost"})
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
    scale : {"quick", "cpu", "paper"}
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
    """What an experiment leaves behind.

    Attributes
    ----------
    experiment : str
    folder, report : Path
        ``<out>/<experiment>/`` and its ``report.md``.
    results : dict
        The experiment's numbers (``results.json``'s ``results``).
    plots : list of Path
    summary_markdown : str
        The report without its commands section: what a terminal shows.
    document : dict
        ``results.json`` as written (plain JSON values): the experiment, the
        settings and what overrode the scale, the numbers, each run's status
        (trained, resumed, reused), the commands.
    """

    experiment: str
    folder: Path
    report: Path
    results: dict[str, Any]
    plots: list[Path] = field(default_factory=list)
    summary_markdown: str = ""
    document: dict[str, Any] = field(default_factory=dict)


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


_COUNT = Range(1, 2**31 - 1, integer=True)
#: The valid range of every number ``reproduce`` takes, written once (a seed: :func:`~wpgdkit.inputs.check_seed`).
SETTING_RANGES: dict[str, Range] = {
    "epochs": Range(1, 100_000, integer=True),
    "limit": Range(2, 2**31 - 1, integer=True),  # a class split needs two points
    "test_limit": _COUNT,
    "eps": Range(0, None, low_open=True),
    "steps": _COUNT,
    "eval_steps": _COUNT,
}


def _check_settings(s: dict[str, Any]) -> None:
    from wpgdkit.datasets import get_dataset
    from wpgdkit.models import list_models

    get_dataset(s["dataset"])
    if s["model"] not in list_models():
        raise WpgdkitError(f"unknown model {s['model']!r}; choose one of: {', '.join(list_models())}")
    for key, valid in SETTING_RANGES.items():
        if s[key] is not None or key not in ("limit", "test_limit"):
            check_number("--" + key.replace("_", "-"), s[key], valid)
    if s["norm"] not in ("linf", "l2"):
        raise WpgdkitError(f"unknown norm {s['norm']!r}; choose one of: linf, l2")


def custom_settings(config: ReproduceConfig) -> dict[str, Any]:
    """The flags whose values differ from the scale's preset, in flag order (``{}``: the preset as it is)."""
    preset = SCALES.get(config.scale, {})
    custom: dict[str, Any] = {}
    for key in ("dataset", "model", "epochs", "limit", "test_limit", "eps", "norm", "steps", "eval_steps"):
        value = getattr(config, key)
        if value is not None and value != preset.get(key):
            custom[key] = value
    if config.metric is not None:
        custom["metric"] = Path(config.metric).name
    return custom


def experiment_command(c: ReproduceConfig) -> str:
    """The ``wpgdkit reproduce`` command of ``c``: every flag given, each rendered from its value."""
    flags = [("--scale", c.scale), *((("--" + key.replace("_", "-")), getattr(c, key)) for key in (
        "dataset", "model", "epochs", "limit", "test_limit", "eps", "norm", "steps", "eval_steps", "metric",
        "data_dir")), ("--download", c.download), ("--out", c.out), ("--device", c.device), ("--seed", c.seed)]
    return runner.command_line(["wpgdkit", "reproduce", c.experiment], flags)


# --- the run context: training with reuse, auditing, commands -------------------------


class _Context:
    def __init__(self, config: ReproduceConfig, settings: dict[str, Any], progress: Any | None) -> None:
        self.config, self.s, self.progress = config, settings, progress
        self.out = Path(config.out)
        self.runs = self.out / runner.RUNS_FOLDER
        self.folder = self.out / config.experiment
        self.commands: list[str] = []
        self.status: dict[str, str] = {}
        self.metric_file = self._metric_file()

    def _metric_file(self) -> str | None:
        if self.config.metric is not None:
            from wpgdkit.datasets import get_dataset
            from wpgdkit.labelmetric import read_metric, validate_metric
            from wpgdkit.labelmetric.align import align_metric

            input_file(self.config.metric, what="--metric file")  # missing: not found; a folder: says so
            # Read and matched to the dataset now, not after the first models have trained.
            metric = read_metric(self.config.metric)
            validate_metric(metric, allow_asymmetric=True)
            classes = get_dataset(self.s["dataset"]).classes
            align_metric(metric, classes, classes, origin=f"--metric {self.config.metric}")
            return self.config.metric
        from wpgdkit.labelmetric.align import shipped_metric_file

        shipped = shipped_metric_file(self.s["dataset"])
        return runner.display_path(shipped) if shipped is not None else None

    def shipped_metrics(self) -> dict[str, str]:
        """Every metric to correlate the gap with: the chosen one, plus the dataset's other shipped ones."""
        from wpgdkit.labelmetric.shipped import read_manifest
        from wpgdkit.resources import metrics_dir

        found = {Path(self.metric_file).name: self.metric_file} if self.metric_file else {}
        for entry in read_manifest()["metrics"]:
            if entry["provenance"].get("dataset") == self.s["dataset"] or entry["file"].startswith(self.s["dataset"] + "-"):
                found.setdefault(entry["file"], runner.display_path(metrics_dir() / entry["file"]))
        return found

    def setting(self, **changes: Any) -> str:
        return prose.setting_line({**self.s, **changes}, self.config.scale, custom_settings(self.config),
                                  self.config.seed)

    def run(self, method: str, *, p: float | None = None, classes: tuple[int, ...] | None = None,
            imbalance: float | None = None, epochs: int | None = None, limit: Any = "default",
            val_fraction: float = 0.0):
        """The :class:`~wpgdkit.training.TrainConfig` of one model, placed in ``runs/`` by its settings."""
        from wpgdkit.training import DataConfig, TrainConfig

        s = self.s
        if method == "wpgd" and self.metric_file is None:
            raise WpgdkitError(f"no label metric for {s['dataset']}: pass --metric")
        config = TrainConfig(
            data=DataConfig(s["dataset"], classes=tuple(str(c) for c in classes) if classes else None,
                            imbalance=imbalance, limit=s["limit"] if limit == "default" else limit,
                            val_fraction=val_fraction, seed=self.config.seed, data_dir=self.config.data_dir,
                            download=self.config.download),
            model=s["model"], method=method, metric=self.metric_file if method == "wpgd" else None, p=p or 1.0,
            norm=s["norm"], eps=s["eps"], steps=s["steps"], eval_steps=0, epochs=epochs or s["epochs"],
            batch_size=s["batch_size"], lr=s["lr"], device=self.config.device, seed=self.config.seed,
        )
        return runner.place_run(config, self.runs)

    def train(self, configs: list[Any], *, audits: int) -> list[str]:
        """Train (or resume, or reuse) every run; returns their checkpoint paths.

        Tells ``progress.plan(trainings=, audits=)`` first (when it has one) how
        many runs will train or resume and how many audits follow, and
        ``progress.reused(name)`` (when it has one) about each run reused as it is.
        """
        statuses = [runner.run_status(c) for c in configs]
        if self.progress is not None and hasattr(self.progress, "plan"):
            self.progress.plan(trainings=sum(1 for s in statuses if s != "reused"), audits=audits)
        paths = []
        for config, status in zip(configs, statuses):
            path = Path(config.out)
            self.commands.append(runner.train_command(config))
            if status == "reused":
                self.status[path.name] = "reused"
                if self.progress is not None and hasattr(self.progress, "reused"):
                    self.progress.reused(path.stem)
            else:
                with _phase(self.progress, "training", path.stem, config.epochs) as reporter:
                    _, self.status[path.name] = runner.train_or_reuse(config, reporter)
            paths.append(str(path))
        return paths

    def audit(self, checkpoints: list[str], *, baseline: str | None = None, reference: str | None = None,
              attack: str = "pgd", metric: str | None = "default"):
        from wpgdkit.audit import AuditConfig, audit

        metric = self.metric_file if metric == "default" else metric
        config = AuditConfig(checkpoints=tuple(checkpoints), baseline=baseline, reference=reference, metric=metric,
                             attack=attack, eps=self.s["eps"], norm=self.s["norm"], steps=self.s["eval_steps"],
                             limit=self.s["test_limit"], device=self.config.device, seed=self.config.seed,
                             data_dir=self.config.data_dir)
        self.commands.append(runner.audit_command(config))
        with _phase(self.progress, "auditing", ", ".join(Path(c).stem for c in checkpoints), attack) as reporter:
            return audit(config, progress=reporter)

    def audit_attacks(self) -> tuple[str, ...]:
        """The adversaries every model is audited with (:data:`AUDIT_ATTACKS`; the metric-aware ones need a metric)."""
        return tuple(a for a in AUDIT_ATTACKS if self.metric_file is not None or a not in METRIC_ATTACKS)

    def audit_all(self, checkpoints: list[str], *, baseline: str | None = None,
                  reference: str | None = None) -> dict[str, Any]:
        """``{attack: AuditReport}`` for every attack of :meth:`audit_attacks`, same points, budget and seed."""
        return {attack: self.audit(checkpoints, baseline=baseline, reference=reference, attack=attack)
                for attack in self.audit_attacks()}

    def plot(self, name: str, draw: Callable[[Any], None], *, size: tuple[float, float]) -> Path:
        self.folder.mkdir(parents=True, exist_ok=True)
        return runner.save_plot(self.folder / name, draw, size=size)

    def write(self, result_name: str, results: dict[str, Any], report: str, plots: list[Path]) -> ExperimentResult:
        self.folder.mkdir(parents=True, exist_ok=True)
        commands = list(dict.fromkeys(self.commands))
        document = {"experiment": result_name, "tool_version": __version__, "scale": self.config.scale,
                    "custom": custom_settings(self.config), "seed": self.config.seed, "settings": self.s,
                    "results": results, "runs": self.status, "commands": commands,
                    "command": experiment_command(self.config)}
        runner.write_results_json(document, self.folder / "results.json")
        report_path = self.folder / "report.md"
        atomic_write_text(report_path, report + prose.commands_section(commands, experiment_command(self.config)))
        return ExperimentResult(result_name, self.folder, report_path, results, plots, summary_markdown=report,
                                document=json_value(document))


@contextmanager
def _phase(progress: Any | None, kind: str, name: str, detail: Any) -> Iterator[Any]:
    """The reporter of one training or audit, from ``progress.training``/``progress.auditing`` (context managers)."""
    if progress is None:
        yield None
        return
    with getattr(progress, kind)(name, detail) as reporter:
        yield reporter


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
    import torch

    from wpgdkit.audit import gap_correlation
    from wpgdkit.labelmetric import read_metric
    from wpgdkit.labelmetric.compare import mantel_test

    ce, pgd = ctx.train([ctx.run("ce"), ctx.run("pgd")], audits=len(ctx.audit_attacks()))
    by_attack = ctx.audit_all([ce, pgd], baseline=ce, reference=pgd)
    report = by_attack["pgd"]
    gap = report.models[1].gap
    correlations = {}
    for name, file in ctx.shipped_metrics().items():
        metric = read_metric(file)
        if metric.classes != report.classes or len(report.classes) < 3:
            continue
        correlations[name] = gap_correlation(gap, torch.tensor(metric.matrix)).to_dict()
        # The entries of a K×K matrix are not independent: the Mantel permutation test's p-value is the one to read.
        correlations[name]["mantel_pvalue"] = mantel_test(gap.numpy(), metric.matrix, seed=ctx.config.seed)
    plots = []
    if report.metric is not None:
        plots.append(ctx.plot("gap-vs-metric.png",
                              lambda fig: _gap_panels(fig, gap.numpy(), report.metric.matrix, report.classes),
                              size=(12, 5.5)))
    models = [{**_summary(m), **model_measures(m),
               "attacks": {name: attack_measures(r.models[i], r.models[1]) for name, r in by_attack.items()}}
              for i, m in enumerate(report.models)]
    text = prose.gap_report(ctx.s["dataset"], ctx.setting(), models, correlations, gap.numpy(),
                            plots[0].name if plots else None, cost_threshold=report.cost_threshold)
    results = {"models": models, "correlation": correlations, "gap": gap.tolist(), "classes": list(report.classes),
               "attacks": list(by_attack), "cost_threshold": report.cost_threshold,
               "test_points": len(report.labels)}
    return ctx.write("gap-correlation", results, text, plots)


def _gap_panels(fig, gap: np.ndarray, metric: np.ndarray, classes: tuple[str, ...]) -> None:
    a, b = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    _heatmap(a, gap, classes, "accuracy gap G = |C_PGD − C_CE|", "magma")
    _heatmap(b, metric, classes, "label metric C", "viridis")


@_register("p-sweep", "PGD and WPGD for p ∈ {1, 2.5, 10}: NE, AE, S − S_PGD (Table 3, Fig. 10)")
def _p_sweep(ctx: _Context) -> ExperimentResult:
    pgd, *wpgd = ctx.train([ctx.run("pgd"), *(ctx.run("wpgd", p=p) for p in P_VALUES)],
                           audits=len(ctx.audit_attacks()))
    by_attack = ctx.audit_all([pgd, *wpgd], reference=pgd)
    by_pgd, by_wpgd = by_attack["pgd"], by_attack["wpgd"]
    ps = [0.0, *P_VALUES]  # the paper's Table 3 lists PGD as p = 0
    results = []
    for i, (p, a, b) in enumerate(zip(ps, by_pgd.models, by_wpgd.models)):
        results.append({"p": p, "name": a.name, **model_measures(a),
                        "adversarial_error": a.adversarial_error, "adversarial_error_wpgd_attack": b.adversarial_error,
                        "score": b.score, "score_delta": b.score_delta, "score_delta_pgd_attack": a.score_delta,
                        "severity_wpgd_attack": b.severity_adversarial,
                        "attacks": {name: attack_measures(report.models[i], report.models[0])
                                    for name, report in by_attack.items()}})
    n = len(by_pgd.labels)
    plot = ctx.plot("tradeoff.png", lambda fig: _tradeoff(fig, results), size=(10, 4))
    text = prose.sweep_report(ctx.s["dataset"], ctx.setting(), Path(ctx.metric_file).name, ctx.s["eval_steps"],
                              results, n, plot.name, cost_threshold=by_pgd.cost_threshold)
    return ctx.write("p-sweep", {"rows": results, "test_points": n, "attacks": list(by_attack),
                                 "metric": Path(ctx.metric_file).name,
                                 "cost_threshold": by_pgd.cost_threshold}, text, [plot])


def model_measures(m) -> dict[str, Any]:
    """One model's clean-input measures with their binomial standard errors (one test set; seeds not included)."""
    import torch

    counts = m.confusion_natural.double()
    n_class = counts.sum(1)
    rate = 1 - counts.diag() / n_class.clamp_min(1)
    per_class_se = torch.sqrt(rate * (1 - rate) / n_class.clamp_min(1))
    missing = n_class == 0
    return {"natural_error": m.natural_error,
            "natural_error_se": m.standard_errors.get("natural_error"),
            "per_class_points": [int(v) for v in n_class],
            "per_class_natural_error": [None if z else 100 * float(v) for v, z in zip(rate, missing)],
            "per_class_natural_error_se": [None if z else 100 * float(v) for v, z in zip(per_class_se, missing)],
            "hierarchical_distance_at_1_natural": m.hdist_natural,
            "hierarchical_distance_at_1_natural_se": (m.standard_errors.get("hierarchical_distance_at_1") or {})
            .get("natural")}


def attack_measures(m, reference) -> dict[str, Any]:
    """One model under one attack: AE, S (eq. 7), S − S_ref, severity, cost-sensitive robust error, hdist@1, with SEs.

    The standard error of ``score_delta`` adds the two models' variances as if independent; both are measured on
    the same test points, so with positively correlated errors it overstates the difference's noise.
    """
    se = m.standard_errors
    delta_se = None
    if m.score_delta is not None and se.get("score") is not None:
        ref_se = reference.standard_errors.get("score") if reference is not m else None
        delta_se = 0.0 if reference is m else (math.hypot(se["score"], ref_se) if ref_se is not None else None)
    return {"adversarial_error": m.adversarial_error, "adversarial_error_se": se.get("adversarial_error"),
            "score": m.score, "score_se": se.get("score"), "score_delta": m.score_delta, "score_delta_se": delta_se,
            "severity": m.severity_adversarial,
            "cost_sensitive_robust_error": m.cost_sensitive_robust_error,
            "cost_sensitive_robust_error_se": se.get("cost_sensitive_robust_error"),
            "hierarchical_distance_at_1": m.hdist_adversarial,
            "hierarchical_distance_at_1_se": (se.get("hierarchical_distance_at_1") or {}).get("adversarial")}


def _tradeoff(fig, rows: list[dict]) -> None:
    from wpgdkit.experiments.prose import ATTACK_LABELS

    ps = [r["p"] for r in rows]
    a, b = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    a.plot(ps, [r["natural_error"] for r in rows], "o-", color="black", label="NE (clean)")
    attacks = list(rows[0].get("attacks") or {})
    for attack, marker in zip(attacks, "s^vD"):
        a.plot(ps, [r["attacks"][attack]["adversarial_error"] for r in rows], marker + "--",
               label=f"AE ({ATTACK_LABELS.get(attack, attack)})")
        deltas = [r["attacks"][attack]["score_delta"] for r in rows]
        b.plot(ps, [float("nan") if d is None else d for d in deltas], marker + "-",
               label=ATTACK_LABELS.get(attack, attack))
    a.set_xlabel("p (0 = PGD)")
    a.set_ylabel("error [%]")
    a.set_xscale("symlog", linthresh=1.0)
    a.legend(fontsize=7)
    a.set_title("accuracy & robustness vs p", fontsize=9)
    b.axhline(0.0, color="grey", lw=0.8)
    b.set_xscale("symlog", linthresh=1.0)
    b.set_xlabel("p (0 = PGD)")
    b.set_ylabel("S − S_PGD (eq. 7)")
    if attacks:
        b.legend(fontsize=7, title="attack", title_fontsize=7)
    b.set_title("weighted robustness score (lower: closer classes)", fontsize=9)



@_register("imbalance", "similar vs dissimilar pair, balanced vs ratio 0.3, CE vs PGD (Sec. 3.2, Fig. 5)")
def _imbalance(ctx: _Context) -> ExperimentResult:
    from wpgdkit.datasets import get_dataset
    from wpgdkit.training import load_checkpoint

    spec = get_dataset(ctx.s["dataset"])
    similar, dissimilar = _pairs(ctx)
    jobs = [(label, pair, imbalance, method) for label, pair in (("similar", similar), ("dissimilar", dissimilar))
            for imbalance in (None, IMBALANCE_RATIO) for method in ("ce", "pgd")]
    paths = ctx.train([ctx.run(method, classes=pair, imbalance=imbalance, epochs=ctx.s["imbalance_epochs"],
                               limit=ctx.s["imbalance_limit"], val_fraction=0.2) for _, pair, imbalance, method in jobs],
                      audits=len(jobs))
    curves, rows = {}, []
    for (label, pair, imbalance, method), path in zip(jobs, paths):
        history = load_checkpoint(path).history
        val_error = [100 * (1 - h["val_accuracy"]) for h in history if "val_accuracy" in h]
        m = ctx.audit([path], metric=None).models[0]
        curves[f"{label}/{'balanced' if imbalance is None else f'ratio {imbalance:g}'}/{method}"] = val_error
        rows.append({"pair": label, "classes": [spec.classes[c] for c in pair], "imbalance": imbalance,
                     "method": method, "val_error_per_epoch": val_error, "natural_error": m.natural_error,
                     "adversarial_error": m.adversarial_error, "per_class_natural_error": _per_class_error(m),
                     "test_points": int(m.confusion_natural.sum())})
    plot = ctx.plot("validation-curves.png", lambda fig: _curves(fig, curves), size=(10, 7))
    text = prose.imbalance_report(ctx.s["dataset"],
                                  ctx.setting(epochs=ctx.s["imbalance_epochs"], limit=ctx.s["imbalance_limit"]),
                                  [spec.classes[c] for c in similar], [spec.classes[c] for c in dissimilar],
                                  IMBALANCE_RATIO, rows, plot.name)
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
    ce, pgd = ctx.train([ctx.run("ce"), ctx.run("pgd")], audits=1)
    report = ctx.audit([ce, pgd])
    k = report.num_classes
    rows, results = [], {}
    for m in report.models:
        nat, adv = m.predictions.natural_entropy, m.predictions.adversarial_entropy
        confident = float((nat < 0.1 * math.log(k)).double().mean())
        rows.append([m.name, fmt(float(nat.mean()), ".3f"), fmt(float(nat.median()), ".3f"), fmt(confident * 100, ".1f"),
                     fmt(float(adv.mean()), ".3f")])
        results[m.name] = {"method": m.method, "test_points": len(nat),
                           "natural_mean": float(nat.mean()), "natural_median": float(nat.median()),
                           "natural_mean_se": float(nat.double().std() / math.sqrt(len(nat))) if len(nat) > 1 else None,
                           "adversarial_mean": float(adv.mean()), "confident_share": confident,
                           "histogram": np.histogram(nat.numpy(), bins=20, range=(0, math.log(k)))[0].tolist()}
    plot = ctx.plot("entropy.png", lambda fig: _entropy_hist(fig, report), size=(7, 4))
    text = prose.entropy_report(ctx.s["dataset"], ctx.setting(), k, rows,
                                results[report.models[0].name]["natural_mean"],
                                results[report.models[1].name]["natural_mean"], plot.name)
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
        Optionally also ``plan(*, trainings, audits)``, called once before the
        first run with the number of runs that will train or resume (reused
        ones not counted) and of audits that follow, and ``reused(name)``,
        called for each complete run reused as it is (no ``training`` call).

    Returns
    -------
    result : ExperimentResult

    Raises
    ------
    WpgdkitError
        For unknown names, bad settings or missing data.
    """
    _, fn = get_experiment(config.experiment)
    check_seed("--seed", config.seed)
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

    # Both splits are read whole (every file validated: a truncated or corrupted one fails here), before
    # any training and before OUT or OUT/runs is created: the first training creates runs/.
    for split in ("train", "test"):
        load_split(settings["dataset"], split, data_dir=config.data_dir, download=config.download, seed=config.seed)


def experiment_descriptions() -> dict[str, str]:
    """``{name: description}`` for ``--help``."""
    return {name: get_experiment(name)[0] for name in list_experiments()}

