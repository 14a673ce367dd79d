"""The audit benchmark's attack comparison (compare_audit_attack): its sides, counts and rows (never its timings)."""

from __future__ import annotations

import json

import pytest
import torch

from wpgdkit.attacks import ThreatModel
from wpgdkit.bench.audit import ATTACK_ROWS, ATTACK_SIDES, _attack_rows, compare_audit_attack
from wpgdkit.models import create_model

pytest.importorskip("torchattacks")


def test_compare_audit_attack_on_random_images():
    torch.manual_seed(0)
    model = create_model("small-cnn", num_classes=10, input_shape=(1, 12, 12)).eval()
    x = torch.rand(24, 1, 12, 12)
    with torch.no_grad():
        y = model(x).argmax(1)  # clean accuracy 100 %: every adversarial error is the attack's
    threat = ThreatModel(eps=0.05, steps=3)
    result = compare_audit_attack(model, x, y, threat=threat, batch=10, repeats=1, warmup=0, device=torch.device("cpu"))
    assert result["clean_accuracy"] == 1.0 and result["memory_format"] in ("contiguous", "channels_last")
    assert all(len(result[f"{side}_times_s"]) == len(result[f"{side}_cpu_s"]) == 1 for side in ATTACK_SIDES)
    assert set(result["cpu_ratio_median"]) == {*ATTACK_SIDES[1:], "theirs_over_early_stop"}
    assert result["full_passes"] == 24 * 3 and 0 < result["early_stop_passes"][0] <= 24 * 3
    # The same starts: early stop fools every point plain PGD fools, and the layout changes nothing here.
    assert result["early_stop_adversarial_accuracy"] <= result["ours_adversarial_accuracy"]
    assert result["default_layout_adversarial_accuracy"] == result["ours_adversarial_accuracy"]
    assert all(p.is_contiguous() for p in model.parameters())  # ours ran on a copy
    rows = _attack_rows("case", result, {"data": "random", "model": "untrained"})
    assert [(r.ours, r.reference) for r in rows] == list(ATTACK_ROWS)
    for row in rows:
        assert row.status == "ok" and row.ours_s > 0 and row.ratio == pytest.approx(row.reference_s / row.ours_s)
        json.dumps(row.to_dict(), allow_nan=False)
    assert rows[1].extra["early_stop_pass_share"] == result["early_stop_passes"][0] / (24 * 3)
