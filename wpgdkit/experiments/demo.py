"""``wpgdkit demo``: the whole pipeline on the paper's toy problem (Sec. 3.4, Figs. 8 and 9) in about a minute on a CPU.

Three classes in 2-D (the embedded ``toy`` dataset) and the paper's cost
matrix ``C = [[0, 10, 0.01], [10, 0, 1], [0.01, 1, 0]]``: mistaking class 0
for class 1 costs 10, 1 for 2 costs 1, 0 for 2 costs 0.01. :func:`run_demo`

1. writes the metric to ``<out>/toy-metric.csv``;
2. trains an MLP with cross-entropy once, and with PGD and WPGD for every ℓ2
   budget ε (default 0.2, 0.4, 0.8) into ``<out>/runs/`` through
   :func:`wpgdkit.experiments.runner.train_or_reuse` — each run's file is named
   by its settings and fingerprint; a complete one is reused, a partial one
   resumed, so an interrupted demo picks up where it stopped;
3. audits CE, PGD and WPGD at each ε with a 20-step PGD attack (and with the
   WPGD attack, which knows C);
4. draws the decision regions (``boundaries.png``: a row CE → PGD(ε) as in
   Fig. 8, a row CE → WPGD(ε) as in Fig. 9);
5. writes ``summary.json`` (settings, the table, the boundary geometry and
   every audit's JSON) and ``report.md`` (the picture, the tables, and a
   reading computed from the numbers — it says so when the paper's effect
   does not show).

The report's words live in :mod:`wpgdkit.experiments.prose`. The toy MLP is far too small to gain from intra-op threads, and on a busy
machine they cost several times their worth, so the demo runs torch on one
thread (``DemoConfig.threads``) and restores the setting afterwards.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from wpgdkit import __version__
from wpgdkit.atomic import atomic_write_text
from wpgdkit.errors import WpgdkitError
from wpgdkit.experiments import runner
from wpgdkit.experiments.prose import demo_reading as _reading
from wpgdkit.experiments.prose import demo_report as _report
from wpgdkit.experiments.prose import demo_verdict as _verdict  # noqa: F401  (the tests' name)
from wpgdkit.experiments.prose import model_key as _model_key
from wpgdkit.experiments.prose import model_label as _label

__all__ = [
    "DEMO_SCHEMA",
    "DEFAULT_EPSILONS",
    "QUICK",
    "DemoConfig",
    "DemoProgress",
    "DemoResult",
    "demo_config",
    "run_demo",
    "run_path",
    "summary_dict",
]

DEMO_SCHEMA = "wpgdkit-demo/1"
DEFAULT_EPSILONS = (0.2, 0.4, 0.8)
#: What ``--quick`` changes: a smoke run of about 15 s on two cores (rougher numbers and picture).
QUICK: dict[str, Any] = {"epochs": 3, "limit": 600, "test_limit": 300}

METRIC_FILE = "toy-metric.csv"
REPORT_FILE = "report.md"
SUMMARY_FILE = "summary.json"
BOUNDARIES_FILE = "boundaries.png"
RUNS_FOLDER = runner.RUNS_FOLDER

_DATASET, _MODEL, _NORM = "toy", "mlp", "l2"


@dataclass(frozen=True)
class DemoConfig:
    """What ``wpgdkit demo`` runs. The defaults finish in well under two minutes on two CPU cores.

    Attributes
    ----------
    out : str
        Output folder: ``report.md``, ``summary.json``, ``boundaries.png``,
        ``toy-metric.csv`` and the checkpoints in ``runs/``.
    epsilons : tuple of float
        ℓ2 budgets; each trains a PGD and a WPGD model and is audited at that ε.
    p : float
        Power of the metric in WPGD's loss (and in the WPGD attack), ``C^p``.
        With this C, p = 1 already aims the inner attack at the costly pair;
        the paper's other values, 2.5 and 10, give about the same S at
        ε = 0.8 and a higher natural error at ε = 0.4.
    epochs : int
        Training epochs of every model.
    steps : int
        Inner PGD/WPGD steps in training.
    eval_steps : int
        Steps of the audit's attack (the paper evaluates with 20).
    limit : int or None
        Train on a seeded subset of this many points (None: all 3000).
    test_limit : int or None
        Audit (and draw) the first N test points (None: all 1500).
    batch_size, lr : int, float
        SGD with Nesterov momentum and the piecewise schedule of ``wpgdkit train``.
    wpgd_attack : bool
        Also audit with the WPGD attack (the attacker knows C).
    resolution : int
        Grid cells per side of the decision-region picture.
    seed : int
        Seed of the data, the initial weights, the batches and the attacks.
    device : {"cpu", "auto", "cuda"}
        The toy MLP is fastest on a CPU.
    threads : int or None
        torch intra-op threads while the demo runs (None: leave torch's setting).
    """

    out: str = "wpgdkit-demo"
    epsilons: tuple[float, ...] = DEFAULT_EPSILONS
    p: float = 1.0
    epochs: int = 10
    steps: int = 5
    eval_steps: int = 20
    limit: int | None = None
    test_limit: int | None = None
    batch_size: int = 256
    lr: float = 0.1
    wpgd_attack: bool = True
    resolution: int = 200
    seed: int = 0
    device: str = "cpu"
    threads: int | None = 1


def demo_config(*, quick: bool = False, **overrides: Any) -> DemoConfig:
    """A :class:`DemoConfig` from the defaults (or :data:`QUICK`), then the overrides that are not None."""
    values: dict[str, Any] = dict(QUICK) if quick else {}
    values.update({key: value for key, value in overrides.items() if value is not None})
    unknown = set(values) - {f.name for f in dataclasses.fields(DemoConfig)}
    if unknown:
        raise TypeError(f"unknown demo settings: {', '.join(sorted(unknown))}")
    if "epsilons" in values:
        values["epsilons"] = tuple(values["epsilons"])
    return DemoConfig(**values)


class DemoProgress(Protocol):
    """What :func:`run_demo` reports to. One object serves as the reporter of
    :func:`wpgdkit.training.train` (``start_epoch``/``advance``/``end_epoch``)
    and of :func:`wpgdkit.audit.audit` (``start_model``/``advance``)."""

    def begin(self, steps: int) -> None: ...
    def step(self, description: str) -> None: ...
    def done(self, message: str) -> None: ...
    def start_epoch(self, epoch: int, batches: int) -> None: ...
    def advance(self, stats: dict[str, float] | None = None) -> None: ...
    def end_epoch(self, record: dict[str, Any]) -> None: ...
    def start_model(self, name: str, batches: int) -> None: ...


@dataclass
class DemoResult:
    """What :func:`run_demo` leaves behind.

    Attributes
    ----------
    rows : list of dict
        The audit table: one row per (ε, attack, model) with ``natural_error``,
        ``adversarial_error`` (%), ``score`` S, ``score_delta`` S − S_PGD and
        ``adversarial_rates`` (% of class i sent to j, keys ``"i->j"``).
    reading : list of str
        The report's plain-words reading (Markdown).
    geometry : dict
        Per model key (``ce``, ``pgd-eps0.4``, ...): region shares, boundary
        bends, and median distances from each class to each other region, all
        on the grid described by ``grid``.
    audits : dict
        ``{"pgd": {ε: AuditReport}, "wpgd": {...}}``.
    status : dict
        Per model key: ``trained``, ``resumed`` or ``reused``.
    """

    config: DemoConfig
    out: Path
    report: Path
    summary: Path
    boundaries: Path
    metric: Path
    checkpoints: dict[str, str]
    audits: dict[str, dict[float, Any]]
    rows: list[dict[str, Any]]
    reading: list[str]
    geometry: dict[str, dict[str, Any]]
    status: dict[str, str]
    seconds: float
    grid: dict[str, Any] = field(default_factory=dict)
    classes: tuple[str, ...] = ()
    pairs: list[tuple[int, int]] = field(default_factory=list)
    cost: list[list[float]] = field(default_factory=list)


# --- validation ----------------------------------------------------------------------------


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _validate(config: DemoConfig) -> None:
    from wpgdkit.device import resolve_device
    from wpgdkit.inputs import check_seed

    eps = config.epsilons
    checks = [
        (len(eps) > 0, "give at least one ε (--eps)"),
        (all(isinstance(e, (int, float)) and math.isfinite(e) and e > 0 for e in eps),
         f"every ε must be a positive number, got {', '.join(map(str, eps))}"),
        # Files and summary keys name each ε by its %g form, so those must differ too.
        (len({f"{e:g}" for e in eps if isinstance(e, (int, float))}) == len(eps),
         f"the ε values repeat: {', '.join(f'{e:g}' if isinstance(e, (int, float)) else repr(e) for e in eps)}"),
        (math.isfinite(config.p) and config.p > 0, f"--p must be a positive number, got {config.p}"),
        (_is_int(config.epochs) and config.epochs >= 1, f"--epochs must be at least 1, got {config.epochs}"),
        (_is_int(config.steps) and config.steps >= 1, f"--steps must be at least 1, got {config.steps}"),
        (_is_int(config.eval_steps) and config.eval_steps >= 1,
         f"--eval-steps must be at least 1, got {config.eval_steps}"),
        (config.limit is None or (_is_int(config.limit) and config.limit >= 3),
         f"--limit must be at least 3 (training points), got {config.limit}"),
        (config.test_limit is None or (_is_int(config.test_limit) and config.test_limit >= 3),
         f"--test-limit must be at least 3 (test points), got {config.test_limit}"),
        (_is_int(config.batch_size) and config.batch_size >= 1,
         f"--batch-size must be at least 1, got {config.batch_size}"),
        (math.isfinite(config.lr) and config.lr > 0, f"--lr must be positive, got {config.lr}"),
        (_is_int(config.resolution) and 10 <= config.resolution <= 2000,
         f"--resolution must be between 10 and 2000 cells, got {config.resolution}"),
        (config.threads is None or (_is_int(config.threads) and config.threads >= 1),
         f"--threads must be at least 1, got {config.threads}"),
    ]
    for ok, message in checks:
        if not ok:
            raise WpgdkitError(message)
    check_seed("--seed", config.seed)  # 0..2**32-1, as every seed (training refuses others only after setup)
    resolve_device(config.device)  # an unknown device, or cuda without a GPU, fails here, before any work
    out = Path(config.out)
    for path, what in ((out, "--out"), (out / RUNS_FOLDER, "its runs/")):
        if path.exists() and not path.is_dir():
            raise WpgdkitError(f"{what} {path} exists and is not a folder")
    for name in (REPORT_FILE, SUMMARY_FILE, BOUNDARIES_FILE, METRIC_FILE):
        if (out / name).is_dir():
            raise WpgdkitError(f"{out / name} is a folder; the demo writes a file there")



# --- the runs --------------------------------------------------------------------------------


def _train_config(config: DemoConfig, method: str, eps: float | None, metric_path: Path):
    """The run of one model, placed in ``<out>/runs/`` under its name and fingerprint."""
    from wpgdkit.training import DataConfig, TrainConfig

    data = DataConfig(_DATASET, limit=config.limit, val_fraction=0.0, augment=False, seed=config.seed)
    adversarial = {} if method == "ce" else {"eps": eps, "steps": config.steps}
    # CE ignores ε, steps and p: left at TrainConfig's defaults, its settings (and file) do not depend on them.
    tc = TrainConfig(
        data=data, model=_MODEL, method=method, metric=str(metric_path) if method == "wpgd" else None,
        p=config.p if method == "wpgd" else 1.0, norm=_NORM, eval_steps=0, epochs=config.epochs,
        batch_size=config.batch_size, lr=config.lr, device=config.device, seed=config.seed, **adversarial,
    )
    return runner.place_run(tc, Path(config.out) / RUNS_FOLDER)


def run_path(config: DemoConfig, method: str, eps: float | None = None) -> Path:
    """Where the demo of ``config`` keeps the run of ``method`` (at ``eps``)."""
    return Path(_train_config(config, method, eps, Path(config.out) / METRIC_FILE).out)


def run_demo(config: DemoConfig, *, progress: DemoProgress | None = None) -> DemoResult:
    """Train CE, PGD and WPGD on the toy problem, audit them, draw their boundaries, write the report.

    Parameters
    ----------
    config : DemoConfig
    progress : DemoProgress, keyword-only, optional
        Told about every step, and used as the training and audit reporter.

    Returns
    -------
    result : DemoResult

    Raises
    ------
    WpgdkitError
        For bad settings (before anything is written) or an ``out`` folder
        that cannot be created.
    """
    _validate(config)
    started = time.perf_counter()
    out = Path(config.out)
    try:
        (out / RUNS_FOLDER).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise WpgdkitError(f"cannot create {out / RUNS_FOLDER}: {exc.strerror or exc}") from None
    from wpgdkit.device import torch_threads

    with torch_threads(config.threads):
        return _run(config, out, progress, started)


def _run(config: DemoConfig, out: Path, progress: DemoProgress | None, started: float) -> DemoResult:
    from wpgdkit.audit import AuditConfig, audit
    from wpgdkit.labelmetric import write_metric
    from wpgdkit.labelmetric.shipped import PAPER_TOY_METRIC

    epsilons = tuple(sorted(float(e) for e in config.epsilons))
    attacks = ("pgd", "wpgd") if config.wpgd_attack else ("pgd",)
    # CE, PGD and WPGD per ε, an audit per attack and ε, the picture, the report.
    n_steps = 1 + 2 * len(epsilons) + len(attacks) * len(epsilons) + 2
    if progress is not None:
        progress.begin(n_steps)

    def step(description: str) -> float:
        if progress is not None:
            progress.step(description)
        return time.perf_counter()

    def done(message: str, since: float) -> None:
        if progress is not None:
            progress.done(f"{message} ({time.perf_counter() - since:.1f} s)")

    metric_path = write_metric(PAPER_TOY_METRIC, out / METRIC_FILE)  # before the runs: WPGD's fingerprint reads it
    cost = np.asarray(PAPER_TOY_METRIC.matrix, dtype=np.float64)
    classes = tuple(PAPER_TOY_METRIC.classes)

    # Training: CE once, then PGD and WPGD per ε.
    jobs = [("ce", None)] + [(method, eps) for eps in epsilons for method in ("pgd", "wpgd")]
    checkpoints: dict[str, str] = {}
    status: dict[str, str] = {}
    commands: list[str] = []
    for method, eps in jobs:
        key = _model_key(method, eps)
        name = _label(method, config.p if method == "wpgd" else None) + ("" if eps is None else f" ε={eps:g}")
        since = step(f"training {name}")
        tc = _train_config(config, method, eps, metric_path)
        _, status[key] = runner.train_or_reuse(tc, progress)
        checkpoints[key] = tc.out
        commands.append(runner.train_command(tc))
        done(f"{status[key]} {name}: {RUNS_FOLDER}/{Path(tc.out).name}", since)

    # Audits: every ε, the PGD attack (and the WPGD attack).
    audits: dict[str, dict[float, Any]] = {attack: {} for attack in attacks}
    for attack in attacks:
        for eps in epsilons:
            since = step(f"auditing ε={eps:g} ({attack.upper()} attack)")
            ce, pgd, wpgd = (checkpoints[_model_key(m, e)] for m, e in (("ce", None), ("pgd", eps), ("wpgd", eps)))
            ac = AuditConfig(checkpoints=(ce, pgd, wpgd), baseline=ce, reference=pgd, metric=str(metric_path),
                             attack=attack, eps=eps, norm=_NORM, steps=config.eval_steps, attack_p=config.p,
                             limit=config.test_limit, device=config.device, seed=config.seed)
            audits[attack][eps] = audit(ac, progress=progress)
            commands.append(runner.audit_command(ac))
            m = {model.method: model for model in audits[attack][eps].models}
            done(f"audited ε={eps:g} ({attack.upper()} attack): AE CE {m['ce'].adversarial_error:.1f}%, "
                 f"PGD {m['pgd'].adversarial_error:.1f}%, WPGD {m['wpgd'].adversarial_error:.1f}%", since)

    # The picture and its geometry.
    since = step("drawing the decision boundaries")
    geometry, grid, boundaries = _draw(config, out, epsilons, checkpoints, classes, cost)
    done(f"drew {boundaries.name}", since)

    since = step("writing the report")
    pairs = _pairs_by_cost(cost)
    rows = _rows(audits, epsilons, config, classes, pairs)
    reading = _reading(epsilons, rows, geometry, grid, audits, classes, cost, pairs)
    seconds = time.perf_counter() - started
    result = DemoResult(config=config, out=out, report=out / REPORT_FILE, summary=out / SUMMARY_FILE,
                        boundaries=boundaries, metric=metric_path, checkpoints=checkpoints, audits=audits, rows=rows,
                        reading=reading, geometry=geometry, status=status, seconds=seconds, grid=grid, classes=classes,
                        pairs=pairs, cost=cost.tolist())
    runner.write_results_json(summary_dict(result), result.summary)
    atomic_write_text(result.report, _report(result, commands))
    done(f"wrote {result.report}", since)
    return result


def _draw(config: DemoConfig, out: Path, epsilons: tuple[float, ...], checkpoints: dict[str, str],
          classes: tuple[str, ...], cost: np.ndarray) -> tuple[dict[str, dict[str, Any]], dict[str, Any], Path]:
    from wpgdkit.experiments.boundaries import (
        BoundaryPanel,
        boundary_bends,
        boundary_distances,
        make_grid,
        plot_boundaries,
        predict_regions,
        region_shares,
    )
    from wpgdkit.training import load_checkpoint
    from wpgdkit.training.data import load_eval_split
    from wpgdkit.device import resolve_device

    device = resolve_device(config.device)
    x, y = load_eval_split(_DATASET, list(range(len(classes))), split="test", limit=config.test_limit, seed=config.seed)
    grid = make_grid(x, margin=max(0.5, max(epsilons)), resolution=config.resolution)
    k = len(classes)
    regions: dict[str, np.ndarray] = {}
    geometry: dict[str, dict[str, Any]] = {}
    for key, path in checkpoints.items():
        model = load_checkpoint(path).build_model(device)
        regions[key] = predict_regions(model, grid, device=device)
        geometry[key] = {
            "region_shares": region_shares(regions[key], k).tolist(),
            "boundary_bends": boundary_bends(regions[key], grid, k).tolist(),
            "boundary_distance_median": boundary_distances(regions[key], grid, x, y, k).tolist(),
        }
    ce_panel = BoundaryPanel(regions["ce"], "CE (no attack in training)")
    rows = [[ce_panel] + [BoundaryPanel(regions[_model_key(method, eps)], f"{_label(method)} ε = {eps:g}", eps)
                          for eps in epsilons] for method in ("pgd", "wpgd")]
    costs = ", ".join(f"{classes[i]}↔{classes[j]}: {cost[i, j]:g}" for i, j in _pairs_by_cost(cost) if i < j)
    path = plot_boundaries(
        rows, grid, x, y, classes, out / BOUNDARIES_FILE,
        row_titles=["PGD (Fig. 8)", f"WPGD p={config.p:g} (Fig. 9)"],
        title="Decision regions on the toy problem: PGD (top) and WPGD (bottom) as the ℓ2 budget ε grows",
        note=f"cost of confusing two classes: {costs}; dots: test points; circle: the ℓ2 ball of radius ε",
    )
    grid_info = {"x_min": grid.x_min, "x_max": grid.x_max, "y_min": grid.y_min, "y_max": grid.y_max,
                 "resolution": grid.resolution, "cell": grid.cell, "staircase_bend": grid.cell / math.sqrt(12),
                 "points": int(len(x))}
    return geometry, grid_info, path


def _pairs_by_cost(cost: np.ndarray) -> list[tuple[int, int]]:
    k = cost.shape[0]
    pairs = [(i, j) for i in range(k) for j in range(k) if i != j]
    return sorted(pairs, key=lambda ij: (-cost[ij], ij))


def _rows(audits, epsilons, config, classes, pairs) -> list[dict[str, Any]]:
    from wpgdkit.audit.scores import confusion_matrix

    rows = []
    for attack, per_eps in audits.items():
        for eps in epsilons:
            report = per_eps[eps]
            k = report.num_classes
            for m in report.models:
                adv = confusion_matrix(report.labels, m.predictions.adversarial, k, normalize="true")
                nat = confusion_matrix(report.labels, m.predictions.natural, k, normalize="true")
                rows.append({
                    "eps": eps, "attack": attack, "model": m.method, "label": _label(m.method, m.p),
                    "checkpoint": m.checkpoint, "natural_error": m.natural_error,
                    "adversarial_error": m.adversarial_error, "score": m.score, "score_delta": m.score_delta,
                    "adversarial_rates": {f"{classes[i]}->{classes[j]}": 100 * float(adv[i, j]) for i, j in pairs},
                    "natural_rates": {f"{classes[i]}->{classes[j]}": 100 * float(nat[i, j]) for i, j in pairs},
                })
    return rows


# --- files -----------------------------------------------------------------------------------


def summary_dict(result: DemoResult) -> dict[str, Any]:
    """The ``summary.json`` document (schema ``wpgdkit-demo/1``)."""
    c = result.config
    return {
        "schema": DEMO_SCHEMA,
        "tool_version": __version__,
        "settings": {**dataclasses.asdict(c), "epsilons": list(c.epsilons), "dataset": _DATASET, "model": _MODEL,
                     "norm": _NORM},
        "seconds": result.seconds,
        "classes": list(result.classes),
        "metric": {"file": str(result.metric), "matrix": result.cost},
        "files": {"report": str(result.report), "summary": str(result.summary),
                  "boundaries": str(result.boundaries), "metric": str(result.metric)},
        "checkpoints": result.checkpoints,
        "status": result.status,
        "table": result.rows,
        "reading": result.reading,
        "grid": result.grid,
        "geometry": result.geometry,
        "audits": {attack: {f"{eps:g}": report.to_dict() for eps, report in per_eps.items()}
                   for attack, per_eps in result.audits.items()},
    }
