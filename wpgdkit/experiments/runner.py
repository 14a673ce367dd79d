"""What every experiment shares: run files, train-or-reuse, commands, and the report's pieces.

One policy for "is this the same run?": a run's file is named by a readable
stem of its settings plus the first characters of
:meth:`~wpgdkit.checkpoint.RunSettings.fingerprint` (``toy-mlp-pgd-l2-eps0.4-k5-e2-n240-s0-3fa9c1d2.pt``),
so runs of different settings never share a file, and :func:`train_or_reuse`
reuses or resumes a file only when its recorded fingerprint equals the
requested run's. ``wpgdkit demo`` and ``wpgdkit reproduce`` both go through it.

Commands are rendered here once (:func:`train_command`, :func:`audit_command`,
:func:`command_line`), each flag from the config's own values, so a report's
commands reproduce exactly what ran. Numbers are written so they read back to
the same float (``0.4``, not ``0.40000000000000002``; ``4/255`` in full).
"""

from __future__ import annotations

import dataclasses
import math
import shlex
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from wpgdkit.errors import WpgdkitError

__all__ = [
    "RUNS_FOLDER",
    "FINGERPRINT_CHARS",
    "run_stem",
    "run_file_name",
    "place_run",
    "run_status",
    "train_or_reuse",
    "num",
    "command_line",
    "train_command",
    "audit_command",
    "display_path",
    "fmt",
    "md_table",
    "write_results_json",
    "save_plot",
]

RUNS_FOLDER = "runs"
#: Hex characters of the fingerprint in a run's file name (32 bits: a collision is retrained over, never reused).
FINGERPRINT_CHARS = 8


# --- run files ---------------------------------------------------------------------------


def num(value: float | int) -> str:
    """A number as short as reads back to the same float: ``0.4``, ``1``, ``0.01568627450980392``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, int):
        return str(value)
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    short = f"{value:g}"
    return short if float(short) == value else repr(float(value))


def run_stem(config: Any) -> str:
    """A readable name of a :class:`~wpgdkit.training.TrainConfig`'s run (without the fingerprint)."""
    d = config.data
    from wpgdkit.checkpoint import FAST_METHODS, METRIC_METHODS

    parts = [d.dataset, config.model, config.method]
    if config.method in METRIC_METHODS:
        parts.append(f"p{config.p:g}")
    if d.classes:
        parts.append("c" + "-".join(str(c) for c in d.classes))
    if d.imbalance is not None:
        parts.append(f"imb{d.imbalance:g}")
    if config.method != "ce":
        parts += [f"{config.norm}-eps{config.eps:.4g}", "k1" if config.method in FAST_METHODS else f"k{config.steps}"]
    parts += [f"e{config.epochs}", f"n{d.limit}" if d.limit is not None else "nall", f"s{config.seed}"]
    return "-".join(parts).replace("/", "_").replace(" ", "_")


def run_file_name(config: Any) -> str:
    """``<stem>-<fingerprint[:8]>.pt``: the file of exactly this run."""
    from wpgdkit.training import run_settings

    return f"{run_stem(config)}-{run_settings(config).fingerprint()[:FINGERPRINT_CHARS]}.pt"


def place_run(config: Any, runs: str | Path) -> Any:
    """``config`` with ``out`` set to its run file in the folder ``runs``."""
    return dataclasses.replace(config, out=str(Path(runs) / run_file_name(config)))


def run_status(config: Any) -> str:
    """What :func:`train_or_reuse` would do with ``config.out``: ``"reused"``, ``"resumed"`` or ``"trained"``."""
    from wpgdkit.training import load_checkpoint, run_settings

    path = Path(config.out)
    if not path.exists():
        return "trained"
    try:
        state = load_checkpoint(path)
    except WpgdkitError:
        return "trained"  # unreadable: trained over
    if state.fingerprint() != run_settings(config).fingerprint():
        return "trained"  # another run in this file (a hash-prefix collision or a hand-placed file)
    return "reused" if state.complete else "resumed"


def train_or_reuse(config: Any, progress: Any | None = None) -> tuple[Path, str]:
    """Train the run of ``config`` into ``config.out``, resume it, or reuse it when complete.

    Parameters
    ----------
    config : TrainConfig
        ``out`` is the run's file (see :func:`place_run`); ``resume`` and
        ``force`` are set here.
    progress : optional
        The training reporter handed to :func:`wpgdkit.training.train`.

    Returns
    -------
    path, status : Path, {"reused", "resumed", "trained"}
        ``reused`` only for a complete file whose fingerprint equals the
        requested run's; ``resumed`` for an incomplete one of the same run;
        anything else there (unreadable, another run) is trained over.
    """
    from wpgdkit.training import train

    status = run_status(config)
    path = Path(config.out)
    if status == "reused":
        return path, status
    if status == "resumed":
        train(dataclasses.replace(config, resume=True, force=False), progress=progress)
    else:
        train(dataclasses.replace(config, resume=False, force=path.exists()), progress=progress)
    return path, status


# --- commands ----------------------------------------------------------------------------


def command_line(words: Sequence[str], flags: Iterable[tuple[str, Any]]) -> str:
    """``words`` then each ``(flag, value)``: a value of True is a bare flag; None and False are left out."""
    out = list(words)
    for flag, value in flags:
        if value is None or value is False:
            continue
        if value is True:
            out.append(flag)
        else:
            out += [flag, num(value) if isinstance(value, (int, float)) else str(value)]
    return shlex.join(out)


def train_command(config: Any) -> str:
    """The ``wpgdkit train`` command of a :class:`~wpgdkit.training.TrainConfig` (every setting of the run)."""
    d = config.data
    adversarial = config.method != "ce"
    from wpgdkit.checkpoint import FAST_METHODS, METRIC_METHODS

    flags: list[tuple[str, Any]] = [("--dataset", d.dataset), ("--model", config.model), ("--method", config.method)]
    if config.method in METRIC_METHODS:
        flags += [("--metric", config.metric), ("--p", float(config.p))]
        if not math.isinf(config.lam):
            flags.append(("--lam", float(config.lam)))
    if adversarial:
        flags += [("--norm", config.norm), ("--eps", float(config.eps)),
                  ("--steps", None if config.method in FAST_METHODS else config.steps),
                  ("--step-size", None if config.step_size is None else float(config.step_size))]
    if d.classes:
        flags.append(("--classes", ",".join(str(c) for c in d.classes)))
    if d.imbalance is not None:
        flags.append(("--imbalance", float(d.imbalance)))
    flags += [("--imbalance-class", d.imbalance_class), ("--limit", d.limit),
              ("--val-fraction", float(d.val_fraction)), ("--no-augment", not d.augment),
              ("--eval-steps", config.eval_steps), ("--epochs", config.epochs), ("--batch-size", config.batch_size),
              ("--lr", float(config.lr)), ("--momentum", float(config.momentum)),
              ("--weight-decay", float(config.weight_decay)), ("--schedule", config.schedule),
              ("--data-dir", d.data_dir), ("--download", d.download), ("--seed", config.seed),
              ("--device", config.device), ("--out", config.out)]
    return command_line(["wpgdkit", "train"], flags)


def audit_command(config: Any) -> str:
    """The ``wpgdkit audit`` command of an :class:`~wpgdkit.audit.AuditConfig`."""
    c = config
    flags: list[tuple[str, Any]] = [("--baseline", c.baseline), ("--reference", c.reference), ("--metric", c.metric),
                                    ("--attack", c.attack)]
    if c.attack == "wpgd":
        flags.append(("--attack-p", float(c.attack_p)))
        if not math.isinf(c.attack_lam):
            flags.append(("--attack-lam", float(c.attack_lam)))
    flags += [("--norm", c.norm), ("--eps", c.eps_text if c.eps_text else (None if c.eps is None else float(c.eps))),
              ("--steps", c.steps), ("--step-size", None if c.step_size is None else float(c.step_size)),
              ("--restarts", c.restarts if c.restarts != 1 else None), ("--limit", c.limit),
              ("--data-dir", c.data_dir), ("--seed", c.seed), ("--device", c.device)]
    return command_line(["wpgdkit", "audit", *c.checkpoints], flags)


def display_path(path: str | Path) -> str:
    """Relative to the working folder when inside it, so recorded commands run from a checkout anywhere."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


# --- report pieces -----------------------------------------------------------------------


def fmt(value: float | None, spec: str = ".2f") -> str:
    """``value`` formatted, or an en dash for None/NaN/inf."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    return format(value, spec)


def md_table(header: Sequence[str], rows: Iterable[Sequence[str]], *, numeric_right: bool = False) -> str:
    """A Markdown table (``numeric_right``: every column after the first right-aligned)."""
    header = list(header)
    rule = ["---"] + (["---:"] if numeric_right else ["---"]) * (len(header) - 1)
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(rule) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def write_results_json(payload: Any, path: str | Path) -> Path:
    """A results document, atomically (NaN as null)."""
    from wpgdkit.jsonutil import write_json

    write_json(payload, Path(path), indent=1)
    return Path(path)


def save_plot(path: str | Path, draw: Callable[[Any], None], *, size: tuple[float, float], dpi: int = 110) -> Path:
    """A new figure of ``size`` inches, drawn by ``draw(fig)``, written atomically to ``path`` and closed."""
    from wpgdkit.figures import agg_pyplot, save_figure

    plt = agg_pyplot()
    fig = plt.figure(figsize=size)
    try:
        draw(fig)
        fig.tight_layout()
        return save_figure(fig, path, dpi=dpi)
    finally:
        plt.close(fig)
