"""`wpgdkit train` end to end on every dataset format, and its bad inputs."""

from __future__ import annotations

import json
import sys
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
    assert state.method == "wpgd" and state.threat.norm == "l2" and state.threat.eps == 0.4
    record = json.loads(log_path_for(out).read_text().splitlines()[-1])
    assert {"epoch", "train_loss", "val_accuracy", "val_robust_accuracy", "images_per_s"} <= set(record)


def test_fashion_mnist_pgd_with_paper_style_budgets(tmp_path):
    out = tmp_path / "fm.pt"
    result = invoke("--dataset", "fashion-mnist", "--model", "small-cnn", "--method", "pgd", "--eps", "8/255",
                    "--step-size", "2/255", "--limit", "64", "--out", out, *QUICK)
    assert result.exit_code == 0, result.stderr
    state = load_checkpoint(out)
    assert state.threat.eps == pytest.approx(8 / 255) and state.threat.step == pytest.approx(2 / 255)
    assert state.model.mean == (pytest.approx(0.2860),) and state.data.augment is False


@pytest.mark.parametrize("dataset, fixture", [("cifar10", "cifar10_dir"), ("cifar100", "cifar100_dir"),
                                              ("tiny-imagenet", "tiny_imagenet_dir")])
def test_folder_datasets_in_their_real_formats(tmp_path, request, dataset, fixture):
    data_dir = request.getfixturevalue(fixture)
    out = tmp_path / f"{dataset}.pt"
    result = invoke("--dataset", dataset, "--data-dir", data_dir, "--model", "small-cnn", "--method", "pgd",
                    "--eps", "4/255", "--out", out, *QUICK)
    assert result.exit_code == 0, result.stderr
    state = load_checkpoint(out)
    assert state.data.augment is True
    assert state.model.num_classes == {"cifar10": 10, "cifar100": 100, "tiny-imagenet": 200}[dataset]


def test_cifar10_subproblem_slices_the_shipped_metric(tmp_path, cifar10_dir):
    out = tmp_path / "catdog.pt"
    metric = Path(__file__).resolve().parents[2] / "metrics" / "cifar10-wordnet.csv"
    result = invoke("--dataset", "cifar10", "--data-dir", cifar10_dir, "--classes", "3,5", "--method", "wpgd",
                    "--metric", metric, "--val-fraction", "0", "--out", out, *QUICK)
    assert result.exit_code == 0, result.stderr
    state = load_checkpoint(out)
    assert state.classes == ("cat", "dog") and state.metric.matrix.tolist() == [[0, 4], [4, 0]]


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["--dataset", "toy", "--model", "nope"], "unknown model 'nope'"),
        (["--dataset", "toy", "--model", "mlp", "--eps", "0"], "--eps must be a positive"),
        (["--dataset", "toy", "--model", "mlp", "--eps", "8/0"], "--eps"),
        (["--dataset", "toy", "--model", "mlp", "--steps", "0"], "--steps must be a whole number of at least 1"),
        (["--dataset", "toy", "--model", "mlp", "--method", "wpgd", "--metric", "METRIC", "--p", "0"], "--p must be a number in (0, 1000]"),
        (["--dataset", "toy", "--model", "mlp", "--method", "wpgd"], "needs a label metric (--metric)"),
        (["--dataset", "toy", "--model", "mlp", "--method", "wpgd", "--metric", "C10"], "not the 3 classes"),
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


# --- progress in a log file, Ctrl-C, --threads ------------------------------------------------

TOY = ["--dataset", "toy", "--model", "mlp", "--limit", "64", "--val-fraction", "0", "--steps", "1", "--eval-steps", "0",
       "--batch-size", "16", "--device", "cpu"]


def test_progress_off_a_terminal_is_plain_batch_lines(tmp_path, monkeypatch):
    import wpgdkit.cli._progress

    monkeypatch.setattr(wpgdkit.cli._progress, "INTERVAL_S", 0.0)  # a line after every batch
    result = invoke(*TOY, "--epochs", "2", "--out", tmp_path / "run.pt")
    assert result.exit_code == 0, result.stderr
    lines = result.stderr.splitlines()
    assert lines[0].startswith("epoch 1/2: batch 1/4 (25%), loss ") and ", eta " in lines[0]
    assert any(line.startswith("epoch 2/2: batch 4/4 (100%)") for line in lines)
    assert "\x1b[" not in result.stderr  # no terminal control codes in a log


def _fake_training(monkeypatch, finished_epochs: int):
    """The library's train, interrupted (as by Ctrl-C) once the run's checkpoint holds ``finished_epochs`` epochs."""
    import wpgdkit.training

    real = wpgdkit.training.train

    def stop(record):
        if record["epoch"] >= finished_epochs:
            raise KeyboardInterrupt

    def interrupted(config, progress=None):
        if not finished_epochs:
            raise KeyboardInterrupt
        real(config, progress=progress, on_epoch_end=stop)

    monkeypatch.setattr(wpgdkit.training, "train", interrupted)


def test_ctrl_c_says_which_epoch_is_saved_and_how_to_resume(tmp_path, monkeypatch):
    out = tmp_path / "my runs" / "run.pt"
    args = ["train", *TOY, "--epochs", "3", "--out", str(out), "--quiet"]
    monkeypatch.setattr("sys.argv", ["/usr/bin/wpgdkit", *args])
    _fake_training(monkeypatch, finished_epochs=1)
    result = runner.invoke(app, args)
    assert result.exit_code == 130, result.output
    resume = "wpgdkit train " + " ".join(args[1:]).replace(str(out), f"'{out}'") + " --resume"
    assert result.stderr == f"wpgdkit: interrupted; {out} holds epoch 1 of 3; resume with: {resume}\n"
    assert "Traceback" not in result.output and result.stdout == ""
    assert sorted(out.parent.iterdir()) == sorted([out, log_path_for(out)])  # no partial file


def test_ctrl_c_of_a_resumed_run_keeps_its_flags(tmp_path, monkeypatch):
    out = tmp_path / "run.pt"
    _fake_training(monkeypatch, finished_epochs=2)
    args = ["train", *TOY, "--epochs", "4", "--quiet", "--out", str(out), "--resume"]
    monkeypatch.setattr("sys.argv", ["wpgdkit", *args])
    result = runner.invoke(app, args)
    assert result.exit_code == 130, result.output
    assert result.stderr == f"wpgdkit: interrupted; {out} holds epoch 2 of 4; resume with: wpgdkit {' '.join(args)}\n"
    args = [*args[:-3], "--out", str(tmp_path / "fresh.pt"), "--no-resume"]
    monkeypatch.setattr("sys.argv", ["wpgdkit", *args])
    result = runner.invoke(app, args)
    assert result.stderr.endswith(f"resume with: wpgdkit {' '.join(args[:-1])} --resume\n"), result.stderr


def test_ctrl_c_before_the_first_epoch_saved_nothing(tmp_path, monkeypatch):
    _fake_training(monkeypatch, finished_epochs=0)
    out = tmp_path / "run.pt"
    result = invoke(*TOY, "--out", out)
    assert result.exit_code == 130, result.output
    assert result.stderr == "wpgdkit: interrupted; nothing was saved\n"
    assert list(tmp_path.iterdir()) == []
    out.write_bytes(b"an old file this run did not touch")
    result = invoke(*TOY, "--out", out)
    assert (result.exit_code, result.stderr) == (130, "wpgdkit: interrupted; nothing was saved\n")


def test_ctrl_c_takes_the_progress_display_down_first(tmp_path, monkeypatch):
    import wpgdkit.training
    from wpgdkit.cli._progress import RichProgress

    stopped = []
    monkeypatch.setattr(RichProgress, "stop", lambda self: stopped.append("display"))

    def interrupted(config, progress=None):
        raise KeyboardInterrupt

    monkeypatch.setattr(wpgdkit.training, "train", interrupted)
    command = sys.modules["wpgdkit.cli.train"]  # wpgdkit.cli.train is the command function
    monkeypatch.setattr(command, "_interrupted", lambda *a: stopped.append("line") or "nothing was saved")
    result = invoke(*TOY, "--out", tmp_path / "run.pt")
    assert result.exit_code == 130 and stopped == ["display", "line"]


def test_threads_reach_the_training(tmp_path, monkeypatch):
    import torch

    import wpgdkit.training

    seen = []
    monkeypatch.setattr(wpgdkit.training, "train", lambda config, progress=None: seen.append(torch.get_num_threads()))
    before = torch.get_num_threads()
    result = invoke(*TOY, "--threads", "2", "--quiet", "--out", tmp_path / "run.pt")
    assert result.exit_code == 0, result.output
    assert seen == [2] and torch.get_num_threads() == before


def test_zero_threads_is_one_line(tmp_path, assert_one_line_error):
    out = tmp_path / "run.pt"
    assert_one_line_error(invoke(*TOY, "--threads", "0", "--out", out), "threads", "at least 1")
    assert not out.exists()


def test_an_existing_run_needs_resume_or_force(tmp_path, assert_one_line_error):
    out = tmp_path / "run.pt"
    args = ["train", "--dataset", "toy", "--model", "mlp", "--method", "ce", "--limit", "64", "--val-fraction", "0",
            "--eval-steps", "0", "--epochs", "1", "--batch-size", "32", "--device", "cpu", "--quiet", "--out", str(out)]
    assert runner.invoke(app, args).exit_code == 0
    before = out.read_bytes()
    assert_one_line_error(runner.invoke(app, args), "already holds a run", "(--resume)", "(--force)")
    assert out.read_bytes() == before
    assert runner.invoke(app, [*args, "--resume"]).exit_code == 0  # complete: nothing more to train
    assert out.read_bytes() == before
    assert runner.invoke(app, [*args, "--force", "--seed", "3"]).exit_code == 0
    assert load_checkpoint(out).settings.seed == 3 and len(log_path_for(out).read_text().splitlines()) == 1
