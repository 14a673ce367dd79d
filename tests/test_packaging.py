"""An installed wheel carries the shipped metrics and data files."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    pytest.importorskip("hatchling", reason="the test extra installs hatchling to build the wheel offline")
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), str(ROOT)],
        check=True, capture_output=True,
    )
    (path,) = out.glob("wpgdkit-*.whl")
    return path


def test_wheel_contains_metrics_and_class_lists(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = {p.name for p in (ROOT / "metrics").iterdir() if p.is_file()}
    assert {f"wpgdkit/_metrics/{name}" for name in shipped} <= names
    assert "wpgdkit/datasets/tiny-imagenet-200-wnids.txt" in names
    entry_points = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    assert "wpgdkit = wpgdkit.cli:main" in entry_points


def test_installed_package_finds_its_metrics(wheel, tmp_path):
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
        check=True, capture_output=True,
    )
    code = (
        "import wpgdkit, wpgdkit.resources as r; from wpgdkit.labelmetric.shipped import load_shipped_metric;"
        "print(wpgdkit.__file__); print(r.metrics_dir()); print(load_shipped_metric('cifar10-wordnet.csv').matrix[3, 5])"
    )
    env = {**os.environ, "PYTHONPATH": str(target)}
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, check=True)
    module, folder, value = out.stdout.split("\n")[:3]
    assert module.startswith(str(target))
    assert folder == str(target / "wpgdkit" / "_metrics")
    assert float(value) == 4.0
