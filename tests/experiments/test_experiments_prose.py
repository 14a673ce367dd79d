"""Report prose: the setting line prints ε as people write it."""

from __future__ import annotations

import pytest

from wpgdkit.experiments.prose import setting_line

BASE = dict(model="small-cnn", epochs=2, limit=6000, norm="linf", steps=5, eval_steps=20, test_limit=1000)


@pytest.mark.parametrize("dataset, eps, text", [("fashion-mnist", 0.1, "ε = 0.1,"), ("cifar10", 4 / 255, "ε = 4/255,"),
                                                ("toy", 0.4, "ε = 0.4,")])
def test_setting_line_prints_the_budget_as_written(dataset, eps, text):
    line = setting_line({**BASE, "dataset": dataset, "eps": eps}, "quick", {}, 0)
    assert text in line
    assert "25.5/255" not in line and line.count("ε") == 1
