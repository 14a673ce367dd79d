"""The root command: version, help on every command, python -m, the datasets list."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from typer.main import get_command
from typer.testing import CliRunner

from wpgdkit import __version__
from wpgdkit.cli import app
from wpgdkit.cli._lazy import walk_commands
from wpgdkit.datasets import list_datasets

runner = CliRunner()


COMMANDS = [path for path, _ in walk_commands(get_command(app))]


def test_version():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.stdout.strip() == f"wpgdkit {__version__}"


def test_commands_include_the_metric_group():
    assert {("metric", "build"), ("metric", "check"), ("metric", "show"), ("metric", "compare"), ("datasets",)} <= set(COMMANDS)


@pytest.mark.parametrize("path", COMMANDS, ids=" ".join)
def test_help_on_every_command(path):
    result = runner.invoke(app, [*path, "--help"])
    assert result.exit_code == 0, result.stderr
    assert "Usage" in result.stdout


def test_build_help_lists_registry_choices():
    result = runner.invoke(app, ["metric", "build", "--help"], env={"COLUMNS": "250"})
    for name in list_datasets():
        assert name in result.stdout


def test_no_arguments_prints_help():
    result = runner.invoke(app, [])
    assert result.exit_code == 0
    assert "metric" in result.stdout


def test_unknown_command_is_one_line_exit_2():
    result = runner.invoke(app, ["frobnicate"])
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("wpgdkit: error:")


def test_python_dash_m():
    out = subprocess.run([sys.executable, "-m", "wpgdkit", "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == f"wpgdkit {__version__}"


def test_datasets_json_lists_the_registry():
    result = runner.invoke(app, ["datasets", "--json", "-"])
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    by_name = {d["name"]: d for d in data["datasets"]}
    assert sorted(by_name) == list_datasets()
    assert by_name["cifar100"]["num_classes"] == 100
    assert by_name["tiny-imagenet"]["input_shape"] == [3, 64, 64]
    assert by_name["toy"]["synsets"] is None
    assert by_name["cifar10"]["synsets"][3] == "cat.n.01"


# --- output files: every --json/--out/--plot file is checked while the flags are parsed ----

from wpgdkit.cli._common import output_file  # noqa: E402

# Options whose value is a folder: checked by output_folder instead.
_NOT_OUTPUT_FILES = {("demo", "--out"), ("reproduce", "--out"), ("audit", "--plots")}


def _commands():
    root = get_command(app)
    for path in COMMANDS:
        command = root
        for name in path:
            command = command.commands[name]
        if not hasattr(command, "commands"):
            yield path, command


def _output_file_options():
    for path, command in _commands():
        for param in command.params:
            if getattr(param.callback, "__wrapped__", None) is output_file:
                yield path, param.opts[0]


OUTPUT_FILE_OPTIONS = list(_output_file_options())


def test_every_file_writing_option_is_checked_up_front():
    named = {(path, opt) for path, command in _commands() for param in command.params for opt in param.opts[:1]
             if opt in ("--json", "--out", "--plot", "--plots")}
    checked = {(path, opt) for path, opt in OUTPUT_FILE_OPTIONS}
    assert checked == {(p, o) for p, o in named if (" ".join(p), o) not in _NOT_OUTPUT_FILES}
    assert len(checked) >= 10


# The least each command needs to get past its required arguments to the option check.
_REQUIRED = {("audit",): ["missing.pt"], ("train",): ["--dataset", "toy", "--model", "mlp"],
             ("metric", "check"): ["missing.csv"], ("metric", "show"): ["missing.csv"],
             ("metric", "compare"): ["a.csv", "b.csv"], ("reproduce",): ["entropy"]}


@pytest.mark.parametrize(("path", "option"), OUTPUT_FILE_OPTIONS, ids=lambda v: " ".join(v) if isinstance(v, tuple) else v)
@pytest.mark.parametrize("where", ["folder", "under-a-file"])
def test_unwritable_output_is_one_line_before_any_work(tmp_path, monkeypatch, path, option, where, assert_one_line_error):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "taken").mkdir()
    (tmp_path / "afile").write_text("x")
    target = "taken" if where == "folder" else "afile/x.out"
    result = runner.invoke(app, [*path, *_REQUIRED.get(path, []), option, target])
    expected = "is a folder, not a file" if where == "folder" else "afile is not a folder"
    assert_one_line_error(result, f"Invalid value for '{option}'")
    assert expected in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile", "taken"] and not any((tmp_path / "taken").iterdir())


def test_every_folder_writing_option_is_checked_up_front():
    from wpgdkit.cli._common import output_folder

    checked = {(" ".join(path), param.opts[0]) for path, command in _commands() for param in command.params
               if getattr(param.callback, "__wrapped__", None) is output_folder}
    assert checked == _NOT_OUTPUT_FILES


# --- user-provided text is printed literally ------------------------------------------------------


def test_datasets_table_prints_names_and_descriptions_literally(monkeypatch):
    import wpgdkit.datasets as datasets
    from wpgdkit.datasets import DatasetSpec

    odd = DatasetSpec(name="[bold]odd[/bold]", classes=("a", "b"), input_shape=(2,), input_range=None,
                      description="made by [/red] with\x1b[2J", how_to_get="-", loader=lambda *a, **k: None)
    monkeypatch.setattr(datasets, "list_datasets", lambda: [odd.name])
    monkeypatch.setattr(datasets, "get_dataset", lambda name: odd)
    result = runner.invoke(app, ["datasets"], env={"COLUMNS": "250"})
    assert result.exit_code == 0, (result.stdout, result.stderr, result.exception)
    assert "[bold]odd[/bold]" in result.stdout
    assert "made by [/red] with\\x1b[2J" in result.stdout and "\x1b" not in result.stdout
    payload = json.loads(runner.invoke(app, ["datasets", "--json", "-"]).stdout)
    assert payload == {"datasets": [odd.to_dict()]}
