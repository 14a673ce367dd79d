"""``wpgdkit metric check``: validate a metric, then check the closed-form Wasserstein distance against POT."""

from __future__ import annotations

import os
import sys
from typing import Annotated

import numpy as np
import typer

from wpgdkit.cli._common import safe, stdout, write_json
from wpgdkit.cli.metric._shared import (
    AsymmetricOption,
    ClassListOption,
    JsonOption,
    MetricPathArgument,
    cache_option,
    load_metric_file,
    new_table,
    structure_lines,
)
from wpgdkit.errors import WpgdkitError
from wpgdkit.labelmetric.check_cache import cached_reference_check

__all__ = ["EXIT_CHECK_FAILED", "check"]

EXIT_CHECK_FAILED = 1

CheckCacheOption = cache_option(
    "Reuse the report of the same check (same matrix, classes and options, same versions of wpgdkit, NumPy, POT "
    "and SciPy)", "running POT again")



def _import_pot_for_numpy() -> None:
    """Import POT with only its NumPy backend, unless torch, JAX, TensorFlow or CuPy is loaded already.

    ``import ot`` imports every array library it finds installed, torch
    included (seconds), to accept their arrays, and scikit-learn and networkx
    for k-means and graph partitions; ``metric check`` hands it NumPy arrays
    and solves plain transport problems only. Its backend switches
    (``POT_BACKEND_DISABLE_*``) are set for the import alone and restored
    after, and the two optional libraries are hidden from it while it imports
    (it takes them as absent; a POT that needs them is imported again, plainly).
    The numbers are the same either way.
    """
    if "ot" in sys.modules:
        return
    backends = {"torch": "POT_BACKEND_DISABLE_PYTORCH", "jax": "POT_BACKEND_DISABLE_JAX",
                "tensorflow": "POT_BACKEND_DISABLE_TENSORFLOW", "cupy": "POT_BACKEND_DISABLE_CUPY"}
    keys = [key for module, key in backends.items() if module not in sys.modules and key not in os.environ]
    hidden = [name for name in ("sklearn", "networkx") if name not in sys.modules]
    try:
        os.environ.update(dict.fromkeys(keys, "1"))
        sys.modules.update(dict.fromkeys(hidden))  # None: importing them raises ImportError
        try:
            import ot  # noqa: F401
        except ImportError:
            for name in hidden:
                sys.modules.pop(name, None)
            hidden = []
            import ot  # noqa: F401,F811
    finally:
        for key in keys:
            os.environ.pop(key, None)
        for name in hidden:
            if sys.modules.get(name, False) is None:
                del sys.modules[name]


def check(
    path: MetricPathArgument,
    classes: ClassListOption = None,
    allow_asymmetric: AsymmetricOption = False,
    p: Annotated[float, typer.Option("--p", help="Power of the cost, C^p.", min=0.0)] = 1.0,
    samples: Annotated[int, typer.Option(help="Random prediction vectors compared with ot.emd2.", min=1)] = 1000,
    sinkhorn_samples: Annotated[int, typer.Option(help="How many of them also go through log-domain Sinkhorn.", min=0)] = 20,
    seed: Annotated[int, typer.Option(help="Seed of the random prediction vectors.")] = 0,
    cache: CheckCacheOption = True,
    json_out: JsonOption = None,
) -> None:
    """Validate a metric, then check the closed-form Wasserstein distance against POT.

    Lemma 4: for a one-hot target, W_p^p(onehot(k), q) = (C^p)[k]·q. The check
    compares it with ot.emd2 (to 1e-9, relative) and with log-domain Sinkhorn as
    the regularisation shrinks. Exit 0 when all holds, 1 when a check fails,
    2 for a malformed file.

    The POT report is kept in the cache folder: checking the same matrix with
    the same options again prints the same output without running (or
    importing) POT; the JSON says "cached": true. --no-cache runs it afresh.
    """
    if p <= 0:
        raise WpgdkitError(f"--p must be positive, got {p}")
    metric, report = load_metric_file(path, classes, allow_asymmetric)
    ot_report, cached = cached_reference_check(metric, p=p, samples=samples, sinkhorn_samples=sinkhorn_samples,
                                               seed=seed, use_cache=cache, prepare=_import_pot_for_numpy)
    if json_out is not None:
        write_json(
            {"path": str(path), "classes": list(metric.classes), "structure": report.to_dict(),
             "wasserstein_check": ot_report.to_dict(), "passed": ot_report.passed, "cached": cached},
            json_out,
        )
    if json_out != "-":
        console = stdout
        console.print(f"[bold]{safe(path)}[/]: {metric.num_classes} classes, valid label metric")
        for line in structure_lines(report):
            console.print(f"  {safe(line)}")
        console.print(
            f"closed form vs ot.emd2, p={p:g}, {samples} samples: max relative error "
            f"{ot_report.emd_max_relative_error:.3g} (tolerance {ot_report.emd_tolerance:g})"
        )
        if ot_report.sinkhorn:
            table = new_table(title=f"log-domain Sinkhorn, {ot_report.sinkhorn_samples} samples", title_justify="left")
            for col in ("ε / max C^p", "transport cost error", "W − entropic objective", "ε·H(q) (Lemma 4)", "plain Sinkhorn error"):
                table.add_column(col, justify="right")
            for row in ot_report.sinkhorn:
                table.add_row(
                    f"{row.reg_relative:g}", f"{row.cost_error:.2e}", f"{row.objective_gap:.6g}",
                    f"{row.expected_gap:.6g}", "nan" if np.isnan(row.plain_error) else f"{row.plain_error:.2e}",
                )
            console.print(table)
        for failure in ot_report.failures:
            console.print(f"[red]FAIL[/] {safe(failure)}")
        console.print("[green]all checks passed[/]" if ot_report.passed else "[red]check failed[/]")
    if not ot_report.passed:
        raise typer.Exit(EXIT_CHECK_FAILED)
