"""``wpgdkit demo``: the whole pipeline on the paper's toy problem, with a report and pictures."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from wpgdkit.cli._common import DeviceName, stderr, stdout, write_json, output_file, output_folder
from wpgdkit.cli._progress import RichDemoProgress
from wpgdkit.errors import WpgdkitError


def _parse_epsilons(text: str) -> tuple[float, ...]:
    from wpgdkit.budget import parse_budget

    parts = [part.strip() for part in text.split(",") if part.strip()]
    if not parts:
        raise WpgdkitError(f"--eps must list at least one budget, e.g. 0.2,0.4,0.8, got {text!r}")
    return tuple(parse_budget(part, name="--eps") for part in parts)


def demo(
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder: report.md, boundaries.png, summary.json, toy-metric.csv, checkpoints in runs/.", callback=output_folder)] = Path("wpgdkit-demo"),
    eps: Annotated[str, typer.Option(help="ℓ2 budgets, comma-separated: each trains a PGD and a WPGD model and is audited at that ε.")] = "0.2,0.4,0.8",
    p: Annotated[float, typer.Option("--p", help="Power of the metric in WPGD's loss, C^p.")] = 1.0,
    epochs: Annotated[Optional[int], typer.Option(help="Training epochs of every model (default 10; 3 with --quick).")] = None,
    limit: Annotated[Optional[int], typer.Option(help="Train on a seeded subset of N points (default all 3000; 600 with --quick).")] = None,
    test_limit: Annotated[Optional[int], typer.Option(help="Audit and draw the first N test points (default all 1500; 300 with --quick).")] = None,
    quick: Annotated[bool, typer.Option("--quick", help="A smoke run (about 15 s instead of about a minute): fewer epochs and points, rougher numbers.")] = False,
    wpgd_attack: Annotated[bool, typer.Option("--wpgd-attack/--no-wpgd-attack", help="Also audit with the WPGD attack (the attacker knows C).")] = True,
    seed: Annotated[int, typer.Option(help="Seed of the data, weights, batches and attacks.")] = 0,
    device: Annotated[DeviceName, typer.Option(help="The toy MLP is fastest on the CPU.")] = DeviceName("cpu"),
    threads: Annotated[int, typer.Option(help="torch threads (the toy MLP gains nothing from more; a busy machine loses).")] = 1,
    json_out: Annotated[Optional[str], typer.Option("--json", help="Also write summary.json's document to PATH, or - for stdout.", callback=output_file)] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress and no table; only the report's path.")] = False,
) -> None:
    """Run the paper's toy problem end to end: train CE, PGD and WPGD, audit them, draw their decision boundaries.

    Three classes in 2-D with the paper's cost matrix [[0,10,0.01],[10,0,1],[0.01,1,0]] (Sec. 3.4, Figs. 8-9).
    Writes OUT/report.md (tables and a reading computed from the numbers), OUT/boundaries.png and
    OUT/summary.json. About a minute on a 2-core CPU; an interrupted demo resumes, finished checkpoints are reused.
    """
    from wpgdkit.experiments.demo import demo_config, run_demo

    config = demo_config(quick=quick, out=str(out), epsilons=_parse_epsilons(eps), p=p, epochs=epochs, limit=limit,
                         test_limit=test_limit, wpgd_attack=wpgd_attack, seed=seed, device=device.value,
                         threads=threads)
    if quiet:
        result = run_demo(config)
    else:
        with RichDemoProgress(config.epochs) as progress:
            result = run_demo(config, progress=progress)
    if json_out is not None:
        from wpgdkit.experiments.demo import summary_dict

        write_json(summary_dict(result), json_out)
    console = stderr if json_out == "-" else stdout  # stdout carries only the JSON then
    if not quiet:
        _render(result, console)
    console.print(f"report: {result.report}", markup=False, highlight=False, soft_wrap=True)


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None or (isinstance(value, float) and not math.isfinite(value)) else format(value, spec)


def _render(result, console) -> None:
    classes, pairs, cost = result.classes, result.pairs, result.cost
    table = Table(title=f"toy problem, ℓ2 attacks ({result.seconds:.0f} s)")
    heads = ["ε", "attack", "model", "NE %", "AE %", "S", "S − S_PGD",
             *[f"{classes[i]}→{classes[j]} ({cost[i][j]:g})" for i, j in pairs]]
    for head in heads:
        table.add_column(head, justify="left" if head in ("attack", "model") else "right", no_wrap=True)
    previous = None
    for r in result.rows:
        group = (r["attack"], r["eps"])
        if previous is not None and group != previous:
            table.add_section()
        previous = group
        table.add_row(f"{r['eps']:g}", r["attack"].upper(), r["label"], _fmt(r["natural_error"], ".1f"),
                      _fmt(r["adversarial_error"], ".1f"), _fmt(r["score"], ".3f"), _fmt(r["score_delta"], "+.3f"),
                      *[_fmt(r["adversarial_rates"][f"{classes[i]}->{classes[j]}"], ".1f") for i, j in pairs])
    # Wide enough for every column: piped output defaults to 80, and a cropped table is useless in a log.
    wide = Console(file=console.file, width=max(console.width, 140), highlight=False, soft_wrap=False,
                   no_color=console.no_color, force_terminal=console.is_terminal)
    wide.print(table)
    console.print("i→j (cost): % of class-i test points the attack sends to class j.", markup=False,
                  highlight=False, soft_wrap=True)
    console.print(f"pictures: {result.boundaries}", markup=False, highlight=False, soft_wrap=True)
