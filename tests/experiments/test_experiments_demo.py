"""``run_demo`` on a reduced toy problem: files, sane numbers, a reading computed from them, reuse, resume, bad settings."""

from __future__ import annotations

import json
import math
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from wpgdkit.audit.scores import weighted_score
from wpgdkit.errors import WpgdkitError
from wpgdkit.experiments import boundaries as bd
from wpgdkit.experiments import demo as dm
from wpgdkit.experiments.demo import QUICK, DemoConfig, demo_config, run_demo
from wpgdkit.labelmetric import read_metric
from wpgdkit.labelmetric.shipped import PAPER_TOY_METRIC
from wpgdkit.training import load_checkpoint

# A few seconds: one ε, few points and epochs, short attacks, a coarse grid.
SMALL = dict(epsilons=(0.8,), epochs=2, limit=150, test_limit=90, steps=2, eval_steps=3, resolution=40,
             device="cpu")


class _Recorder:
    """A DemoProgress that remembers what it was told."""

    def __init__(self, fail_after_epoch: int | None = None) -> None:
        self.steps, self.done_messages, self.epochs, self.models, self.total = [], [], 0, [], None
        self.fail_after_epoch = fail_after_epoch

    def begin(self, steps):
        self.total = steps

    def step(self, description):
        self.steps.append(description)

    def done(self, message):
        self.done_messages.append(message)

    def start_epoch(self, epoch, batches):
        pass

    def advance(self, stats=None):
        pass

    def end_epoch(self, record):
        self.epochs += 1
        if self.fail_after_epoch is not None and record["epoch"] >= self.fail_after_epoch:
            raise KeyboardInterrupt  # as if the user stopped the demo after this epoch's checkpoint

    def start_model(self, name, batches):
        self.models.append(name)


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "out"
    progress = _Recorder()
    threads = torch.get_num_threads()
    result = run_demo(DemoConfig(out=str(out), **SMALL), progress=progress)
    assert torch.get_num_threads() == threads  # the demo's one-thread setting is undone
    return result, progress


def test_writes_report_plot_summary_metric_and_checkpoints(demo):
    result, _ = demo
    out = result.out
    assert {p.name for p in out.iterdir()} == {"report.md", "summary.json", "boundaries.png", "toy-metric.csv", "runs"}
    with Image.open(result.boundaries) as image:
        image.verify()
        assert image.format == "PNG"
    with Image.open(result.boundaries) as image:
        assert image.size[0] > 600 and image.size[1] > 300
    np.testing.assert_array_equal(read_metric(result.metric).matrix, PAPER_TOY_METRIC.matrix)
    runs = sorted(p.name for p in (out / "runs").iterdir())
    assert len([r for r in runs if r.endswith(".pt")]) == 3 and len([r for r in runs if r.endswith(".log.jsonl")]) == 3
    assert set(result.checkpoints) == {"ce", "pgd-eps0.8", "wpgd-eps0.8"}
    assert not [p for p in out.rglob("*.tmp")]  # atomic writes leave no temporary files


def test_progress_hears_every_step(demo):
    result, progress = demo
    # CE, PGD, WPGD; two audits (PGD and WPGD attack); the picture; the report.
    assert progress.total == len(progress.steps) == len(progress.done_messages) == 7
    assert progress.epochs == 3 * SMALL["epochs"]
    assert len(progress.models) == 6  # three models, each attacked once per audit
    assert progress.done_messages[-1].startswith(f"wrote {result.report}")


def test_table_numbers_are_sane(demo):
    result, _ = demo
    rows = result.rows
    assert len(rows) == 2 * 3 and {r["attack"] for r in rows} == {"pgd", "wpgd"}
    max_cost = float(PAPER_TOY_METRIC.matrix.max())
    for r in rows:
        assert 0 <= r["natural_error"] <= 100 and 0 <= r["adversarial_error"] <= 100
        assert math.isfinite(r["score"]) and 0 <= r["score"] <= max_cost
        rates = r["adversarial_rates"]
        assert set(rates) == {"0->1", "1->0", "1->2", "2->1", "0->2", "2->0"}
        assert list(rates)[:2] == ["0->1", "1->0"]  # the costliest pair first
        for source in "012":
            out_of_class = sum(v for k, v in rates.items() if k.startswith(source))
            assert all(0 <= v <= 100 for v in rates.values()) and out_of_class <= 100 + 1e-9
    for attack in ("pgd", "wpgd"):
        by_model = {r["model"]: r for r in rows if r["attack"] == attack}
        assert by_model["pgd"]["score_delta"] == 0.0  # the reference is S_PGD itself
        for r in by_model.values():
            assert r["score_delta"] == pytest.approx(r["score"] - by_model["pgd"]["score"])
    # Clean predictions do not depend on the attack: every model keeps its natural error.
    for model in ("ce", "pgd", "wpgd"):
        assert len({r["natural_error"] for r in rows if r["model"] == model}) == 1


def test_summary_json_matches_the_audits(demo):
    result, _ = demo
    doc = json.loads(result.summary.read_text())
    assert doc["schema"] == "wpgdkit-demo/1" and doc["settings"]["epsilons"] == [0.8]
    assert doc["metric"]["matrix"] == PAPER_TOY_METRIC.matrix.tolist()
    assert set(doc["audits"]) == {"pgd", "wpgd"} and set(doc["audits"]["pgd"]) == {"0.8"}
    audit = doc["audits"]["pgd"]["0.8"]
    assert audit["schema"] == "wpgdkit-audit/1" and audit["num_points"] == SMALL["test_limit"]
    assert audit["attack"]["eps"] == 0.8 and audit["attack"]["norm"] == "l2" and audit["attack"]["steps"] == 3
    cost = torch.tensor(PAPER_TOY_METRIC.matrix)
    for model in audit["models"]:
        row = next(r for r in doc["table"] if r["attack"] == "pgd" and r["checkpoint"] == model["checkpoint"])
        assert row["natural_error"] == model["natural_error"] and row["score"] == model["score"]
        # S is eq. 7 on the adversarial confusion counts, per class.
        counts = torch.tensor(model["confusion_adversarial"]["counts"])
        assert weighted_score(counts, cost) == pytest.approx(model["score"])
    for key, g in doc["geometry"].items():
        assert sum(g["region_shares"]) == pytest.approx(1.0)
        for i, row in enumerate(g["boundary_distance_median"]):
            for j, d in enumerate(row):
                assert (d is None) if i == j else (d is None or d >= 0)
    assert doc["reading"] == result.reading and doc["status"] == result.status


def test_report_carries_the_picture_tables_and_the_computed_reading(demo):
    result, _ = demo
    text = result.report.read_text()
    assert "](boundaries.png)" in text and "](summary.json)" in text
    assert "### ε = 0.8, PGD attack" in text and "### ε = 0.8, WPGD attack" in text
    assert "| model | NE % | AE % | S | S − S_PGD | 0→1 (10) | 1→0 (10) |" in text
    for r in result.rows:
        start = f"| {r['label']} | {r['natural_error']:.1f} | {r['adversarial_error']:.1f} | {r['score']:.3f} |"
        assert start in text, start
    for line in result.reading:
        assert f"- {line}" in text
    pgd = next(r for r in result.rows if r["attack"] == "pgd" and r["model"] == "pgd")
    wpgd = next(r for r in result.rows if r["attack"] == "pgd" and r["model"] == "wpgd")
    first = result.reading[0]
    assert first.startswith("**ε = 0.8.**")
    # The reading quotes this run's numbers, not canned ones.
    assert f"PGD {pgd['adversarial_rates']['0->1']:.1f}%, WPGD {wpgd['adversarial_rates']['0->1']:.1f}%" in first
    assert f"PGD {pgd['score']:.3f}, WPGD {wpgd['score']:.3f}" in first
    assert any(line.startswith("**PGD against CE.**") for line in result.reading)
    assert "wpgdkit train --dataset toy --model mlp --method wpgd" in text and "wpgdkit audit" in text


def test_a_second_run_reuses_every_checkpoint(demo):
    result, _ = demo
    before = {key: Path(path).stat().st_mtime_ns for key, path in result.checkpoints.items()}
    again = run_demo(result.config)
    assert set(again.status.values()) == {"reused"}
    assert {key: Path(path).stat().st_mtime_ns for key, path in again.checkpoints.items()} == before
    assert [r["natural_error"] for r in again.rows] == [r["natural_error"] for r in result.rows]
    assert "3 of 3 checkpoints reused" in again.report.read_text()


def test_an_interrupted_demo_resumes_and_other_settings_retrain(tmp_path):
    config = DemoConfig(out=str(tmp_path / "out"), **{**SMALL, "epochs": 2})
    with pytest.raises(KeyboardInterrupt):
        run_demo(config, progress=_Recorder(fail_after_epoch=1))
    ce = dm.run_path(config, "ce")
    assert ce.parent == tmp_path / "out" / "runs" and load_checkpoint(ce).epoch == 1
    resumed = run_demo(config)
    assert resumed.status["ce"] == "resumed" and resumed.status["pgd-eps0.8"] == "trained"
    assert load_checkpoint(ce).epoch == 2
    # Another learning rate: another run, in its own file, trained from scratch; the first is left alone.
    other_config = DemoConfig(out=config.out, **{**SMALL, "epochs": 2, "lr": 0.05})
    other = run_demo(other_config)
    assert set(other.status.values()) == {"trained"}
    assert dm.run_path(other_config, "ce") != ce and load_checkpoint(ce).settings.optimizer.lr == SMALL.get("lr", 0.1)
    # A file of other settings placed under the run's name is trained over (force), never reused; its log too.
    shutil.copy(ce, dm.run_path(other_config, "ce"))
    again = run_demo(other_config)
    assert again.status["ce"] == "trained" and again.status["pgd-eps0.8"] == "reused"
    moved = dm.run_path(other_config, "ce")
    assert load_checkpoint(moved).settings.optimizer.lr == 0.05
    log = moved.with_name(moved.stem + ".log.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in log] == [1, 2]


def test_bad_settings_fail_before_anything_is_written(tmp_path):
    out = tmp_path / "never"
    for changes, fragment in [
        ({"epochs": 0}, "--epochs"),
        ({"epsilons": ()}, "at least one"),
        ({"epsilons": (0.4, -1.0)}, "positive"),
        ({"epsilons": (0.4, 0.4)}, "repeat"),
        ({"p": 0.0}, "--p"),
        ({"limit": 2}, "--limit"),
        ({"test_limit": 0}, "--test-limit"),
        ({"resolution": 5}, "--resolution"),
        ({"threads": 0}, "--threads"),
        ({"device": "tpu"}, "unknown device"),
        ({"seed": -1}, "--seed"),
        ({"seed": 2**32}, "--seed must be a whole number in [0, 4294967295]"),  # was refused only by training
        ({"seed": 10**23}, "--seed must be a whole number in [0, 4294967295]"),
    ]:
        with pytest.raises(WpgdkitError, match=re.escape(fragment)):
            run_demo(DemoConfig(out=str(out), **{**SMALL, **changes}))
    assert not out.exists()
    target = tmp_path / "file"
    target.write_text("x")
    with pytest.raises(WpgdkitError, match="not a folder"):
        run_demo(DemoConfig(out=str(target), **SMALL))
    assert target.read_text() == "x"


def test_demo_config_presets():
    assert demo_config() == DemoConfig()
    quick = demo_config(quick=True)
    assert (quick.epochs, quick.limit, quick.test_limit) == (QUICK["epochs"], QUICK["limit"], QUICK["test_limit"])
    assert demo_config(quick=True, epochs=7, limit=None).epochs == 7  # None leaves the preset
    assert demo_config(epsilons=[0.1]).epsilons == (0.1,)
    with pytest.raises(TypeError):
        demo_config(epoch=3)


def test_verdict_says_when_the_effect_does_not_show():
    assert dm._verdict(-5.0, -2.0) == "WPGD makes fewer costly flips both ways."
    assert "does not show" in dm._verdict(3.0, 4.0)
    assert "does not show" in dm._verdict(0.0, 4.0)
    assert dm._verdict(-3.0, 3.0).startswith("Mixed")
    assert dm._verdict(0.2, -0.5).startswith("No clear difference")


# --- the geometry helpers -------------------------------------------------------------------


def _half_plane(grid, a=1.0, b=0.3, c=0.2):
    return (grid.centres() @ np.array([a, b], dtype=np.float32) > c).astype(np.int64).reshape(grid.resolution, -1)


def test_grid_is_a_square_around_the_points():
    pts = np.array([[0.0, 0.0], [2.0, 1.0]])
    g = bd.make_grid(pts, margin=0.5, resolution=50)
    assert g.x_max - g.x_min == pytest.approx(g.y_max - g.y_min) == pytest.approx(3.0)
    assert g.x_min <= -0.5 and g.x_max >= 2.5 and g.y_min <= -0.5 and g.y_max >= 1.5
    assert g.centres().shape == (2500, 2)
    with pytest.raises(WpgdkitError):
        bd.make_grid(np.zeros((3, 3)))
    with pytest.raises(WpgdkitError):
        bd.make_grid(pts, resolution=1)


def test_regions_shares_bends_and_distances_of_known_shapes():
    g = bd.make_grid(np.array([[-2.0, -2.0], [2.0, 2.0]]), margin=0.0, resolution=200)
    straight = _half_plane(g)
    assert bd.region_shares(straight, 2).sum() == pytest.approx(1.0)
    assert bd.boundary_bends(straight, g, 2)[0, 1] < 2 * g.cell / math.sqrt(12)
    parabola = (g.centres()[:, 1] > 0.5 * g.centres()[:, 0] ** 2).astype(np.int64).reshape(200, 200)
    assert bd.boundary_bends(parabola, g, 2)[0, 1] > 0.3
    assert np.isnan(bd.boundary_bends(np.zeros((200, 200), dtype=np.int64), g, 2)[0, 1])
    # A vertical boundary at x = 0.2: a class-0 point at x = -0.8 is 1.0 from the class-1 region.
    vertical = _half_plane(g, 1.0, 0.0, 0.2)
    pts, labels = np.array([[-0.8, 0.0], [-0.8, 1.0], [1.5, 0.0]]), np.array([0, 0, 1])
    d = bd.boundary_distances(vertical, g, pts, labels, 2)
    assert d[0, 1] == pytest.approx(1.0, abs=1.5 * g.cell) and d[1, 0] == pytest.approx(1.3, abs=1.5 * g.cell)
    assert np.isnan(d[0, 0])


def test_predict_regions_uses_the_model_and_restores_its_mode():
    model = torch.nn.Linear(2, 3)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[1.0, 0.0], [-1.0, 0.0], [0.0, 0.0]]))
        model.bias.zero_()
    model.train()
    g = bd.make_grid(np.array([[-1.0, -1.0], [1.0, 1.0]]), margin=0.0, resolution=20)
    regions = bd.predict_regions(model, g)
    assert regions.shape == (20, 20) and model.training
    assert (regions[:, :10] == 1).all() and (regions[:, 10:] == 0).all()


def test_plot_boundaries_writes_atomically_and_checks_its_input(tmp_path):
    g = bd.make_grid(np.array([[-1.0, -1.0], [1.0, 1.0]]), margin=0.0, resolution=30)
    regions = _half_plane(g)
    pts, labels = np.array([[-0.5, 0.0], [0.5, 0.0]]), np.array([0, 1])
    panels = [[bd.BoundaryPanel(regions, "a"), bd.BoundaryPanel(regions, "b", eps=0.3)], [None, bd.BoundaryPanel(regions, "c")]]
    path = bd.plot_boundaries(panels, g, pts, labels, ("cat", "dog"), tmp_path / "b.png", row_titles=["r1", "r2"],
                              title="t", note="n")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and [p.name for p in tmp_path.iterdir()] == ["b.png"]
    with pytest.raises(WpgdkitError, match=r"\.png"):
        bd.plot_boundaries(panels, g, pts, labels, ("cat", "dog"), tmp_path / "b.gif")
    with pytest.raises(WpgdkitError, match="do not fit"):
        bd.plot_boundaries([[bd.BoundaryPanel(regions[:5], "x")]], g, pts, labels, ("cat", "dog"), tmp_path / "c.png")
    assert not (tmp_path / "c.png").exists() and not list(tmp_path.glob("*.tmp"))
