"""Plugins: models, datasets and metric sources registered by other distributions' entry points.

The unit tests feed :class:`~wpgdkit.registry.Registry` fake entry points
through a monkeypatched ``importlib.metadata.entry_points``. The end-to-end
tests install a tiny plugin distribution for real (pip, offline, into a
folder put on ``PYTHONPATH``) and drive the ``wpgdkit`` command line with it.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import subprocess
import sys
import textwrap
import types
from pathlib import Path
from types import SimpleNamespace

import pytest

from wpgdkit.errors import UnknownNameError, WpgdkitError
from wpgdkit.plugins import (
    DATASETS_GROUP,
    ENTRY_POINT_GROUPS,
    METRIC_SOURCES_GROUP,
    MODELS_GROUP,
    NO_PLUGINS_ENV,
    PluginError,
    plugins_disabled,
)
from wpgdkit.registry import Registry

GROUP = "wpgdkit.widgets"  # a group no real distribution declares


# --- fake entry points -----------------------------------------------------------


class FakeEntryPoint:
    """What the registry reads of an ``importlib.metadata.EntryPoint``, with a distribution name."""

    def __init__(self, dist: str | None, name: str, value: str, group: str = GROUP) -> None:
        self.name, self.value, self.group = name, value, group
        self.dist = SimpleNamespace(name=dist) if dist else None

    def load(self):
        return importlib.metadata.EntryPoint(self.name, self.value, self.group).load()


@pytest.fixture(autouse=True)
def _plugins_enabled(monkeypatch):
    monkeypatch.delenv(NO_PLUGINS_ENV, raising=False)


@pytest.fixture
def entry_points(monkeypatch):
    """Install fake entry points: ``entry_points(ep, ...)``; ``entry_points.calls`` counts the lookups."""
    state = SimpleNamespace(eps=[], calls=[])

    def fake(*, group: str):
        state.calls.append(group)
        return [ep for ep in state.eps if ep.group == group]

    monkeypatch.setattr(importlib.metadata, "entry_points", fake)

    def install(*eps):
        state.eps = list(eps)
        return state

    install.state = state
    return install


@pytest.fixture
def plugin_module(monkeypatch):
    """Make an importable module ``name`` with the given attributes (or import-time code)."""

    def make(name: str, **attributes) -> types.ModuleType:
        module = types.ModuleType(name)
        module.__dict__.update(attributes)
        monkeypatch.setitem(sys.modules, name, module)
        return module

    return make


def widgets() -> Registry[int]:
    reg: Registry[int] = Registry("widget", entry_point_group=GROUP)
    reg.register("builtin", 0)
    return reg


# --- Registry: loading -----------------------------------------------------------


def test_entry_points_are_read_lazily_once_in_a_stable_order(entry_points, plugin_module):
    order: list[str] = []
    reg = widgets()

    def registrar(name):
        return lambda: (order.append(name), reg.register(name, len(order)))

    plugin_module("fake_widgets", a=registrar("a"), b=registrar("b"), c=registrar("c"), d=registrar("d"))
    state = entry_points(
        FakeEntryPoint("zeta-widgets", "b", "fake_widgets:a"),
        FakeEntryPoint("Alpha-widgets", "y", "fake_widgets:b"),
        FakeEntryPoint("alpha-widgets2", "a", "fake_widgets:c"),
        FakeEntryPoint("Alpha-widgets", "x", "fake_widgets:d"),
    )
    assert state.calls == []  # building and registering into a registry reads no metadata
    assert reg.names() == ["builtin", "d", "b", "c", "a"]  # by distribution (case-blind), then entry point
    assert "a" in reg and len(reg) == 5 and list(reg) == reg.names() and reg.get("c") == 3
    assert state.calls == [GROUP]  # once, whatever is read after


@pytest.mark.parametrize("read", [len, list, lambda r: "x" in r, lambda r: r.get("builtin"), Registry.names])
def test_every_read_loads_the_plugins(entry_points, read):
    state = entry_points()
    reg = widgets()
    read(reg)
    assert state.calls == [GROUP]


def test_a_module_entry_point_registers_by_being_imported(entry_points, plugin_module, monkeypatch, tmp_path):
    reg = widgets()
    plugin_module("fake_widget_holder", reg=reg)
    # An entry point naming a module: its import-time code (decorators, here a call) registers.
    (tmp_path / "fake_widget_module.py").write_text(
        "import sys\nsys.modules['fake_widget_holder'].reg.register('from-module', 7)\n", encoding="utf-8"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    entry_points(FakeEntryPoint("mod-widgets", "m", "fake_widget_module"))
    try:
        assert reg.names() == ["builtin", "from-module"] and reg.plugin_errors == ()
    finally:
        sys.modules.pop("fake_widget_module", None)


def test_a_registration_reading_the_registry_does_not_recurse(entry_points, plugin_module):
    reg = widgets()
    seen = {}

    def register():
        # A plugin may look at what exists before adding to it.
        seen["names"], seen["builtin"] = reg.names(), reg.get("builtin")
        reg.register("late", 1)

    plugin_module("fake_reader", register=register)
    state = entry_points(FakeEntryPoint("reader", "r", "fake_reader:register"))
    assert reg.names() == ["builtin", "late"]
    assert seen == {"names": ["builtin"], "builtin": 0} and state.calls == [GROUP]


def test_no_plugins_env_disables_loading(entry_points, plugin_module, monkeypatch):
    plugin_module("fake_env", register=lambda: reg.register("plugged", 1))
    state = entry_points(FakeEntryPoint("env", "e", "fake_env:register"))
    monkeypatch.setenv(NO_PLUGINS_ENV, "1")
    assert plugins_disabled()
    reg = widgets()
    assert reg.names() == ["builtin"] and state.calls == []
    monkeypatch.setenv(NO_PLUGINS_ENV, "0")  # 0 (or empty) means enabled
    assert not plugins_disabled()
    reg = widgets()
    assert reg.names() == ["builtin", "plugged"]


def test_copy_holds_the_plugins_and_never_reloads_them(entry_points, plugin_module):
    calls = []
    reg = widgets()
    plugin_module("fake_copy", register=lambda: (calls.append(1), reg.register("plugged", 1)))
    state = entry_points(FakeEntryPoint("copy", "c", "fake_copy:register"))
    other = reg.copy()
    other.register("extra", 2)
    assert other.names() == ["builtin", "plugged", "extra"] and reg.names() == ["builtin", "plugged"]
    assert calls == [1] and state.calls == [GROUP] and other.entry_point_group == GROUP


def test_a_registry_without_group_reads_no_metadata(entry_points):
    state = entry_points()
    reg: Registry[int] = Registry("widget")
    reg.register("a", 1)
    assert reg.names() == ["a"] and reg.plugin_errors == () and state.calls == []


# --- Registry: failures ------------------------------------------------------------


def test_a_broken_plugin_is_raised_on_get_and_listing_still_works(entry_points, plugin_module):
    reg = widgets()
    plugin_module("fake_good", register=lambda: reg.register("good", 1))
    entry_points(
        FakeEntryPoint("widgets-broken", "bad", "fake_missing_module_xyz:register"),
        FakeEntryPoint("widgets-good", "good", "fake_good:register"),
    )
    # Listing gives what did register: the CLI builds --help choices from it at import.
    assert reg.names() == ["builtin", "good"] and "good" in reg and len(reg) == 2
    for name in ("builtin", "good", "unknown"):
        with pytest.raises(PluginError) as info:
            reg.get(name)
        message = str(info.value)
        assert message.startswith(
            f"plugin 'widgets-broken' ({GROUP}: bad = fake_missing_module_xyz:register) failed: "
            "ModuleNotFoundError: No module named 'fake_missing_module_xyz'"
        ), message
        assert message.endswith(f"; set {NO_PLUGINS_ENV}=1 to run without plugins") and "\n" not in message
        assert isinstance(info.value, WpgdkitError) and isinstance(info.value.__cause__, ImportError)
    assert [type(e) for e in reg.plugin_errors] == [PluginError]


def test_a_half_registered_plugin_is_taken_back(entry_points, plugin_module):
    reg = widgets()

    def register():
        reg.register("half", 1)
        raise RuntimeError("boom\nsecond line")

    plugin_module("fake_half", register=register)
    entry_points(FakeEntryPoint("half", "h", "fake_half:register"))
    assert reg.names() == ["builtin"]
    with pytest.raises(PluginError, match=r"^plugin 'half' \(wpgdkit.widgets: h = fake_half:register\) failed: "
                                          r"RuntimeError: boom second line;"):
        reg.get("builtin")


def test_a_clash_names_both_registrations(entry_points, plugin_module):
    reg = widgets()
    plugin_module(
        "fake_clash",
        builtin=lambda: reg.register("builtin", 1),
        first=lambda: reg.register("twice", 2),
        second=lambda: reg.register("twice", 3),
    )
    entry_points(
        FakeEntryPoint("a-clash", "first", "fake_clash:first"),
        FakeEntryPoint("b-clash", "second", "fake_clash:second"),
        FakeEntryPoint("c-clash", "builtin", "fake_clash:builtin"),
    )
    assert reg.names() == ["builtin", "twice"]
    first, second = (str(e) for e in reg.plugin_errors)
    assert first == (
        f"plugin 'b-clash' ({GROUP}: second = fake_clash:second) failed: "
        f"widget 'twice' is already registered by plugin 'a-clash' ({GROUP}: first = fake_clash:first)"
    )
    assert second == f"plugin 'c-clash' ({GROUP}: builtin = fake_clash:builtin) failed: widget 'builtin' is already registered by wpgdkit"
    with pytest.raises(PluginError, match=r"\(and 1 more wpgdkit.widgets plugin error\)"):
        reg.get("twice")


def test_an_entry_point_naming_neither_function_nor_module(entry_points, plugin_module):
    reg = widgets()
    plugin_module("fake_constant", VALUE=3)
    entry_points(FakeEntryPoint(None, "const", "fake_constant:VALUE"))
    with pytest.raises(PluginError, match=r"^plugin \(wpgdkit.widgets: const = fake_constant:VALUE\) failed: "
                                          r"TypeError: the entry point names a int, not a registration function"):
        reg.get("builtin")


def test_unreadable_metadata_is_a_plugin_error(monkeypatch):
    def broken(*, group):
        raise ValueError("bad entry_points.txt")

    monkeypatch.setattr(importlib.metadata, "entry_points", broken)
    reg = widgets()
    assert reg.names() == ["builtin"]
    with pytest.raises(PluginError, match="cannot list the wpgdkit.widgets plugins: bad entry_points.txt"):
        reg.get("builtin")


def test_duplicates_outside_plugins_keep_their_message():
    reg = widgets()
    with pytest.raises(ValueError, match=r"^widget 'builtin' is already registered$"):
        reg.register("builtin", 1)
    with pytest.raises(UnknownNameError, match="choose one of: builtin"):
        reg.get("nope")


def test_the_three_registries_read_their_groups():
    from wpgdkit.datasets import registry as datasets
    from wpgdkit.labelmetric import sources
    from wpgdkit.models import registry as models

    assert ENTRY_POINT_GROUPS == (MODELS_GROUP, DATASETS_GROUP, METRIC_SOURCES_GROUP)
    assert models._REGISTRY.entry_point_group == "wpgdkit.models"
    assert datasets._REGISTRY.entry_point_group == "wpgdkit.datasets"
    assert sources._SOURCES.entry_point_group == "wpgdkit.metric_sources"


# --- a real plugin, installed, through the command line ----------------------------------

PLUGIN = '''
"""A tiny wpgdkit plugin: one model, one dataset, one metric source."""

import math

import numpy as np
import torch
from torch import nn

CENTRES = torch.tensor([[0.0, 2.0], [-2.0, -1.0], [2.0, -1.0]])


def register_models():
    from wpgdkit.models import register_model

    @register_model("tiny-plugin-net", description="flatten + linear, from a plugin")
    def tiny(*, num_classes, input_shape):
        return nn.Sequential(nn.Flatten(), nn.Linear(math.prod(input_shape), num_classes))


def _load(split, *, data_dir, download, seed):
    from wpgdkit.datasets import TensorFeatureDataset

    generator = torch.Generator().manual_seed(2 * seed + (split == "test"))
    n = 90 if split == "train" else 30
    y = torch.arange(n) % 3
    x = CENTRES[y] + 0.3 * torch.randn(n, 2, generator=generator)
    return TensorFeatureDataset(x.float(), y.long())


def register_datasets():
    from wpgdkit.datasets import DatasetSpec, register_dataset

    register_dataset(DatasetSpec(
        name="tiny-plugin-data", classes=("north", "west", "east"), input_shape=(2,), input_range=None,
        description="three 2-D clusters, from a plugin", how_to_get="nothing to get: generated", loader=_load,
    ))


def _build_cost(config):
    from wpgdkit.datasets import get_dataset
    from wpgdkit.labelmetric import LabelMetric, Provenance

    spec = get_dataset(config.dataset)
    k = np.arange(spec.num_classes, dtype=float)
    return LabelMetric(spec.classes, np.abs(k[:, None] - k[None, :]),
                       Provenance(source="tiny-plugin-cost", dataset=spec.name))


def register_metric_sources():
    from wpgdkit.labelmetric import MetricSource, register_source

    register_source(MetricSource("tiny-plugin-cost", "|i - j|, from a plugin", _build_cost))
'''

BROKEN = '''
"""A plugin whose dependency is missing."""

import wpgdkit_missing_dependency_xyz  # noqa: F401
'''


def _write_distribution(root: Path, name: str, module: str, code: str, entry_points: dict[str, str]) -> Path:
    src = root / name
    (src / module).mkdir(parents=True)
    (src / module / "__init__.py").write_text(textwrap.dedent(code), encoding="utf-8")
    sections = "".join(f'\n[project.entry-points."{group}"]\n{value}\n' for group, value in entry_points.items())
    (src / "pyproject.toml").write_text(
        textwrap.dedent(f"""\
            [build-system]
            requires = ["hatchling"]
            build-backend = "hatchling.build"

            [project]
            name = "{name}"
            version = "0.1"
            """) + sections,
        encoding="utf-8",
    )
    return src


def _install(src: Path, target: Path) -> Path:
    # A real install (dist-info with entry_points.txt), offline: hatchling is in the venv.
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index", "-q",
         "--target", str(target), str(src)],
        check=True, capture_output=True, text=True,
    )
    return target


@pytest.fixture(scope="module")
def sites(tmp_path_factory) -> SimpleNamespace:
    """Two install folders: the tiny plugin, and a plugin that cannot be imported."""
    pytest.importorskip("hatchling", reason="the test extra installs hatchling to build the plugins offline")
    root = tmp_path_factory.mktemp("plugins")
    good = _write_distribution(root / "src", "wpgdkit-tinyplugin", "wpgdkit_tinyplugin", PLUGIN, {
        "wpgdkit.models": 'tiny = "wpgdkit_tinyplugin:register_models"',
        "wpgdkit.datasets": 'tiny = "wpgdkit_tinyplugin:register_datasets"',
        "wpgdkit.metric_sources": 'tiny = "wpgdkit_tinyplugin:register_metric_sources"',
    })
    broken = _write_distribution(root / "src", "wpgdkit-brokenplugin", "wpgdkit_brokenplugin", BROKEN, {
        "wpgdkit.models": 'broken = "wpgdkit_brokenplugin"',
    })
    broken_source = _write_distribution(root / "src", "wpgdkit-brokensource", "wpgdkit_brokensource", BROKEN, {
        "wpgdkit.metric_sources": 'broken = "wpgdkit_brokensource"',
    })
    return SimpleNamespace(
        good=_install(good, root / "good"),
        broken=_install(broken, root / "broken"),
        broken_source=_install(broken_source, root / "broken-source"),
    )


def _wpgdkit(args: list[str], *, sites: list[Path], cwd: Path, **env: str) -> subprocess.CompletedProcess:
    script = Path(sys.executable).with_name("wpgdkit")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "wpgdkit"]
    environ = {k: v for k, v in os.environ.items() if k != NO_PLUGINS_ENV}
    environ.update(
        PYTHONPATH=os.pathsep.join([*map(str, sites), *filter(None, [os.environ.get("PYTHONPATH")])]),
        OMP_NUM_THREADS="1",
        **env,
    )
    return subprocess.run(command + args, cwd=cwd, env=environ, capture_output=True, text=True, timeout=300)


def _ok(result: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert result.returncode == 0, (result.returncode, result.stdout[-2000:], result.stderr[-2000:])
    return result


def test_plugin_names_are_listed(sites, tmp_path):
    models = json.loads(_ok(_wpgdkit(["models", "--dataset", "tiny-plugin-data", "--json", "-"],
                                     sites=[sites.good], cwd=tmp_path)).stdout)
    names = [row["name"] for row in models["models"]]
    assert names[-1] == "tiny-plugin-net" and "mlp" in names  # after the built-in ones
    assert models["input_shape"] == [2] and models["num_classes"] == 3
    datasets = json.loads(_ok(_wpgdkit(["datasets", "--json", "-"], sites=[sites.good], cwd=tmp_path)).stdout)
    assert "tiny-plugin-data" in [d["name"] for d in datasets["datasets"]]


@pytest.mark.slow
def test_plugin_model_trains_on_plugin_data_and_is_audited_with_a_plugin_metric(sites, tmp_path):
    _ok(_wpgdkit(["metric", "build", "--dataset", "tiny-plugin-data", "--source", "tiny-plugin-cost",
                  "--out", "cost.csv", "--quiet"], sites=[sites.good], cwd=tmp_path))
    assert (tmp_path / "cost.csv").read_text(encoding="utf-8").splitlines()[0].split(",")[1:] == ["north", "west", "east"]
    _ok(_wpgdkit(["train", "--dataset", "tiny-plugin-data", "--model", "tiny-plugin-net", "--method", "ce",
                  "--epochs", "1", "--eval-steps", "0", "--batch-size", "32", "--device", "cpu", "--threads", "1",
                  "--quiet", "--out", "run.pt"], sites=[sites.good], cwd=tmp_path))
    assert (tmp_path / "run.pt").is_file()
    _ok(_wpgdkit(["audit", "run.pt", "--metric", "cost.csv", "--steps", "2", "--limit", "20", "--device", "cpu",
                  "--threads", "1", "--quiet", "--json", "audit.json"], sites=[sites.good], cwd=tmp_path))
    audit = json.loads((tmp_path / "audit.json").read_text(encoding="utf-8"))
    assert audit["dataset"] == "tiny-plugin-data" and audit["num_points"] == 20


def test_a_broken_plugin_is_one_line_and_can_be_switched_off(sites, tmp_path):
    both = [sites.broken, sites.good]
    result = _wpgdkit(["models"], sites=both, cwd=tmp_path)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr, result.stderr
    assert result.stderr.startswith(
        "wpgdkit: error: plugin 'wpgdkit-brokenplugin' (wpgdkit.models: broken = wpgdkit_brokenplugin) failed: "
        "ModuleNotFoundError: No module named 'wpgdkit_missing_dependency_xyz'"
    ), result.stderr
    assert f"{NO_PLUGINS_ENV}=1" in result.stderr
    # --version and --help list names but look up no item: they work while the plugin is broken.
    assert _ok(_wpgdkit(["--version"], sites=both, cwd=tmp_path)).stdout.startswith("wpgdkit ")
    assert "tiny-plugin-net" in _ok(_wpgdkit(["train", "--help"], sites=both, cwd=tmp_path, COLUMNS="1000")).stdout
    # Switched off, neither the broken plugin nor the good one is loaded.
    listed = json.loads(_ok(_wpgdkit(["models", "--json", "-"], sites=both, cwd=tmp_path, **{NO_PLUGINS_ENV: "1"})).stdout)
    assert "tiny-plugin-net" not in [row["name"] for row in listed["models"]]


def test_version_survives_a_broken_metric_source_plugin(sites, tmp_path):
    _ok(_wpgdkit(["--version"], sites=[sites.broken_source], cwd=tmp_path))
