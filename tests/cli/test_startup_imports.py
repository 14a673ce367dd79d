"""Commands that need no torch import no torch: each one in a fresh interpreter.

``--version``, ``--help`` of every command and sub-command (walked from the
app's command tree, so a new command is covered without editing this file),
``datasets``, ``models`` (without ``--parameters``) and ``metric
build/check/show/compare`` for the WordNet, uniform and file metrics. A
command's module is imported when it is looked up, and the root ``--help``
lists the commands' summaries without importing them; the last tests check
those summaries are the commands' own.
"""

from __future__ import annotations

import inspect
import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.main import get_command

from wpgdkit.cli import COMMANDS, app
from wpgdkit.cli._lazy import walk_commands
from wpgdkit.resources import metrics_dir

# Runs the CLI's entry point with the argument list in sys.argv[1] (JSON), then reports, on a line of its own
# on stderr, the exit code and which of the watched modules the process imported.
_CHILD = """
import json, sys
args = json.loads(sys.argv[1])
sys.argv = ["wpgdkit", *args]
code = 0
try:
    from wpgdkit.cli import main
    main()
except SystemExit as exc:
    code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
finally:
    watched = ("torch", "numpy", "matplotlib", "nltk", "ot", "scipy", "pandas", "sklearn", "torchvision", "typer",
               "pydantic")
    sys.stderr.write("\\nSTARTUP " + json.dumps({"code": code, "imported": [m for m in watched if m in sys.modules]})
                     + "\\n")
sys.exit(code)
"""

_TIMEOUT_S = 300


def run_fresh(*args: str) -> tuple[dict, str]:
    """``wpgdkit ARGS`` in a new interpreter: its report (``code``, ``imported``) and its stderr without it."""
    proc = subprocess.run([sys.executable, "-c", _CHILD, json.dumps(list(args))], capture_output=True, text=True,
                          timeout=_TIMEOUT_S)
    head, _, report = proc.stderr.rpartition("\nSTARTUP ")
    assert report, f"no report from the child (exit {proc.returncode}): {proc.stderr[-2000:]}"
    result = json.loads(report)
    assert proc.returncode == result["code"]
    return result, head


COMMAND_PATHS = [(), *(path for path, _ in walk_commands(get_command(app)))]


def assert_no_torch(result: dict, stderr: str, code: int = 0) -> None:
    assert result["code"] == code, stderr[-2000:]
    assert "torch" not in result["imported"], result


def test_import_wpgdkit_and_its_registries_import_no_torch():
    code = ("import sys, wpgdkit\n"
            "from wpgdkit.datasets import get_dataset, list_datasets\n"
            "from wpgdkit.models import get_model_spec, list_models\n"
            "from wpgdkit.labelmetric import list_sources\n"
            "from wpgdkit.bench import list_benchmarks\n"
            "from wpgdkit.audit import SCORE_NORMALIZATIONS\n"
            "assert list_datasets() and list_models() and list_sources() and list_benchmarks()\n"
            "assert get_dataset('cifar10').num_classes == 10 and get_model_spec('wrn-28-10').input_shapes\n"
            "print('torch' in sys.modules)")
    first = subprocess.run([sys.executable, "-c", "import sys, wpgdkit; print('torch' in sys.modules)"],
                           capture_output=True, text=True, check=True, timeout=_TIMEOUT_S)
    assert first.stdout.strip() == "False"
    registries = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=_TIMEOUT_S)
    assert registries.returncode == 0, registries.stderr
    assert registries.stdout.strip() == "False"


def test_version_imports_neither_torch_nor_numpy_nor_typer():
    result, stderr = run_fresh("--version")
    assert_no_torch(result, stderr)
    assert result["imported"] == [], result  # not even NumPy or typer: answered before the app is built


@pytest.mark.parametrize("args", [("--help",), ()], ids=["--help", "no arguments"])
def test_root_help_imports_no_command_module_and_no_typer(args):
    result, stderr = run_fresh(*args)
    assert_no_torch(result, stderr)
    assert result["imported"] == [], result  # Rich only: the page is written without typer (cli/_root_help.py)


@pytest.mark.parametrize("path", COMMAND_PATHS[1:], ids=" ".join)
def test_help_of_every_command_imports_no_torch(path):
    result, stderr = run_fresh(*path, "--help")
    assert_no_torch(result, stderr)


def test_datasets_imports_no_torch():
    result, stderr = run_fresh("datasets")
    assert_no_torch(result, stderr)


def test_models_imports_no_torch_without_parameters():
    result, stderr = run_fresh("models", "--json", "-")
    assert_no_torch(result, stderr)


# --- metrics --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def shipped() -> Path:
    """The shipped CIFAR-10 WordNet metric: input of check, show and compare without needing WordNet here."""
    return metrics_dir() / "cifar10-wordnet.csv"


def test_wordnet_build_imports_no_torch(tmp_path):
    out = tmp_path / "wordnet.csv"
    result, stderr = run_fresh("metric", "build", "--dataset", "cifar10", "--source", "wordnet", "--out", str(out))
    if result["code"] == 2 and "WordNet" in stderr:
        pytest.skip(f"no WordNet here: {stderr.strip().splitlines()[-1]}")
    assert_no_torch(result, stderr)
    assert out.is_file()


def test_uniform_build_imports_no_torch(tmp_path):
    out = tmp_path / "uniform.json"
    result, stderr = run_fresh("metric", "build", "--dataset", "cifar10", "--source", "uniform", "--out", str(out))
    assert_no_torch(result, stderr)
    assert json.loads(out.read_text())["classes"][:2] == ["airplane", "automobile"]


def test_file_build_imports_no_torch(tmp_path, shipped):
    out = tmp_path / "copy.npy"
    result, stderr = run_fresh("metric", "build", "--source", "file", "--input", str(shipped), "--out", str(out))
    assert_no_torch(result, stderr)
    assert out.is_file()


def test_check_imports_no_torch(shipped):
    # POT imports torch for its torch backend unless told not to; the check hands it NumPy arrays only.
    # --no-cache: POT runs whatever an earlier test left in this session's cache folder.
    result, stderr = run_fresh("metric", "check", str(shipped), "--samples", "50", "--sinkhorn-samples", "2",
                               "--no-cache")
    assert_no_torch(result, stderr)
    assert "ot" in result["imported"]


def test_show_imports_neither_torch_nor_matplotlib(shipped):
    result, stderr = run_fresh("metric", "show", str(shipped))
    assert_no_torch(result, stderr)
    assert "matplotlib" not in result["imported"]


def test_show_with_a_plot_imports_no_torch(tmp_path, shipped):
    png = tmp_path / "heatmap.png"
    result, stderr = run_fresh("metric", "show", str(shipped), "--plot", str(png))
    assert_no_torch(result, stderr)
    assert png.is_file() and "matplotlib" in result["imported"]


def test_show_refuses_a_plot_ending_before_matplotlib_loads(tmp_path, shipped):
    result, stderr = run_fresh("metric", "show", str(shipped), "--plot", str(tmp_path / "heatmap.bmp"))
    assert_no_torch(result, stderr, code=2)
    assert "matplotlib" not in result["imported"], result
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("wpgdkit: error:") and "heatmap.bmp" in lines[0], stderr
    assert not (tmp_path / "heatmap.bmp").exists()


def test_compare_imports_no_torch(tmp_path, shipped):
    uniform = tmp_path / "uniform.csv"
    built, stderr = run_fresh("metric", "build", "--dataset", "cifar10", "--source", "uniform", "--out", str(uniform))
    assert built["code"] == 0, stderr
    result, stderr = run_fresh("metric", "compare", str(shipped), str(uniform), "--json", "-")
    assert_no_torch(result, stderr)


# --- the root --help's summaries ------------------------------------------------------------------------


@pytest.mark.parametrize("group", [(), ("metric",)], ids=["wpgdkit", "wpgdkit metric"])
def test_every_lazy_command_has_its_own_summary(group):
    from wpgdkit.cli import metric

    root = get_command(app)
    command_group, table = (root, COMMANDS) if not group else (root.commands["metric"], metric.COMMANDS)
    assert list(command_group.list_commands(None)) == list(table)
    for name, (target, summary) in table.items():
        command = command_group.commands[name]  # builds it
        own = inspect.cleandoc(command.help or "").split("\n\n")[0].strip().replace("\n", " ")
        assert summary == own, (
            f"the table of {' '.join(['wpgdkit', *group])} lists {summary!r} for {name}; its help starts {own!r}")


def test_metric_check_imports_neither_the_dataset_nor_the_model_registry(tmp_path):
    # Each metric sub-command is a module of its own: check reads a file, build needs the registries.
    code = ("import sys\n"
            "sys.argv = ['wpgdkit', 'metric', 'check', sys.argv[1], '--samples', '5', '--sinkhorn-samples', '0',\n"
            "            '--json', '-']\n"
            "from wpgdkit.cli import main\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in ('wpgdkit.datasets', 'wpgdkit.models', 'wpgdkit.cli._dataopts',\n"
            "                         'wpgdkit.cli._modelopts', 'wpgdkit.cli.metric.build') if m in sys.modules))\n")
    done = subprocess.run([sys.executable, "-c", code, str(metrics_dir() / "cifar10-wordnet.csv")], capture_output=True,
                          text=True, timeout=_TIMEOUT_S)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"
