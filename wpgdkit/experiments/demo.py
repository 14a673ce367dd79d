"""``wpgdkit demo``: the whole pipeline on the paper's toy problem (Sec. 3.4, Figs. 8 and 9) in about a minute on a CPU.

Three classes in 2-D (the embedded ``toy`` dataset) and the paper's cost
matrix ``C = [[0, 10, 0.01], [10, 0, 1], [0.01, 1, 0]]``: mistaking class 0
for class 1 costs 10, 1 for 2 costs 1, 0 for 2 costs 0.01. :func:`run_demo`

1. writes the metric to ``<out>/toy-metric.csv``;
2. trains an MLP with cross-entropy once, and with PGD and WPGD for every ℓ2
   budget ε (default 0.2, 0.4, 0.8) into ``<out>/runs/`` — a checkpoint whose
   settings match is reused, a partial one resumed, so an interrupted demo
   picks up where it stopped;
3. audits CE, PGD and WPGD at each ε with a 20-step PGD attack (and with the
   WPGD attack, which knows C);
4. draws the decision regions (``boundaries.png``: a row CE → PGD(ε) as in
   Fig. 8, a row CE → WPGD(ε) as in Fig. 9);
5. writes ``summary.json`` (settings, the table, the boundary geometry and
   every audit's JSON) and ``report.md`` (the picture, the tables, and a
   reading computed from the numbers — it says so when the paper's effect
   does not show).

The toy MLP is far too small to gain from intra-op threads, and on a busy
machine they cost several times their worth, so the demo runs torch on one
thread (``DemoConfig.threads``) and restores the setting afterwards.
"""

from __future__ import annotations

import dataclasses
import json
import math
import shlex
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from wpgdkit import __version__
from wpgdkit.atomic import atomic_write_text
from wpgdkit.jsonutil import json_value
from wpgdkit.errors import WpgdkitError

__all__ = [
    "DEMO_SCHEMA",
    "DEFAULT_EPSILONS",
    "QUICK",
    "DemoConfig",
    "DemoProgress",
    "DemoResult",
    "demo_config",
    "run_demo",
]

DEMO_SCHEMA = "wpgdkit-demo/1"
DEFAULT_EPSILONS = (0.2, 0.4, 0.8)
#: What ``--quick`` changes: a smoke run of about 15 s on two cores (rougher numbers and picture).
QUICK: dict[str, Any] = {"epochs": 3, "limit": 600, "test_limit": 300}

METRIC_FILE = "toy-metric.csv"
REPORT_FILE = "report.md"
SUMMARY_FILE = "summary.json"
BOUNDARIES_FILE = "boundaries.png"
RUNS_FOLDER = "runs"

_DATASET, _MODEL, _NORM = "toy", "mlp", "l2"
# Differences smaller than these read as "no clear difference" in the report.
_CLEAR_RATE = 1.0       # percentage points of a per-pair adversarial rate
_CLEAR_SCORE = 0.05     # relative change of S
_CLEAR_SHARE = 0.03     # absolute change of a class's share of the plotted square
_CLEAR_DISTANCE = 0.05  # change of a median distance to a region (the toy classes are ~1.7 apart)


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
    from wpgdkit.training.distributed import resolve_device

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
        (_is_int(config.seed) and config.seed >= 0, f"--seed must be a non-negative integer, got {config.seed}"),
        (config.threads is None or (_is_int(config.threads) and config.threads >= 1),
         f"--threads must be at least 1, got {config.threads}"),
    ]
    for ok, message in checks:
        if not ok:
            raise WpgdkitError(message)
    resolve_device(config.device)  # an unknown device, or cuda without a GPU, fails here, before any work
    out = Path(config.out)
    for path, what in ((out, "--out"), (out / RUNS_FOLDER, "its runs/")):
        if path.exists() and not path.is_dir():
            raise WpgdkitError(f"{what} {path} exists and is not a folder")
    for name in (REPORT_FILE, SUMMARY_FILE, BOUNDARIES_FILE, METRIC_FILE):
        if (out / name).is_dir():
            raise WpgdkitError(f"{out / name} is a folder; the demo writes a file there")


# --- training with reuse ---------------------------------------------------------------------


@contextmanager
def _torch_threads(threads: int | None) -> Iterator[None]:
    if threads is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _run_name(config: DemoConfig, method: str, eps: float | None) -> str:
    parts = [_DATASET, _MODEL, method]
    if method == "wpgd":
        parts.append(f"p{config.p:g}")
    if method != "ce":
        parts += [f"{_NORM}-eps{eps:g}", f"k{config.steps}"]
    parts += [f"e{config.epochs}", f"n{config.limit}" if config.limit is not None else "nall", f"s{config.seed}"]
    return "-".join(parts)


def _train_config(config: DemoConfig, method: str, eps: float | None, metric_path: Path):
    from wpgdkit.training import DataConfig, TrainConfig

    data = DataConfig(_DATASET, limit=config.limit, val_fraction=0.0, augment=False, seed=config.seed)
    adversarial = {} if method == "ce" else {"eps": eps, "steps": config.steps}
    # CE ignores ε, steps and p: left at TrainConfig's defaults, its settings (and file) do not depend on them.
    return TrainConfig(
        data=data, model=_MODEL, method=method, metric=str(metric_path) if method == "wpgd" else None,
        p=config.p if method == "wpgd" else 1.0, norm=_NORM, eval_steps=0, epochs=config.epochs,
        batch_size=config.batch_size, lr=config.lr,
        out=str(Path(config.out) / RUNS_FOLDER / f"{_run_name(config, method, eps)}.pt"),
        device=config.device, seed=config.seed, **adversarial,
    )


def _fingerprint_of_config(tc, cost: np.ndarray | None) -> dict[str, Any]:
    run = {key: getattr(tc, key) for key in ("model", "method", "p", "norm", "eps", "steps", "epochs", "batch_size",
                                             "lr", "momentum", "weight_decay", "schedule", "seed", "random_start")}
    run["lam"] = "inf" if math.isinf(tc.lam) else tc.lam
    run["step_size"] = tc.attack_step_size
    data = {key: getattr(tc.data, key) for key in ("dataset", "limit", "val_fraction", "seed", "imbalance")}
    return {"run": run, "data": data, "metric": None if cost is None else cost.tolist()}


def _fingerprint_of_checkpoint(state: dict[str, Any]) -> dict[str, Any]:
    run = state.get("run", {})
    keys = ("model", "method", "p", "norm", "eps", "steps", "epochs", "batch_size", "lr", "momentum", "weight_decay",
            "schedule", "seed", "random_start", "lam", "step_size")
    data = state.get("data", {})
    metric = state.get("metric")
    return {"run": {key: run.get(key) for key in keys},
            "data": {key: data.get(key) for key in ("dataset", "limit", "val_fraction", "seed", "imbalance")},
            "metric": None if not metric else np.asarray(metric["matrix"], dtype=np.float64).tolist()}


def _train_or_reuse(tc, cost: np.ndarray | None, progress: DemoProgress | None) -> str:
    """Train ``tc``, resume its checkpoint, or reuse it when complete; returns what happened."""
    from wpgdkit.training import load_checkpoint, log_path_for, train

    path = Path(tc.out)
    state = None
    if path.exists():
        try:
            state = load_checkpoint(path)
        except WpgdkitError:
            state = None  # unreadable: trained again below
    if state is not None and _fingerprint_of_checkpoint(state) == _fingerprint_of_config(tc, cost):
        if int(state["epoch"]) >= tc.epochs:
            return "reused"
        train(dataclasses.replace(tc, resume=True), progress=progress)
        return "resumed"
    # A new run, or one trained with other settings: start over, its log too.
    log_path_for(path).unlink(missing_ok=True)
    train(tc, progress=progress)
    return "trained"


# --- commands that reproduce each piece ------------------------------------------------------


def _train_command(tc) -> str:
    words = ["wpgdkit", "train", "--dataset", tc.data.dataset, "--model", tc.model, "--method", tc.method,
             "--norm", tc.norm]
    if tc.method == "wpgd":
        words += ["--metric", tc.metric, "--p", f"{tc.p:g}"]
    if tc.method != "ce":
        words += ["--eps", f"{tc.eps:g}", "--steps", str(tc.steps)]
    if tc.data.limit is not None:
        words += ["--limit", str(tc.data.limit)]
    words += ["--val-fraction", "0", "--eval-steps", "0", "--epochs", str(tc.epochs), "--batch-size",
              str(tc.batch_size), "--lr", f"{tc.lr:g}", "--seed", str(tc.seed), "--device", tc.device, "--out", tc.out]
    return shlex.join(words)


def _audit_command(ac) -> str:
    words = ["wpgdkit", "audit", *ac.checkpoints, "--baseline", ac.baseline, "--reference", ac.reference,
             "--metric", ac.metric, "--attack", ac.attack]
    if ac.attack == "wpgd":
        words += ["--attack-p", f"{ac.attack_p:g}"]
    words += ["--norm", ac.norm, "--eps", f"{ac.eps:g}", "--steps", str(ac.steps)]
    if ac.limit is not None:
        words += ["--limit", str(ac.limit)]
    words += ["--seed", str(ac.seed), "--device", ac.device]
    return shlex.join(words)


# --- the run ---------------------------------------------------------------------------------


def _model_key(method: str, eps: float | None) -> str:
    return method if eps is None else f"{method}-eps{eps:g}"


def _label(method: str, p: float | None = None) -> str:
    return {"ce": "CE", "pgd": "PGD"}.get(method, f"WPGD p={p:g}" if p is not None else "WPGD")


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
    with _torch_threads(config.threads):
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

    metric_path = write_metric(PAPER_TOY_METRIC, out / METRIC_FILE)
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
        status[key] = _train_or_reuse(tc, cost if method == "wpgd" else None, progress)
        checkpoints[key] = tc.out
        commands.append(_train_command(tc))
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
            commands.append(_audit_command(ac))
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
    atomic_write_text(result.summary, json.dumps(json_value(summary_dict(result)), indent=1, allow_nan=False) + "\n")
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
    from wpgdkit.training.checkpoint import model_from_checkpoint
    from wpgdkit.training.data import load_eval_split
    from wpgdkit.training.distributed import resolve_device

    device = resolve_device(config.device)
    x, y = load_eval_split(_DATASET, list(range(len(classes))), split="test", limit=config.test_limit, seed=config.seed)
    grid = make_grid(x, margin=max(0.5, max(epsilons)), resolution=config.resolution)
    k = len(classes)
    regions: dict[str, np.ndarray] = {}
    geometry: dict[str, dict[str, Any]] = {}
    for key, path in checkpoints.items():
        model = model_from_checkpoint(load_checkpoint(path), device=device, name=path)
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


def _row(rows, eps: float, attack: str, model: str) -> dict[str, Any]:
    return next(r for r in rows if r["eps"] == eps and r["attack"] == attack and r["model"] == model)


# --- the plain-words reading, computed from the numbers --------------------------------------


def _pct(value: float) -> str:
    return f"{value:.1f}%"


def _dist(value: float | None) -> str:
    return "–" if value is None or not math.isfinite(value) else f"{value:.2f}"


def _verdict(d_fwd: float, d_back: float) -> str:
    """How WPGD's rates on the costliest pair compare with PGD's, both directions (differences in points)."""
    lower = [d <= -_CLEAR_RATE for d in (d_fwd, d_back)]
    higher = [d >= _CLEAR_RATE for d in (d_fwd, d_back)]
    if all(lower):
        return "WPGD makes fewer costly flips both ways."
    if all(higher):
        return "The expected effect does not show here: WPGD makes more costly flips both ways."
    if any(lower) and any(higher):
        return "Mixed: WPGD makes fewer costly flips one way and more the other."
    if any(lower):
        return "WPGD makes fewer costly flips one way, about as many the other."
    if any(higher):
        return "The expected effect does not show here: WPGD makes more costly flips one way."
    return f"No clear difference (under {_CLEAR_RATE:g} point either way) on the costliest pair."


def _mean_bend(g: dict[str, Any]) -> float:
    bends = np.asarray(g["boundary_bends"], dtype=np.float64)
    upper = bends[np.triu_indices(len(bends), 1)]
    upper = upper[np.isfinite(upper)]
    return float(upper.mean()) if len(upper) else math.nan


def _reading(epsilons, rows, geometry, grid, audits, classes, cost, pairs) -> list[str]:
    """Plain-words sentences, each computed from the numbers (thresholds at the top of the module)."""
    (i, j) = pairs[0]
    ci, cj = classes[i], classes[j]
    fwd, back = f"{ci}->{cj}", f"{cj}->{ci}"
    # The cheapest other class of i: where a cost-aware model may let the adversary go instead.
    cheap = min((c for c in range(len(classes)) if c != i), key=lambda c: (cost[i, c], c))
    lines: list[str] = []
    for eps in epsilons:
        ce, pgd, wpgd = (_row(rows, eps, "pgd", model) for model in ("ce", "pgd", "wpgd"))
        a_p, a_w = pgd["adversarial_rates"], wpgd["adversarial_rates"]
        text = (f"**ε = {eps:g}.** Under the PGD attack, class {ci} → {cj} (cost {cost[i, j]:g}): PGD {_pct(a_p[fwd])}, "
                f"WPGD {_pct(a_w[fwd])}; {cj} → {ci}: {_pct(a_p[back])} against {_pct(a_w[back])}. "
                + _verdict(a_w[fwd] - a_p[fwd], a_w[back] - a_p[back]))
        s_pgd, s_wpgd = pgd["score"], wpgd["score"]
        change = (s_wpgd - s_pgd) / s_pgd if s_pgd else math.nan
        text += f" The mean cost of the answers under attack, S: PGD {s_pgd:.3f}, WPGD {s_wpgd:.3f}"
        if not math.isfinite(change) or abs(change) < _CLEAR_SCORE:
            text += " — about the same."
        elif change < 0:
            text += f" ({100 * change:+.0f}%): WPGD's mistakes are cheaper."
        else:
            text += f" ({100 * change:+.0f}%): WPGD's mistakes are costlier, against the paper's expectation."
        text += (f" Natural error: CE {_pct(ce['natural_error'])}, PGD {_pct(pgd['natural_error'])}, "
                 f"WPGD {_pct(wpgd['natural_error'])}; adversarial error: CE {_pct(ce['adversarial_error'])}, "
                 f"PGD {_pct(pgd['adversarial_error'])}, WPGD {_pct(wpgd['adversarial_error'])}.")
        if wpgd["natural_error"] - pgd["natural_error"] >= 2.0:
            parts = []
            for pair, rate in sorted(wpgd["natural_rates"].items(), key=lambda kv: -kv[1])[:2]:
                src, dst = pair.split("->")
                c = cost[classes.index(src), classes.index(dst)]
                parts.append(f"{_pct(rate)} of class {src} predicted as {dst} (cost {c:g})")
            text += f" WPGD pays on clean points: {' and '.join(parts)}."
        g_pgd, g_wpgd = geometry[_model_key("pgd", eps)], geometry[_model_key("wpgd", eps)]
        d_p, d_w = g_pgd["boundary_distance_median"], g_wpgd["boundary_distance_median"]
        move = d_w[i][j] - d_p[i][j]
        if math.isfinite(move) and move >= _CLEAR_DISTANCE:
            text += (f" WPGD moves the class-{cj} region away from class-{ci} points (median distance PGD "
                     f"{_dist(d_p[i][j])}, WPGD {_dist(d_w[i][j])})")
        elif math.isfinite(move) and move <= -_CLEAR_DISTANCE:
            text += (f" WPGD brings the class-{cj} region closer to class-{ci} points (median distance PGD "
                     f"{_dist(d_p[i][j])}, WPGD {_dist(d_w[i][j])})")
        else:
            text += (f" The class-{cj} region stays about as far from class-{ci} points (median distance PGD "
                     f"{_dist(d_p[i][j])}, WPGD {_dist(d_w[i][j])})")
        closer = d_p[i][cheap] - d_w[i][cheap]
        if math.isfinite(closer) and closer >= _CLEAR_DISTANCE:
            text += (f", while the cheap class {classes[cheap]} (cost {cost[i, cheap]:g}) comes closer "
                     f"({_dist(d_p[i][cheap])} → {_dist(d_w[i][cheap])})")
        shares_p, shares_w = np.array(g_pgd["region_shares"]), np.array(g_wpgd["region_shares"])
        grow = int(np.argmax(np.abs(shares_w - shares_p)))
        if abs(shares_w[grow] - shares_p[grow]) >= _CLEAR_SHARE:
            text += (f"; WPGD gives class {classes[grow]} {100 * shares_w[grow]:.0f}% of the plotted square "
                     f"(PGD {100 * shares_p[grow]:.0f}%)")
        lines.append(text + ".")

    # PGD against CE across ε: does PGD flatten the boundaries as ε grows (Fig. 8)?
    floor = grid["staircase_bend"]
    ce_bend = _mean_bend(geometry["ce"])
    pgd_bends = [_mean_bend(geometry[_model_key("pgd", e)]) for e in epsilons]
    eps_text = ", ".join(f"{e:g}" for e in epsilons)
    bends_text = " → ".join(f"{b:.3f}" for b in pgd_bends)
    text = (f"**PGD against CE.** How far the boundaries are from straight lines (mean RMS bend; the grid's "
            f"staircase alone gives {floor:.3f}): CE {ce_bend:.3f}, PGD {bends_text} for ε = {eps_text}.")
    if math.isfinite(ce_bend) and ce_bend <= 2 * floor:
        text += (" CE's boundaries are already straight to within the grid, so there is nothing for PGD to "
                 "flatten: the flattening of the paper's Fig. 8 cannot show on this problem.")
    elif (len(pgd_bends) > 1 and all(a >= b for a, b in zip(pgd_bends, pgd_bends[1:]))
          and ce_bend - pgd_bends[-1] >= max(0.25 * ce_bend, floor)):
        text += " PGD flattens the boundaries as ε grows, as in the paper's Fig. 8."
    elif ce_bend - pgd_bends[-1] >= max(0.25 * ce_bend, floor):
        text += f" PGD's boundaries are flatter than CE's at ε = {epsilons[-1]:g}, though not steadily with ε."
    else:
        text += " PGD does not flatten them: the paper's Fig. 8 effect does not show here."
    shift = max(float(np.abs(np.array(geometry[_model_key("pgd", e)]["region_shares"])
                             - np.array(geometry["ce"]["region_shares"])).max()) for e in epsilons)
    text += (f" PGD's class regions {'stay within' if shift < _CLEAR_SHARE else 'move by up to'} "
             f"{100 * shift:.0f} points of CE's share of the square.")
    top = epsilons[-1]
    ce_row, pgd_row = _row(rows, top, "pgd", "ce"), _row(rows, top, "pgd", "pgd")
    drop = ce_row["adversarial_error"] - pgd_row["adversarial_error"]
    text += (f" At ε = {top:g} its adversarial error is {_pct(pgd_row['adversarial_error'])} against CE's "
             f"{_pct(ce_row['adversarial_error'])} ({'−' if drop >= 0 else '+'}{abs(drop):.1f} points).")
    wpgd_top = np.asarray(geometry[_model_key("wpgd", top)]["boundary_bends"], dtype=np.float64)
    if np.isfinite(wpgd_top).any():
        a, b = np.unravel_index(np.nanargmax(wpgd_top), wpgd_top.shape)
        pgd_ab = geometry[_model_key("pgd", top)]["boundary_bends"][a][b]
        if wpgd_top[a, b] > 2 * floor and (not math.isfinite(pgd_ab) or wpgd_top[a, b] - pgd_ab >= floor):
            text += (f" WPGD, by contrast, bends the boundary between classes {classes[min(a, b)]} and "
                     f"{classes[max(a, b)]} (cost {cost[a, b]:g}) at ε = {top:g}: bend {wpgd_top[a, b]:.3f}, "
                     f"PGD {_fmt(pgd_ab, '.3f')}.")
    lines.append(text)

    if "wpgd" in audits:
        pgd, wpgd = _row(rows, top, "wpgd", "pgd"), _row(rows, top, "wpgd", "wpgd")
        a_p, a_w = pgd["adversarial_rates"], wpgd["adversarial_rates"]
        text = (f"**Against the WPGD attack** (it knows C and pushes towards the costly classes), at ε = {top:g}: "
                f"class {ci} → {cj}: PGD {_pct(a_p[fwd])}, WPGD {_pct(a_w[fwd])}; {cj} → {ci}: PGD {_pct(a_p[back])}, "
                f"WPGD {_pct(a_w[back])}. " + _verdict(a_w[fwd] - a_p[fwd], a_w[back] - a_p[back])
                + f" S: PGD {pgd['score']:.3f}, WPGD {wpgd['score']:.3f}.")
        lines.append(text)
    return lines


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


def _fmt(value: float | None, spec: str) -> str:
    return "–" if value is None or not math.isfinite(value) else format(value, spec)


def _table(rows: list[dict[str, Any]], pairs, classes, cost) -> list[str]:
    pair_heads = [f"{classes[i]}→{classes[j]} ({cost[i, j]:g})" for i, j in pairs]
    head = ["model", "NE %", "AE %", "S", "S − S_PGD", *pair_heads]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|"]
    for r in rows:
        rates = [_fmt(r["adversarial_rates"][f"{classes[i]}->{classes[j]}"], ".1f") for i, j in pairs]
        lines.append("| " + " | ".join([r["label"], _fmt(r["natural_error"], ".1f"), _fmt(r["adversarial_error"], ".1f"),
                                        _fmt(r["score"], ".3f"), _fmt(r["score_delta"], "+.3f"), *rates]) + " |")
    return lines


def _report(result: DemoResult, commands: list[str]) -> str:
    c = result.config
    classes, pairs = result.classes, result.pairs
    cost = np.asarray(result.cost)
    epsilons = sorted(result.audits["pgd"])
    first = result.audits["pgd"][epsilons[0]]
    n_test = len(first.labels)
    n_train = c.limit if c.limit is not None else "all 3000"
    reused = sum(1 for s in result.status.values() if s == "reused")
    out = [
        "# wpgdkit demo: the toy problem of the paper's Sec. 3.4",
        "",
        f"Three classes in 2-D and the cost matrix C below; an MLP trained with cross-entropy (CE), PGD and "
        f"WPGD (p = {c.p:g}) for ℓ2 budgets ε = {', '.join(f'{e:g}' for e in epsilons)}, then attacked at the "
        f"same ε. Everything below is computed by this run; nothing is copied from the paper.",
        "",
        "| C | " + " | ".join(f"class {name}" for name in classes) + " |",
        "|---|" + "---:|" * len(classes),
        *[f"| class {name} | " + " | ".join(f"{v:g}" for v in cost[r]) + " |" for r, name in enumerate(classes)],
        "",
        "## Decision boundaries",
        "",
        f"![Decision regions of CE, PGD and WPGD for each ε]({result.boundaries.name})",
        "",
        "Top row: CE, then PGD as ε grows (the paper's Fig. 8). Bottom row: CE, then WPGD (Fig. 9). "
        "The circle in each panel is the ℓ2 ball the adversary may move a point in.",
        "",
        "## What changed",
        "",
        *[f"- {line}" for line in result.reading],
        "",
        "## Audit",
        "",
        "NE, AE: natural and adversarial error in %. S: the mean cost of the model's answers under attack "
        "(paper, eq. 7, averaged over classes; lower is better); S − S_PGD: against the PGD model at the same ε. "
        "i→j (cost): the share of class-i test points the attack sends to class j, in %.",
        "",
    ]
    for attack in result.audits:
        for eps in epsilons:
            report = result.audits[attack][eps]
            a = report.attack
            rows = [r for r in result.rows if r["eps"] == eps and r["attack"] == attack]
            out += [f"### ε = {eps:g}, {attack.upper()} attack", "",
                    f"{a.steps}-step ℓ2 {attack.upper()} attack"
                    + (f" on C^{a.p:g} (the attacker knows the metric)" if attack == "wpgd" else " on cross-entropy")
                    + f", {len(report.labels)} test points.", "",
                    *_table(rows, pairs, classes, cost), ""]
    k = len(classes)
    unordered = [(a, b) for a in range(k) for b in range(a + 1, k)]
    unordered.sort(key=lambda ab: (-cost[ab], ab))
    out += ["## Boundary geometry", "",
            "On the picture's grid: each class's share of the plotted square; how far each boundary is from a "
            f"straight line (RMS bend, 0 = flat; the grid's staircase alone gives {result.grid['staircase_bend']:.3f}); "
            "the median distance d(i→j) from the test points of class i to the region of class j (how far the "
            "adversary must push them).", ""]
    head = ["model", *[f"share {name}" for name in classes],
            *[f"bend {classes[a]}–{classes[b]}" for a, b in unordered],
            *[f"d({classes[a]}→{classes[b]})" for a, b in pairs]]
    out += ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|"]
    for key, g in result.geometry.items():
        method, _, eps_text = key.partition("-eps")
        label = _label(method) + (f" ε={eps_text}" if eps_text else "")
        out.append("| " + " | ".join([label, *[f"{100 * s:.0f}%" for s in g["region_shares"]],
                                      *[_fmt(g["boundary_bends"][a][b], ".3f") for a, b in unordered],
                                      *[_dist(g["boundary_distance_median"][a][b]) for a, b in pairs]]) + " |")
    status = ", ".join(f"{key} {value}" for key, value in result.status.items())
    out += [
        "",
        "## Settings",
        "",
        f"- data: `toy` (seed {c.seed}), training on {n_train} points, {n_test} test points audited and drawn",
        f"- model: `{_MODEL}`, {c.epochs} epochs, batch {c.batch_size}, SGD lr {c.lr:g} (Nesterov, piecewise "
        f"schedule), {c.steps} inner PGD/WPGD steps in training, ℓ2 budget",
        f"- WPGD: the metric `{METRIC_FILE}` (the paper's C), p = {c.p:g}, no entropy term (λ = ∞)",
        f"- audit: {c.eval_steps}-step attacks, seed {c.seed}, device {c.device}",
        f"- checkpoints in `{RUNS_FOLDER}/`: {status}",
        f"- wpgdkit {__version__}; this run took {result.seconds:.0f} s"
        + (f" ({reused} of {len(result.status)} checkpoints reused)" if reused else ""),
        "",
        f"All numbers, the boundary geometry and each audit's full JSON are in [`{SUMMARY_FILE}`]({SUMMARY_FILE}).",
        "",
        "<details><summary>Commands that reproduce each checkpoint and audit</summary>",
        "",
        "```sh",
        *commands,
        "```",
        "",
        "</details>",
        "",
    ]
    return "\n".join(out)
