"""`wpgdkit train` end to end on every dataset format, and its bad inputs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from wpgdkit.cli import app
from wpgdkit.training import load_checkpoint, log_path_for

runner = CliRunner()
QUICK = ["--epochs", "1", "--steps", "2", "--eval-steps", "1", "--batch-size", "8", "--device", "cpu", "--quiet"]


def invoke(*args):
    return runner.invoke(app, ["train", *[str(a) for a in args]])


def test_toy_wpgd_with_the_papers_metric(tmp_path):
    out = tmp_path / "toy.pt"
    metric = Path(__file__).resolve().parents[2] / "metrics" / "toy-paper.csv"
    result = invoke("--dataset", "toy", "--model", "mlp", "--method", "wpgd", "--metric", metric, "--p", "2.5",
                    "--norm", "l2", "--eps", "0.4", "--limit", "300", "--out", out, *QUICK)
    assert result.exit_code == 0, result.stderr
    state = load_checkpoint(out)
    assert state["method"] == "wpgd" and state["attack"]["norm"] == "l2" and state["attack"]["eps"] == 0.4
    record = json.loads(log_path_for(out).read_text().splitlines()[-1])
    assert {"epoch", "train_loss", "val_accuracy", "val_robust_accuracy", "images_per_s"} <= set(record)


def test_fashion_mnist_pgd_with_paper_style_budgets(tmp_path):
    out = tmp_path / "fm.pt"
    result = invoke("--dataset", "fashion-mnist", "--model", "small-cnn", "--method", "pgd", "--eps", "8/255",
                    "--step-size", "2/255", "--limit", "64", "--out", out, *QUICK)
    assert result.exit_code == 0, result.stderr
    state = load_checkpoint(out)
    assert state["attack"]["eps"] == pytest.approx(8 / 255) and state["attack"]["step_size"] == pytest.approx(2 / 255)
    assert state["model"]["mean"] == [pytest.approx(0.2860)] and state["data"]["augmented"] is False


@pytest.mark.parametrize("dataset, fixture", [("cifar10", "cifar10_dir"), ("cifar100", "cifar100_dir"),
                                              ("tiny-imagenet", "tiny_imagenet_dir")])
def test_folder_datasets_in_their_real_formats(tmp_path, request, dataset, fixture):
    data_dir = request.getfixturevalue(fixture)
    out = tmp_path / f"{dataset}.pt"
    result = invoke("--dataset", dataset, "--data-dir", data_dir, "--model", "small-cnn", "--method", "pgd",
                    "--eps", "4/255", "--out", out, *QUICK)
    assert result.exit_code == 0, result.stderr
    state = load_checkpoint(out)
    assert state["data"]["augmented"] is True
    assert state["model"]["num_classes"] == {"cifar10": 10, "cifar100": 100, "tiny-imagenet": 200}[dataset]


def test_cifar10_subproblem_slices_the_shipped_metric(tmp_path, cifar10_dir):
    out = tmp_path / "catdog.pt"
    metric = Path(__file__).resolve().parents[2] / "metrics" / "cifar10-wordnet.csv"
    result = invoke("--dataset", "cifar10", "--data-dir", cifar10_dir, "--classes", "3,5", "--method", "wpgd",
                    "--metric", metric, "--val-fraction", "0", "--out", out, *QUICK)
    assert result.exit_code == 0, result.stderr
    state = load_checkpoint(out)
    assert state["data"]["classes"] == ["cat", "dog"] and state["metric"]["matrix"].tolist() == [[0, 4], [4, 0]]


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["--dataset", "toy", "--model", "nope"], "'nope' is not one of"),
        (["--dataset", "toy", "--model", "mlp", "--eps", "0"], "--eps must be a positive"),
        (["--dataset", "toy", "--model", "mlp", "--eps", "8/0"], "--eps"),
        (["--dataset", "toy", "--model", "mlp", "--steps", "0"], "--steps must be at least 1"),
        (["--dataset", "toy", "--model", "mlp", "--method", "wpgd", "--metric", "METRIC", "--p", "0"], "--p must be positive"),
        (["--dataset", "toy", "--model", "mlp", "--method", "wpgd"], "needs --metric"),
        (["--dataset", "toy", "--model", "mlp", "--method", "wpgd", "--metric", "C10"], "neither"),
        (["--dataset", "toy", "--model", "mlp", "--lam", "-1"], "--lam"),
        (["--dataset", "mnist", "--model", "mlp"], "mnist not found"),
        (["--dataset", "toy", "--model", "mlp", "--method", "wpgd", "--metric", "/nonexistent.csv"], "not found"),
    ],
)
def test_bad_inputs_are_one_line_and_write_nothing(tmp_path, args, fragment, assert_one_line_error):
    root = Path(__file__).resolve().parents[2] / "metrics"
    args = [str(root / "toy-paper.csv") if a == "METRIC" else str(root / "cifar10-wordnet.csv") if a == "C10" else a
            for a in args]
    if "--dataset" in args and args[args.index("--dataset") + 1] == "mnist":
        args += ["--data-dir", str(tmp_path / "empty")]
    out = tmp_path / "run.pt"
    assert_one_line_error(invoke(*QUICK, "--out", out, *args), fragment)  # later flags win
    assert not out.exists() and not log_path_for(out).exists()


def test_resume_of_a_foreign_file_is_refused(tmp_path, assert_one_line_error):
    out = tmp_path / "run.pt"
    out.write_text("not a checkpoint")
    assert_one_line_error(invoke("--dataset", "toy", "--model", "mlp", "--resume", "--out", out, *QUICK),
                          "not a readable checkpoint")


@pytest.mark.parametrize("args, fragment", [
    (["--device", "cuda"], "no CUDA device"),
    (["--dataset", "mnist", "--data-dir", "EMPTY"], "mnist not found"),
])
def test_setup_errors_are_one_line_with_progress_enabled(tmp_path, args, fragment, assert_one_line_error):
    if not __import__("torch").cuda.is_available() or "--device" not in args:
        args = [str(tmp_path / "empty") if a == "EMPTY" else a for a in args]
        base = ["--dataset", "toy", "--model", "mlp", "--epochs", "1", "--out", str(tmp_path / "run.pt")]
        assert_one_line_error(invoke(*base, *args), fragment)  # no --quiet: the progress display is on
