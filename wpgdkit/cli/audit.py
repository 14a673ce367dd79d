"""``wpgdkit audit``: natural and adversarial errors, accuracy gap, its correlation with the metric, score S."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from wpgdkit.attacks import DEFAULT_STEP_FACTOR, NORMS, list_attacks
from wpgdkit.datasets import SPLITS
from wpgdkit.audit.names import SCORE_NORMALIZATIONS
from wpgdkit.cli._common import DeviceName, choices, stderr, stdout, write_json, output_file, output_folder
from wpgdkit.cli._dataopts import (
    DATASET_HELP,
    BoundsOption,
    DataTestOption,
    ImageSizeOption,
    LabelColumnOption,
    StandardizeOption,
    SynsetsOption,
    TestFractionOption,
    data_options,
)
from wpgdkit.cli._modelopts import InputShapeOpt, MeanOpt, ModelKwargsOpt, ModelOpt, StdOpt, WeightsOpt, model_source
from wpgdkit.cli._progress import RichAuditProgress, interruptible
from wpgdkit.models.layout import MEMORY_FORMATS

AttackName = choices("AttackName", list_attacks())
NormName = choices("AuditNormName", list(NORMS))
ScoreNormalization = choices("ScoreNormalization", list(SCORE_NORMALIZATIONS))
SplitName = choices("AuditSplitName", list(SPLITS))
PlotOrder = choices("AuditPlotOrder", ["metric", "label"])
MemoryFormat = choices("AuditMemoryFormat", list(MEMORY_FORMATS))


def audit(
    checkpoints: Annotated[Optional[list[Path]], typer.Argument(
        help="Model files to audit, recognised by content: wpgdkit checkpoints (all of one dataset and class set), "
             "TorchScript archives, torch.export programs (.pt2).", show_default=False)] = None,
    model: ModelOpt = None,
    model_kwargs: ModelKwargsOpt = None,
    weights: WeightsOpt = None,
    input_shape: InputShapeOpt = None,
    mean: MeanOpt = None,
    std: StdOpt = None,
    dataset: Annotated[Optional[str], typer.Option(help=DATASET_HELP + " Needed for models that carry none; for "
                                                   "checkpoints trained on files, where the files are now.")] = None,
    classes: Annotated[Optional[str], typer.Option(help="The model's classes, in its output order, e.g. 3,5 or cat,dog "
                                                   "(models that carry none; default all the dataset's).")] = None,
    test: DataTestOption = None,
    label_column: LabelColumnOption = None,
    test_fraction: TestFractionOption = None,
    bounds: BoundsOption = "data",
    standardize: StandardizeOption = False,
    image_size: ImageSizeOption = None,
    synsets: SynsetsOption = None,
    threat_model: Annotated[Optional[str], typer.Option(help="robustbench:NAME: RobustBench's threat model, Linf, L2 or "
                                                        "corruptions (default: from --norm).")] = None,
    model_dir: Annotated[Optional[Path], typer.Option(help="robustbench:NAME: its checkpoint folder (default "
                                                      "$WPGDKIT_MODEL_DIR, else ./models).")] = None,
    download: Annotated[bool, typer.Option("--download", help="robustbench:NAME: allow downloading a missing checkpoint.")] = False,
    baseline: Annotated[Optional[Path], typer.Option(help="Model file the accuracy gap is taken against (usually the CE model).")] = None,
    reference: Annotated[Optional[Path], typer.Option(help="Model file whose S is subtracted: S − S_ref (the paper's PGD model).")] = None,
    metric: Annotated[Optional[Path], typer.Option(help="Label-metric file (default: a checkpoint's, else the dataset's shipped one).")] = None,
    attack: Annotated[AttackName, typer.Option(help="pgd: CE; wpgd: ℓ_W with the metric (attacker knows C); cost-targeted: towards each row's costliest class; autoattack: torchattacks (extra).")] = AttackName("pgd"),
    eps: Annotated[Optional[str], typer.Option(help="Budget, e.g. 8/255 (default: the checkpoints' training ε; "
                                               "required for other models).")] = None,
    norm: Annotated[Optional[NormName], typer.Option(help="Threat model (default: the checkpoints').")] = None,
    steps: Annotated[int, typer.Option(help="Attack iterations.")] = 20,
    step_size: Annotated[Optional[str], typer.Option(help=f"Step, e.g. 1/255 (default {DEFAULT_STEP_FACTOR:g}·eps/steps).")] = None,
    restarts: Annotated[int, typer.Option(help="Random restarts; each point keeps its worst.")] = 1,
    early_stop: Annotated[bool, typer.Option(
        "--early-stop", help="pgd only: stop attacking each point at its first mistake (fewer passes; AE at least the "
                             "last iterate's; S counts the first wrong class, a weaker estimate). Recorded in the "
                             "JSON.")] = False,
    cost_threshold: Annotated[Optional[float], typer.Option(
        help="τ of the cost-sensitive robust error: points sent to a class of cost ≥ τ (default: any positive cost "
             "of a binary metric, else the median off-diagonal cost).")] = None,
    plot_order: Annotated[PlotOrder, typer.Option(help="Class order of the K×K plots: the metric's hierarchy "
                                                  "(clusters contiguous, groups marked) or label order.")] = PlotOrder("metric"),
    targets: Annotated[Optional[int], typer.Option(help="worst-cost, strong: aim at each row's N costliest classes "
                                                   "(default all of them for K ≤ 20, 19 beyond).")] = None,
    attack_p: Annotated[float, typer.Option("--attack-p", help="wpgd attack: power of the metric, C^p.")] = 1.0,
    attack_lam: Annotated[str, typer.Option("--attack-lam", help="wpgd attack: λ of the entropy term ('inf' drops it).")] = "inf",
    score_normalize: Annotated[ScoreNormalization, typer.Option(help="S per class (true), per point (all) or the raw sum of eq. 7 (none).")] = ScoreNormalization("true"),
    split: Annotated[SplitName, typer.Option(help="Split to audit.")] = SplitName("test"),
    limit: Annotated[Optional[int], typer.Option(help="Audit only the first N points (of the checkpoints' classes).")] = None,
    data_dir: Annotated[Optional[Path], typer.Option(help="Dataset folder (else $WPGDKIT_DATA_DIR, ./data).")] = None,
    batch_size: Annotated[int, typer.Option(help="Points per attacked batch.")] = 256,
    device: Annotated[DeviceName, typer.Option(help="auto picks CUDA when available.")] = DeviceName("auto"),
    seed: Annotated[int, typer.Option(help="Seed of the attack's random starts (the same for every model).")] = 0,
    bins: Annotated[int, typer.Option(help="Bins of the entropy histograms.")] = 20,
    memory_format: Annotated[MemoryFormat, typer.Option(
        help="Layout of attacked conv models: auto measures whether channels_last is faster (per architecture); "
             "contiguous or channels_last force one. Results agree to rounding.")] = MemoryFormat("auto"),
    threads: Annotated[Optional[int], typer.Option(help="torch CPU threads (default: torch's choice)")] = None,
    json_out: Annotated[Optional[str], typer.Option("--json", help="Write the full audit as JSON to PATH, or - for stdout.", callback=output_file)] = None,
    plots: Annotated[Optional[Path], typer.Option(help="Write PNG heatmaps and histograms into this folder.", callback=output_folder)] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar and no tables.")] = False,
) -> None:
    """Audit models: NE, AE (per class too), confusion matrices, accuracy gap G and ρ(G, C), score S (eq. 7).

    Example: wpgdkit audit ce.pt pgd.pt wpgd-p2.5.pt --baseline ce.pt --reference pgd.pt --json audit.json.
    Each model is attacked once; dataset, classes, metric and ε come from wpgdkit checkpoints.
    Models from elsewhere, in one command: wpgdkit audit --model torchvision:resnet18 --model-kwargs
    '{"num_classes": 10}' --weights ft.pt --dataset cifar10 --eps 8/255; wpgdkit audit model.pt2 --dataset
    data.npz --eps 0.1; wpgdkit audit --model robustbench:Wong2020Fast --dataset cifar10 --eps 8/255.
    """
    from wpgdkit.audit import AuditConfig
    from wpgdkit.audit import audit as run_audit
    from wpgdkit.budget import parse_budget, parse_lam
    from wpgdkit.device import torch_threads

    from wpgdkit.cli._common import split_list

    config = AuditConfig(
        checkpoints=tuple(str(c) for c in checkpoints or ()),
        model=model_source(model, model_kwargs, weights, input_shape, mean, std), dataset=dataset,
        data_options=data_options(test, label_column, test_fraction, bounds, standardize, image_size, synsets, seed),
        classes=split_list(classes), threat_model=threat_model, model_dir=str(model_dir) if model_dir else None,
        download=download,
        baseline=str(baseline) if baseline else None, reference=str(reference) if reference else None,
        metric=str(metric) if metric else None, attack=attack.value,
        eps=parse_budget(eps, name="--eps") if eps is not None else None, eps_text=eps, norm=norm.value if norm else None,
        step_size=parse_budget(step_size, name="--step-size") if step_size is not None else None,
        steps=steps, restarts=restarts, targets=targets, cost_threshold=cost_threshold, attack_p=attack_p, attack_lam=parse_lam(attack_lam, name="--attack-lam"),
        score_normalize=score_normalize.value, split=split.value, limit=limit,
        data_dir=str(data_dir) if data_dir else None, batch_size=batch_size, device=device.value, seed=seed, bins=bins,
        memory_format=memory_format.value, early_stop=early_stop,
    )
    # Ctrl-C: the outputs are written only after the audit (the JSON atomically), so nothing is half-written then.
    with interruptible(lambda: "nothing was written"), torch_threads(threads):
        if quiet:
            report = run_audit(config)
        else:
            with RichAuditProgress() as progress:
                report = run_audit(config, progress=progress)
    if plots is not None:
        from wpgdkit.audit.plots import write_audit_plots

        # The plots are drawn in a temporary folder beside PLOTS and moved in at the end: an interrupt leaves
        # PLOTS as it was (no partial set), and the JSON is written after them.
        with interruptible(lambda: "nothing was written"):
            write_audit_plots(report, plots, order=plot_order.value)
    if json_out is not None:
        write_json(report.to_dict(), json_out)
    if not quiet:
        console = stderr if json_out == "-" else stdout  # stdout carries only the JSON then
        _render(report, console)
        if plots is not None:
            stderr.print(f"plots: {plots}/")


def _fmt(value: float | None, spec: str = ".2f") -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else format(value, spec)


def _render(report, console) -> None:
    from rich.markup import escape

    a, t = report.attack, report.attack.threat
    console.print(
        f"[bold]{escape(report.dataset)}[/bold] {report.config.split}: {len(report.labels)} points, "
        f"{report.num_classes} classes; attack {a.name} {t.norm} ε={escape(t.eps_label)}, {t.steps} steps, "
        f"{t.restarts} restart(s); metric: {escape(report.metric_origin or 'none')}"
        + (f"; ε in {escape(report.eps_units)}" if report.eps_units else "")
    )
    table = Table(title="audit" if len(report.models) == 1 else "comparison")
    for col in ("model", "method", "NE %", "AE %", "ρ Pearson/Spearman", "S", "S − S_ref", "CSRE %",
                "hdist@1 nat/adv", "severity adv", "entropy nat/adv"):
        table.add_column(col, justify="left" if col in ("model", "method") else "right", no_wrap=True)
    for m in report.models:
        method = m.method + (f" p={m.p:g}" if m.p is not None else "")
        rho = m.correlation
        table.add_row(
            escape(m.name), method, _fmt(m.natural_error), _fmt(m.adversarial_error),
            f"{_fmt(rho.pearson if rho else None, '+.3f')} / {_fmt(rho.spearman if rho else None, '+.3f')}",
            _fmt(m.score, ".4f"), _fmt(m.score_delta, "+.4f"), _fmt(m.cost_sensitive_robust_error),
            f"{_fmt(m.hdist_natural, '.3f')} / {_fmt(m.hdist_adversarial, '.3f')}", _fmt(m.severity_adversarial, ".3f"),
            f"{float(m.predictions.natural_entropy.mean()):.3f} / {float(m.predictions.adversarial_entropy.mean()):.3f}",
        )
    # At least 170 columns: piped output defaults to 80, and a cropped table is useless in a log file.
    wide = Console(file=console.file, width=max(console.width, 170), highlight=False, soft_wrap=False,
                   no_color=console.no_color, force_terminal=console.is_terminal)
    wide.print(table)
    notes = []
    if report.baseline is None:
        notes.append("no --baseline: no accuracy gap or ρ")
    if report.reference is None:
        notes.append("no --reference: no S − S_ref")
    if report.attack.early_stop:
        notes.append("early stop: each point's first mistake counts (AE ≥ the last iterate's; S is a weaker estimate)")
    if report.metric is None:
        notes.append("no metric: no S, ρ, CSRE, hdist@1 or severity")
    elif report.cost_threshold is not None:
        notes.append(f"CSRE: share of points sent to a class of cost ≥ τ = {report.cost_threshold:g}")
    if notes:
        console.print("[dim]" + "; ".join(notes) + "[/dim]")
    if report.num_classes <= PER_CLASS_TABLE_MAX:
        _render_per_class(report, wide)
    for m in report.models:
        _render_flips(report, m, console)
        _render_members(report, m, console)


def _render_members(report, m, console) -> None:
    """An ensemble adversary's members: AE and S each, and any point where a later member found less."""
    from rich.markup import escape

    from wpgdkit.audit.core import member_comparison

    members = member_comparison(report.labels, m.predictions, report.metric, report.config.score_normalize)
    if not members:
        return
    parts = [f"{escape(r['name'])} AE {r['adversarial_error']:.2f}" + (f" S {r['score']:.4f}" if r["score"] is not None else "")
             for r in members]
    flags = [f"{escape(earlier)} beat {escape(r['name'])} on {n} point(s)"
             for r in members for earlier, n in r["weaker_than"].items() if n]
    console.print(f"{escape(m.name)}: members: " + "; ".join(parts)
                  + (f" [yellow](a later member found less: {'; '.join(flags)})[/yellow]" if flags else ""))


#: The per-class table is shown up to this many classes (CIFAR-10, fault types, diagnoses); the JSON always has it.
PER_CLASS_TABLE_MAX = 20


def _render_per_class(report, console) -> None:
    """NE / AE of each true class for every model: where robustness costs accuracy, class by class."""
    from rich.markup import escape

    from wpgdkit.audit.core import per_class_errors

    table = Table(title="per class: NE % / AE %")
    table.add_column("class", no_wrap=True)
    table.add_column("points", justify="right")
    rows = [per_class_errors(report.labels, m.predictions.natural, m.predictions.adversarial, report.classes)
            for m in report.models]
    for m in report.models:
        table.add_column(escape(m.name), justify="right", no_wrap=True)
    for i, name in enumerate(report.classes):
        cells = [f"{_fmt(r[i]['natural_error'], '.1f')} / {_fmt(r[i]['adversarial_error'], '.1f')}" for r in rows]
        table.add_row(escape(name), str(rows[0][i]["points"]), *cells)
    console.print(table)


def _render_flips(report, m, console, top: int = 5) -> None:
    """The adversary's most frequent directions (paper, Fig. 11), as the audit counted them."""
    from rich.markup import escape

    flips = report.top_flips(m, top)
    if not flips:
        return
    text = ", ".join(
        f"{escape(f['from'])}→{escape(f['to'])} {f['rate']:.0%}" + (f" (c={f['cost']:g})" if f["cost"] is not None else "")
        for f in flips
    )
    console.print(f"{escape(m.name)}: most frequent adversarial flips: {text}")
