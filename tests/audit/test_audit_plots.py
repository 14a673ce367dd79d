"""Pictures of an audit (wpgdkit.audit.plots) from a real audit of two tiny toy models."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch
from matplotlib.image import imread

from wpgdkit.attacks import AttackConfig, ThreatModel
from wpgdkit.audit import AuditConfig, AuditReport, ModelAudit, ModelPredictions, audit
from wpgdkit.audit.plots import plot_file_stems, safe_file_stem, write_audit_plots
from wpgdkit.errors import WpgdkitError
from wpgdkit.labelmetric.core import LabelMetric, Provenance
from wpgdkit.labelmetric.plot import plot_heatmap
from wpgdkit.training import DataConfig, TrainConfig, train

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PER_MODEL = ("confusion-natural", "confusion-adversarial", "gap", "entropy")


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> AuditReport:
    """A CE and a PGD model on the 3-class toy problem, audited with CE as baseline and PGD as reference."""
    folder = tmp_path_factory.mktemp("models")
    paths = {}
    for method in ("ce", "pgd"):
        paths[method] = str(folder / f"{method}.pt")
        train(TrainConfig(data=DataConfig("toy", val_fraction=0.0, limit=200), model="mlp", method=method,
                          norm="l2", eps=0.4, steps=3, eval_steps=0, epochs=1, lr=0.05, out=paths[method],
                          device="cpu"))
    return audit(AuditConfig(checkpoints=(paths["ce"], paths["pgd"]), baseline=paths["ce"],
                             reference=paths["pgd"], steps=3, limit=150, device="cpu"))


@pytest.fixture(scope="module")
def plots(report, tmp_path_factory):
    folder = tmp_path_factory.mktemp("plots") / "new" / "folder"  # created, parents too
    return folder, write_audit_plots(report, folder)


def check_png(path) -> np.ndarray:
    data = path.read_bytes()
    assert data.startswith(PNG_SIGNATURE) and data.endswith(b"IEND\xaeB`\x82"), path.name
    assert len(data) > 5000, path.name  # a picture, not an empty canvas
    pixels = imread(path)
    assert pixels.ndim == 3 and pixels.shape[0] > 200 and pixels.shape[1] > 200, path.name
    assert pixels.std() > 0.01, path.name  # not one flat colour
    return pixels


def test_every_picture_written_as_a_valid_png(report, plots):
    folder, written = plots
    assert report.metric is not None and all(m.gap is not None for m in report.models)
    expected = ["metric.png"] + [f"{m}-{kind}.png" for m in ("ce", "pgd") for kind in PER_MODEL] + ["comparison.png"]
    assert [p.name for p in written] == expected
    assert all(p.parent == folder for p in written)
    assert sorted(p.name for p in folder.iterdir()) == sorted(expected)  # no temporary file left
    for path in written:
        check_png(path)


def test_the_gap_stands_beside_the_metric_and_entropy_has_per_class_panels(plots):
    folder, _ = plots
    square = check_png(folder / "ce-confusion-natural.png")
    gap = check_png(folder / "pgd-gap.png")
    entropy = check_png(folder / "pgd-entropy.png")
    assert gap.shape[1] > 1.5 * square.shape[1]  # two panels side by side
    assert entropy.shape[0] > square.shape[0]  # the all-points panel plus a row of classes


def test_heatmap_pixels_follow_the_matrix(report, plots, tmp_path):
    folder, _ = plots
    ce = report.models[0]
    labels = report.labels
    # The CE model made perfectly robust: only its adversarial confusion changes.
    never_fooled = dataclasses.replace(ce.predictions, adversarial=labels.clone())
    robust = dataclasses.replace(ce, gap=None, predictions=never_fooled, adversarial_error=0.0)
    assert not torch.equal(ce.predictions.adversarial, labels)  # the attack did fool it somewhere
    changed = dataclasses.replace(report, models=[robust], metric=None)
    written = write_audit_plots(changed, tmp_path / "changed")
    assert [p.name for p in written] == ["ce-confusion-natural.png", "ce-confusion-adversarial.png", "ce-entropy.png"]
    # Without a metric the classes stay in label order; the original audit drawn in label order is the reference.
    labelled = tmp_path / "label-order"
    write_audit_plots(report, labelled, order="label")
    same = imread(tmp_path / "changed" / "ce-confusion-natural.png")
    assert np.array_equal(same, imread(labelled / "ce-confusion-natural.png"))  # rendering is deterministic
    before = imread(labelled / "ce-confusion-adversarial.png")
    after = imread(tmp_path / "changed" / "ce-confusion-adversarial.png")
    assert before.shape == after.shape and not np.array_equal(before, after)

    # Another metric, no models: just metric.png, with other pixels.
    matrix = report.metric.matrix.copy()
    matrix[0, 1] = matrix[1, 0] = matrix.max() * 3
    metric = LabelMetric(report.metric.classes, matrix, Provenance(source="test"))
    written = write_audit_plots(dataclasses.replace(report, models=[], metric=metric), tmp_path / "metric")
    assert [p.name for p in written] == ["metric.png"]
    assert not np.array_equal(imread(written[0]), imread(folder / "metric.png"))


def test_annotations_and_colour_scale_of_plot_heatmap(tmp_path):
    matrix = np.array([[0.0, 0.2, 0.8], [0.1, 0.0, 0.3], [0.5, 0.4, 0.0]])
    classes = ["cat", "dog", "ship"]
    plain = imread(plot_heatmap(matrix, classes, tmp_path / "plain.png"))
    annotated = imread(plot_heatmap(matrix, classes, tmp_path / "annotated.png", annotate=True))
    assert not np.array_equal(plain, annotated)
    scaled = imread(plot_heatmap(matrix, classes, tmp_path / "scaled.png", vmin=0.0, vmax=10.0))
    assert not np.array_equal(plain, scaled)
    masked = matrix.copy()
    np.fill_diagonal(masked, np.nan)  # NaN cells are grey and never annotated
    check_png(plot_heatmap(masked, classes, tmp_path / "masked.png", annotate=True))


def synthetic_report(k: int, n: int = 400, seed: int = 0) -> AuditReport:
    """A report as audit() builds it, without models behind it (for many classes)."""
    from wpgdkit.audit.scores import confusion_matrix, error_rate

    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % k
    natural = torch.where(torch.rand(n, generator=g) < 0.9, y, torch.randint(0, k, (n,), generator=g))
    adversarial = torch.where(torch.rand(n, generator=g) < 0.4, y, torch.randint(0, k, (n,), generator=g))
    entropy = torch.rand(n, generator=g, dtype=torch.float64) * math.log(k)
    pred = ModelPredictions(natural, adversarial, entropy * 0.5, entropy)
    model = ModelAudit(name="run:1/wpgd", checkpoint="run:1/wpgd.pt", method="wpgd", p=2.5, train_eps=0.4,
                       natural_error=error_rate(y, natural), adversarial_error=error_rate(y, adversarial),
                       confusion_natural=confusion_matrix(y, natural, k),
                       confusion_adversarial=confusion_matrix(y, adversarial, k), predictions=pred)
    return AuditReport(config=AuditConfig(checkpoints=("run:1/wpgd.pt",), bins=10),
                       attack=AttackConfig("pgd", ThreatModel(eps=0.5, norm="l2", steps=5)), dataset="synthetic",
                       classes=tuple(f"class number {i}" for i in range(k)), labels=y, metric=None,
                       metric_origin=None, models=[model])


def test_many_classes_as_pdf(tmp_path):
    # 25 classes: names on the axes, no cell values, one entropy panel; a name with ':' and '/'.
    written = write_audit_plots(synthetic_report(25), tmp_path, fmt="pdf")
    assert [p.name for p in written] == ["run_1_wpgd-confusion-natural.pdf", "run_1_wpgd-confusion-adversarial.pdf",
                                         "run_1_wpgd-entropy.pdf"]
    for path in written:
        assert path.read_bytes().startswith(b"%PDF") and path.stat().st_size > 5000


def test_file_names_are_safe_and_distinct():
    assert safe_file_stem("baseline:ce") == "baseline_ce"
    assert safe_file_stem("../..") == "_.."
    assert safe_file_stem("...") == "model"
    assert safe_file_stem("wrn-16-10_p2.5+x") == "wrn-16-10_p2.5+x"
    assert plot_file_stems(["a:b", "a_b", "a?b", "c"]) == ["a_b", "a_b-2", "a_b-3", "c"]


def test_bad_folder_or_format_is_one_line_error(report, tmp_path):
    taken = tmp_path / "taken"
    taken.write_text("not a folder")
    with pytest.raises(WpgdkitError, match="is not a folder") as info:
        write_audit_plots(report, taken)
    assert "\n" not in str(info.value)
    assert taken.read_text() == "not a folder"
    with pytest.raises(WpgdkitError, match="cannot create plot folder") as info:
        write_audit_plots(report, taken / "inside")
    assert "\n" not in str(info.value)
    with pytest.raises(WpgdkitError, match="unknown plot format 'jpg'"):
        write_audit_plots(report, tmp_path / "jpg", fmt="jpg")
    assert not (tmp_path / "jpg").exists()


def test_gap_title_states_the_correlation(report):
    from wpgdkit.audit.plots import _correlation_text
    from wpgdkit.labelmetric.compare import Correlation

    model = report.models[1]
    assert _correlation_text(dataclasses.replace(model, correlation=None)) == ""
    text = _correlation_text(dataclasses.replace(model, correlation=Correlation(-0.653, -0.5, 0.01, 0.02, 6)))
    assert text == "ρ(G, metric): Pearson -0.65, Spearman -0.50 over 6 pairs"
    nan = float("nan")
    assert "undefined" in _correlation_text(dataclasses.replace(model, correlation=Correlation(nan, nan, nan, nan, 6)))


def test_an_interrupt_while_drawing_leaves_the_folder_as_it_was(report, tmp_path, monkeypatch):
    import wpgdkit.audit.plots as plots_module

    folder = tmp_path / "plots"
    folder.mkdir()
    (folder / "old.png").write_bytes(b"old")

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(plots_module, "_plot_entropy", interrupted)  # after the metric and confusion plots
    with pytest.raises(KeyboardInterrupt):
        write_audit_plots(report, folder)
    assert [p.name for p in folder.iterdir()] == ["old.png"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plots"]  # the temporary folder is gone
    with pytest.raises(KeyboardInterrupt):
        write_audit_plots(report, tmp_path / "new" / "plots")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plots"]  # nor a folder made for it


def test_plots_move_into_a_new_or_existing_folder_with_plain_permissions(report, tmp_path):
    written = write_audit_plots(report, tmp_path / "new")
    assert written and all(p.parent == tmp_path / "new" and p.is_file() for p in written)
    assert (tmp_path / "new").stat().st_mode & 0o777 == 0o777 & ~_umask()
    again = write_audit_plots(report, tmp_path / "new")
    assert again == written and sorted(p.name for p in tmp_path.iterdir()) == ["new"]


def _umask() -> int:
    import os

    mask = os.umask(0o022)
    os.umask(mask)
    return mask
