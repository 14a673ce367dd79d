"""The README's Python API example runs as written (on random stand-in loaders)."""

from __future__ import annotations

import re
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def test_the_python_api_example_runs(monkeypatch, capsys):
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Python API", 1)[1].split("\n## ", 1)[0]
    (code,) = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    g = torch.Generator().manual_seed(0)
    batch = lambda: (torch.rand(16, 1, 28, 28, generator=g), torch.randint(0, 10, (16,), generator=g))  # noqa: E731
    monkeypatch.chdir(ROOT)
    exec(compile(code, "README.md", "exec"), {"train_loader": [batch(), batch()], "test_loader": [batch()]})
    printed = capsys.readouterr().out
    assert re.fullmatch(r"NE \d+\.\d %  AE \d+\.\d %  S \d\.\d{4}\n", printed), printed
