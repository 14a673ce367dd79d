"""``startup`` (not in the default set): commands in a fresh process against ``python -c pass`` and ``import torch``.

The commands that need no torch import none (``--version``, every ``--help``,
``datasets``, ``models``, the WordNet, uniform and file metrics and the
commands that read them; ``tests/cli/test_startup_imports.py`` checks it);
this measures what that buys on this machine. Each command runs as
``python -m wpgdkit ...`` in a new process, as a user starts it, and is timed
against the two baselines in the same rounds (A B A B ...): the interpreter
alone (``python -c pass``) and the interpreter importing torch. The first is
the floor no command goes below; the second what every command cost when
they all imported torch.
"""

from __future__ import annotations

import os
import shlex
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from wpgdkit.bench.harness import BenchConfig, BenchRow, interleaved_times, register_benchmark

__all__ = ["REFERENCES", "QUICK_COMMANDS", "startup_commands", "bench_startup"]

#: The baselines: label -> the ``python -c`` code.
REFERENCES: dict[str, str] = {"python -c pass": "pass", "python -c 'import torch'": "import torch"}
#: What ``--quick`` times: a smoke run of a few seconds.
QUICK_COMMANDS: tuple[tuple[str, ...], ...] = (("--version",), ("--help",), ("datasets",))
#: Most timed rounds of a full run: one round runs every command once and costs about a minute on a laptop.
_MAX_REPEATS = 3
_TIMEOUT_S = 600
#: The README's shell loop, as written there (full run only): a WordNet metric for four datasets, each checked.
README_LOOP = ("for ds in cifar10 cifar100 tiny-imagenet fashion-mnist; do\n"
               "  {wpgdkit} metric build --dataset \"$ds\" --source wordnet --measure wup --out \"metrics-$ds.json\" -q"
               " || exit\n"
               "  {wpgdkit} metric check \"metrics-$ds.json\" --json \"check-$ds.json\" > /dev/null || echo \"$ds failed\"\n"
               "done\n")
README_LOOP_LABEL = "README loop: metric build + check, 4 datasets"


@dataclass
class _Run:
    """One child process: its exit code, CPU seconds (user + system) and last line on stderr."""

    returncode: int
    cpu_s: float
    last_error: str


def _run(argv: Sequence[str], env: dict[str, str], cwd: str) -> _Run:
    import resource

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.run(list(argv), env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True, timeout=_TIMEOUT_S)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    lines = proc.stderr.strip().splitlines()
    return _Run(proc.returncode, cpu, lines[-1] if lines else "")


def _help_paths() -> list[tuple[str, ...]]:
    """Every command and sub-command of the ``wpgdkit`` app, walked from its command tree."""
    from typer.main import get_command

    from wpgdkit.cli import app
    from wpgdkit.cli._lazy import walk_commands

    return [path for path, _ in walk_commands(get_command(app))]


def startup_commands(folder: Path, *, quick: bool) -> list[tuple[str, ...]]:
    """The argument lists timed: the quick set, or ``--version``, every ``--help``, the listings and the metrics.

    The metric commands read ``wordnet.csv`` and ``uniform.csv`` in ``folder``
    (made before timing) and write their own outputs there.
    """
    if quick:
        return list(QUICK_COMMANDS)
    w, u = str(folder / "wordnet.csv"), str(folder / "uniform.csv")
    return [
        ("--version",), ("--help",), *((*path, "--help") for path in _help_paths()),
        ("datasets",), ("models",),
        ("metric", "build", "--dataset", "cifar10", "--source", "wordnet", "--out", str(folder / "w.csv"), "-q"),
        ("metric", "build", "--dataset", "cifar10", "--source", "uniform", "--out", str(folder / "u.csv"), "-q"),
        ("metric", "build", "--source", "file", "--input", w, "--out", str(folder / "f.json"), "-q"),
        ("metric", "check", w), ("metric", "show", w), ("metric", "show", w, "--plot", str(folder / "w.png")),
        ("metric", "compare", w, u),
    ]


def _inputs(folder: Path, env: dict[str, str], cwd: str) -> None:
    """The metric files the full run's commands read (untimed; the WordNet build also fills the cache)."""
    wpgdkit = [sys.executable, "-m", "wpgdkit"]
    _run([*wpgdkit, "metric", "build", "--dataset", "cifar10", "--source", "uniform", "--out",
          str(folder / "uniform.csv"), "-q"], env, cwd)
    built = _run([*wpgdkit, "metric", "build", "--dataset", "cifar10", "--source", "wordnet", "--out",
                  str(folder / "wordnet.csv"), "-q"], env, cwd)
    if built.returncode != 0:  # no WordNet here: the commands that read a metric read the uniform one
        (folder / "wordnet.csv").write_bytes((folder / "uniform.csv").read_bytes())


@register_benchmark("startup", "wall and CPU time of commands in a fresh process (--version, every --help, "
                               "datasets, models, the WordNet, uniform and file metrics) vs python -c pass and "
                               "python -c 'import torch'", default=False)
def bench_startup(config: BenchConfig) -> list[BenchRow]:
    """Each command's start-to-exit time in a new process against the two baselines.

    Commands: ``--version``, ``--help`` of the app and of every command and
    sub-command (walked from the app's command tree, so a new command is
    timed too), ``datasets``, ``models``, ``metric build`` from WordNet, the
    uniform metric and a file, ``metric check``, ``show`` (with and without
    ``--plot``) and ``compare`` (quick: ``--version``, ``--help`` and
    ``datasets``). Each round runs ``python -c pass``, ``python -c 'import
    torch'`` and every command once, in that order; ``config.warmup`` untimed
    rounds first, then ``min(config.repeats, 3)`` timed ones (quick: at most
    one untimed round, one timed); medians. Two rows
    per command, one per baseline: ``ours_s`` and ``reference_s`` are wall
    seconds, ``ratio`` = reference / ours (below 1 against ``pass``: the
    command's cost over a bare interpreter; above 1 against torch: how many
    times faster than importing torch). The children's CPU seconds (user +
    system, from ``getrusage(RUSAGE_CHILDREN)``) are in ``extra``. The
    children get a new, empty ``WPGDKIT_CACHE_DIR`` (filled by an untimed
    WordNet build) and otherwise this process's environment, less
    ``PYTHONDONTWRITEBYTECODE`` (a user's install runs from cached bytecode).
    A full run also times the README's shell loop (:data:`README_LOOP`: build
    and check a WordNet metric for four datasets, in one ``sh``; the
    WordNet and check caches warm from the untimed rounds). A command that
    fails gives skipped rows with its error line.
    """
    repeats = 1 if config.quick else min(config.repeats, _MAX_REPEATS)
    warmup = min(config.warmup, 1) if config.quick else config.warmup
    with tempfile.TemporaryDirectory(prefix="wpgdkit-bench-startup-") as tmp:
        folder = Path(tmp)
        # A user's installed package runs from cached bytecode: the untimed rounds write it if it is missing.
        env = {**{k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"},
               "WPGDKIT_CACHE_DIR": str(folder / "cache")}
        cwd = str(folder)
        if not config.quick:
            _inputs(folder, env, cwd)
        commands = startup_commands(folder, quick=config.quick)
        argvs: dict[str, list[str]] = {label: [sys.executable, "-c", code] for label, code in REFERENCES.items()}
        argvs.update({_label(args): [sys.executable, "-m", "wpgdkit", *args] for args in commands})
        if not config.quick:
            script = README_LOOP.format(wpgdkit=shlex.join([sys.executable, "-m", "wpgdkit"]))
            argvs[README_LOOP_LABEL] = ["sh", "-c", script]
        runs: dict[str, list[_Run]] = {label: [] for label in argvs}
        times = interleaved_times(
            {label: (lambda argv=argv: _run(argv, env, cwd)) for label, argv in argvs.items()},
            repeats=repeats, warmup=warmup, on_result=lambda label, run: runs[label].append(run),
        )
    rows = []
    labelled = [(_label(args), args) for args in commands]
    if not config.quick:
        labelled.append((README_LOOP_LABEL, ("sh", "-c", "<the README loop>")))
    for label, args in labelled:
        for reference in REFERENCES:
            rows.append(_row(label, args, reference, times, runs, repeats))
    return rows


def _shown(args: Sequence[str]) -> list[str]:
    """The arguments with the temporary folder's paths cut to their file names."""
    return [Path(a).name if os.sep in a else a for a in args]


def _label(args: Sequence[str]) -> str:
    """The command as a user types it (paths cut to their names)."""
    return " ".join(["wpgdkit", *_shown(args)])


def _row(label: str, args: Sequence[str], reference: str, times: dict[str, list[float]],
         runs: dict[str, list[_Run]], repeats: int) -> BenchRow:
    for who in (label, reference):
        failed = next((run for run in runs[who] if run.returncode != 0), None)
        if failed is not None:
            return BenchRow.skipped("startup", label, "fresh process", reference,
                                    f"{who} exited {failed.returncode}: {failed.last_error or 'no message'}",
                                    unit="process")
    ours_cpu = statistics.median(run.cpu_s for run in runs[label])
    reference_cpu = statistics.median(run.cpu_s for run in runs[reference])
    return BenchRow.timed(
        "startup", label, "fresh process", reference, statistics.median(times[label]),
        statistics.median(times[reference]), unit="process", note="wall time; the children's CPU time in extra",
        extra={"args": _shown(args), "repeats": repeats,
               "ours_cpu_s": ours_cpu, "reference_cpu_s": reference_cpu,
               "cpu_ratio": reference_cpu / ours_cpu if ours_cpu > 0 else None,
               "ours_wall_s": times[label], "reference_wall_s": times[reference]},
    )
