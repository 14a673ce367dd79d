"""The ``wpgdkit`` command line: a thin layer over the library.

Each command group is a module composed here with ``add_typer``. Every error
from bad input ends as one line on stderr and exit code 2
(:class:`~wpgdkit.cli._common.OneLineErrorGroup`).
"""

from __future__ import annotations

from typing import Annotated, Optional

import typer
from rich.table import Table

from wpgdkit import __version__
from wpgdkit.cli import metric
from wpgdkit.cli.audit import audit
from wpgdkit.cli.bench import bench
from wpgdkit.cli.demo import demo
from wpgdkit.cli.reproduce import reproduce
from wpgdkit.cli.models import models
from wpgdkit.cli.train import train
from wpgdkit.cli._common import OneLineErrorGroup, safe, stdout, write_json, output_file

app = typer.Typer(
    name="wpgdkit",
    cls=OneLineErrorGroup,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Cost-sensitive adversarial robustness with Wasserstein PGD: label metrics, training, audits.",
)
app.add_typer(metric.app, name="metric")
app.command("train")(train)
app.command("models")(models)
app.command("audit")(audit)
app.command("bench")(bench)
app.command("reproduce")(reproduce)
app.command("demo")(demo)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"wpgdkit {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        Optional[bool], typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = None,
) -> None:
    """Cost-sensitive adversarial robustness with Wasserstein PGD (WPGD)."""


@app.command()
def datasets(
    json_out: Annotated[Optional[str], typer.Option("--json", help="Write the list as JSON to PATH, or - for stdout.", callback=output_file)] = None,
) -> None:
    """List the registered datasets: classes, input shape, WordNet synsets, how to get them."""
    from wpgdkit.datasets import get_dataset, list_datasets

    specs = [get_dataset(name) for name in list_datasets()]
    if json_out is not None:
        write_json({"datasets": [s.to_dict() for s in specs]}, json_out)
        if json_out == "-":
            return
    table = Table()
    for col in ("name", "classes", "input", "WordNet", "description"):
        table.add_column(col)
    for s in specs:
        table.add_row(safe(s.name), str(s.num_classes), "×".join(map(str, s.input_shape)),
                      "yes" if s.synsets else "-", safe(s.description))
    stdout.print(table)


def main() -> None:
    """Console-script entry point."""
    app()
