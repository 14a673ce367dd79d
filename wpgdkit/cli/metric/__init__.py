"""``wpgdkit metric``: build, check, show and compare label metrics.

Each sub-command is a module of its own, imported when it is called
(:class:`~wpgdkit.cli._lazy.LazyGroup`): ``metric check`` on a file reads it,
validates it and prints its report without importing the dataset and model
registries that ``metric build`` needs.
"""

from __future__ import annotations

import typer

from wpgdkit.cli._lazy import LazyGroup

__all__ = ["COMMANDS", "app"]

#: The sub-commands in ``--help`` order: ``"module:function"`` and the first paragraph of its help.
COMMANDS: dict[str, tuple[str, str]] = {
    "build": ("wpgdkit.cli.metric.build:build",
              "Build a label metric from WordNet, a linear classifier, a trained network, the uniform metric or a "
              "file."),
    "check": ("wpgdkit.cli.metric.check:check",
              "Validate a metric, then check the closed-form Wasserstein distance against POT."),
    "show": ("wpgdkit.cli.metric.show:show",
             "Summarise a metric: each class's nearest and farthest classes, structure, provenance."),
    "compare": ("wpgdkit.cli.metric.compare:compare",
                "Correlate two metrics over their off-diagonal entries (Pearson and Spearman)."),
}


class MetricGroup(LazyGroup):
    """``wpgdkit metric``: its sub-commands' modules are imported when one is looked up."""

    lazy_commands = COMMANDS


app = typer.Typer(
    cls=MetricGroup,
    no_args_is_help=True,
    help="Build, check, show and compare label metrics (K×K class-cost matrices).",
)
