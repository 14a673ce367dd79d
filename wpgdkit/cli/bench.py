"""``wpgdkit bench``: the benchmarks of :mod:`wpgdkit.bench` on this machine; names and help from its registry."""

from __future__ import annotations

import math
from typing import Annotated, Any, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from wpgdkit.bench import BenchConfig, BenchReport, default_benchmarks, get_benchmark, list_benchmarks, run_benchmarks
from wpgdkit.cli._common import DeviceName, split_list, stderr, stdout, write_json, output_file
from wpgdkit.errors import WpgdkitError

__all__ = ["bench", "format_seconds", "render_report", "benchmarks_help"]


def _names_help() -> str:
    slow = [name for name in list_benchmarks() if name not in default_benchmarks()]
    text = ", ".join(list_benchmarks())
    return text + (f" ({', '.join(slow)}: slow, run only by name)" if slow else "")


def benchmarks_help() -> str:
    """One line per registered benchmark: its name and description, the slow ones marked."""
    lines = []
    for name in list_benchmarks():
        entry = get_benchmark(name)
        mark = "" if entry.default else f" Slow, not in the default set: --only {name}."
        lines.append(escape(f"{name}: {entry.description}.{mark}"))
    return "\n".join(lines)


def bench(
    only: Annotated[
        Optional[list[str]],
        typer.Option("--only", metavar="NAME[,NAME]", help=f"Run only these benchmarks (comma-separated or repeated): {_names_help()}. Default: {', '.join(default_benchmarks())}."),
    ] = None,
    repeats: Annotated[int, typer.Option(help="Timed calls per measurement; the median is reported.")] = 5,
    warmup: Annotated[int, typer.Option(help="Untimed calls before timing.")] = 1,
    device: Annotated[DeviceName, typer.Option(help="Where the attacks run; auto picks CUDA when available (loss and WordNet run on the CPU).")] = DeviceName("auto"),
    quick: Annotated[bool, typer.Option("--quick", help="Small sizes: a smoke run of a few seconds, not numbers to quote.")] = False,
    batch: Annotated[int, typer.Option(help="Batch of the loss, the small CNN's attack step, the torchattacks comparison, the audit and the training loop.")] = 128,
    threads: Annotated[Optional[int], typer.Option(help="torch CPU threads (default: torch's choice); 1 steadies timings on a shared machine.")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the random metrics, inputs, models, samples and training runs.")] = 0,
    data_dir: Annotated[Optional[str], typer.Option(help="Where Fashion-MNIST is (torchattacks, audit, train-loop); default the usual places.")] = None,
    json_out: Annotated[Optional[str], typer.Option("--json", help="Write the results as JSON to PATH, or - for stdout.", callback=output_file)] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress and no table.")] = False,
) -> None:
    # The docstring (the --help text) is written below from the registry.
    names = None
    if only:
        try:
            names = [name for value in only for name in split_list(value)]
        except WpgdkitError as exc:
            raise WpgdkitError(f"--only: {exc}") from None
        for name in names:
            get_benchmark(name)  # an unknown name fails here, listing the valid ones
    config = BenchConfig(repeats=repeats, warmup=warmup, device=device.value, quick=quick, seed=seed, batch=batch,
                         threads=threads, data_dir=data_dir)
    config.torch_device()  # --device cuda without a GPU fails before anything runs
    if quiet:
        report = run_benchmarks(config, names)
    else:
        with stderr.status("benchmarking", spinner="dots") as status:
            def progress(name: str, index: int, total: int) -> None:
                status.update(f"benchmark {name} ({index + 1}/{total})")

            report = run_benchmarks(config, names, progress=progress)
    if json_out is not None:
        write_json(report.to_dict(), json_out)
    if not quiet:
        render_report(report, stderr if json_out == "-" else stdout)  # stdout carries only the JSON then


bench.__doc__ = f"""Time the toolkit on this machine: median of several repeats after a warm-up.

{benchmarks_help()}

Without --only, the default set runs: {', '.join(default_benchmarks())}. --quick: small sizes, a smoke run.

Example: wpgdkit bench --only loss,wordnet --json bench.json. ratio is reference / ours: above 1, ours is faster.
"""


def format_seconds(value: float | None) -> str:
    """``1.2 µs``, ``3.4 ms``, ``5.67 s``; ``-`` for None."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if value < 1e-3:
        return f"{value * 1e6:.1f} µs"
    if value < 1:
        return f"{value * 1e3:.1f} ms"
    return f"{value:.2f} s"


def _ratio(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.0f}×" if value >= 100 else f"{value:.3g}×"


def _agreement(value: float | None) -> str:
    return "-" if value is None else ("0" if value == 0 else f"{value:.1e}")


def render_report(report: BenchReport, console: Console) -> None:
    """The header lines and one table row per case."""
    # At least 200 columns: piped output defaults to 80, and a cropped table is useless in a log file.
    out = Console(file=console.file, width=max(console.width, 200), highlight=False, soft_wrap=False,
                  no_color=console.no_color, force_terminal=console.is_terminal)
    h: dict[str, Any] = report.header
    c = report.config
    load = "" if not h.get("load_average") else f", load average {h['load_average'][0]:g}"
    device = h["device"] if h["device"] == "cpu" else f"{h['device']} ({h['device_name']})"
    out.print(
        f"wpgdkit {h['wpgdkit']}, torch {h['torch']}, POT {h['pot'] or '-'}, torchattacks {h['torchattacks'] or '-'}; "
        f"device {device}; CPU {h['cpu']}, {h['threads']} torch thread(s) of {h['cpus_usable']} usable CPUs{load}",
        soft_wrap=True,
    )
    out.print(
        f"median of {c.repeats} after {c.warmup} warm-up{'s' if c.warmup != 1 else ''}"
        + ("; --quick sizes (not for quoting)" if c.quick else "")
        + "; ratio = reference / ours (above 1: ours faster); agreement = max relative difference of the values",
        soft_wrap=True,
    )
    table = Table()
    for column, justify, wrap in (("benchmark", "left", False), ("case", "left", True), ("ours", "left", True),
                                  ("reference", "left", True), ("per", "left", False), ("ours", "right", False),
                                  ("reference", "right", False), ("ratio", "right", False),
                                  ("agreement", "right", False), ("note", "left", True)):
        table.add_column(column, justify=justify, no_wrap=not wrap, min_width=30 if column == "note" else None)
    for row in report.rows:
        table.add_row(
            row.benchmark, row.case, row.ours, row.reference or "-", row.unit or "-",
            format_seconds(row.ours_s), format_seconds(row.reference_s), _ratio(row.ratio), _agreement(row.agreement),
            ("[yellow]skipped:[/yellow] " if row.status == "skipped" else "") + escape(row.note),
        )
    out.print(table)
