"""``wpgdkit reproduce`` on the command line."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from wpgdkit.cli import app

runner = CliRunner()
SMALL = ["--dataset", "toy", "--epochs", "1", "--limit", "200", "--test-limit", "60", "--steps", "2", "--eval-steps", "2"]


def test_reproduce_prints_the_report_and_writes_json(tmp_path):
    out = tmp_path / "results"
    result = runner.invoke(app, ["reproduce", "entropy", *SMALL, "--out", str(out), "--json", str(tmp_path / "r.json")])
    assert result.exit_code == 0, result.output
    assert "Confidence of CE and PGD models" in result.stdout
    assert "report:" in result.stderr and (out / "entropy" / "report.md").is_file()
    # Each training and audit says which of how many it is.
    phases = [line for line in result.stderr.splitlines() if line.startswith(("training", "audit"))]
    assert phases[0].startswith("training 1/2: toy-mlp-ce") and phases[0].endswith(" (1 epoch)"), phases
    assert phases[1].startswith("training 2/2: toy-mlp-pgd") and phases[2].startswith("audit 1/1: "), phases
    assert json.loads((tmp_path / "r.json").read_text())["experiment"] == "entropy"
    again = runner.invoke(app, ["reproduce", "entropy", *SMALL, "--out", str(out)])
    assert again.exit_code == 0, again.output
    assert again.stderr.count(" (already trained)\n") == 2 and "training " not in again.stderr


def test_help_lists_the_experiments():
    result = runner.invoke(app, ["reproduce", "--help"])
    assert result.exit_code == 0
    for name in ("gap-correlation", "p-sweep", "imbalance", "entropy", "quick", "paper"):
        assert name in result.stdout


def test_bad_input_is_one_line(tmp_path, assert_one_line_error):
    assert_one_line_error(runner.invoke(app, ["reproduce", "table-9"]), "table-9")
    assert_one_line_error(runner.invoke(app, ["reproduce", "entropy", "--scale", "huge"]), "--scale")
    assert_one_line_error(runner.invoke(app, ["reproduce", "entropy", *SMALL, "--epochs", "0"]), "--epochs")
    assert_one_line_error(runner.invoke(app, ["reproduce", "entropy", "--eps", "x"]), "--eps")
    target = tmp_path / "file"
    target.write_text("")
    assert_one_line_error(runner.invoke(app, ["reproduce", "entropy", *SMALL, "--out", str(target)]), "not a folder")
    assert_one_line_error(runner.invoke(app, ["reproduce", "p-sweep", *SMALL, "--metric", str(tmp_path / "no.csv"),
                                              "--out", str(tmp_path / "o")]), "not found")
    assert not (tmp_path / "o").exists()


def test_missing_data_is_one_line_before_anything_trains(tmp_path, monkeypatch, assert_one_line_error):
    import wpgdkit.training

    monkeypatch.setattr(wpgdkit.training, "train", lambda *a, **k: (_ for _ in ()).throw(AssertionError("trained")))
    empty = tmp_path / "data"
    empty.mkdir()
    out = tmp_path / "o"
    result = runner.invoke(app, ["reproduce", "p-sweep", "--dataset", "cifar10", "--data-dir", str(empty),
                                 "--out", str(out)])
    assert_one_line_error(result, "cifar10 not found", str(empty))
    assert not list(out.rglob("*.pt"))


def test_data_dir_reaches_training_and_the_audit_and_is_recorded(tmp_path, cifar10_dir):
    out = tmp_path / "o"
    args = ["reproduce", "entropy", "--dataset", "cifar10", "--model", "mlp", "--epochs", "1", "--limit", "20",
            "--test-limit", "6", "--steps", "1", "--eval-steps", "1", "--data-dir", str(cifar10_dir),
            "--out", str(out), "--quiet", "--json", "-"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    commands = payload["commands"]
    assert any(c.startswith("wpgdkit train") for c in commands) and any(c.startswith("wpgdkit audit") for c in commands)
    assert all(f"--data-dir {cifar10_dir}" in c for c in commands)
    assert f"--data-dir {cifar10_dir}" in (out / "entropy" / "report.md").read_text()


def _interrupt_training(monkeypatch, seen=None):
    import torch

    import wpgdkit.training

    def interrupted(config, progress=None):
        if seen is not None:
            seen.append(torch.get_num_threads())
        if progress is not None:
            progress.start_epoch(0, 3)  # real work started: the phase line is printed now
        raise KeyboardInterrupt

    monkeypatch.setattr(wpgdkit.training, "train", interrupted)


def test_ctrl_c_is_one_line_after_the_progress_and_says_how_to_resume(tmp_path, monkeypatch):
    _interrupt_training(monkeypatch)
    out = tmp_path / "results"
    result = runner.invoke(app, ["reproduce", "entropy", *SMALL, "--out", str(out)])
    assert result.exit_code == 130, result.output
    phase, line = result.stderr.splitlines()
    assert phase.startswith("training 1/2: toy-mlp-ce")
    assert line == f"wpgdkit: interrupted; finished checkpoints in {out / 'runs'} are kept and the same command resumes"
    assert "Traceback" not in result.output and result.stdout == ""
    assert not list(out.rglob("*.pt")) and not list(out.rglob("*.tmp"))


def test_threads_reach_the_library_and_zero_is_one_line(tmp_path, monkeypatch, assert_one_line_error):
    import torch

    seen: list[int] = []
    _interrupt_training(monkeypatch, seen)
    before = torch.get_num_threads()
    result = runner.invoke(app, ["reproduce", "entropy", *SMALL, "--threads", "2", "--quiet",
                                 "--out", str(tmp_path / "o")])
    assert result.exit_code == 130 and seen == [2] and torch.get_num_threads() == before
    assert_one_line_error(runner.invoke(app, ["reproduce", "entropy", *SMALL, "--threads", "0",
                                              "--out", str(tmp_path / "z")]), "threads", "at least 1")
    assert not (tmp_path / "z").exists() and seen == [2]


def test_a_truncated_training_file_is_one_line_before_training_and_before_out_exists(
        tmp_path, cifar10_dir, monkeypatch, assert_one_line_error):
    import wpgdkit.training

    monkeypatch.setattr(wpgdkit.training, "train", lambda *a, **k: (_ for _ in ()).throw(AssertionError("trained")))
    batch = cifar10_dir / "cifar-10-batches-py" / "data_batch_2"
    batch.write_bytes(batch.read_bytes()[:100])  # the train split only: the test split is intact
    out = tmp_path / "o"
    result = runner.invoke(app, ["reproduce", "p-sweep", "--dataset", "cifar10", "--model", "mlp", "--epochs", "1",
                                 "--data-dir", str(cifar10_dir), "--out", str(out)])
    assert_one_line_error(result, "data_batch_2")
    assert not out.exists()  # no run folder left behind


def test_a_folder_given_as_metric_says_so(tmp_path, assert_one_line_error):
    folder = tmp_path / "metric.csv"
    folder.mkdir()
    result = runner.invoke(app, ["reproduce", "p-sweep", *SMALL, "--metric", str(folder), "--out", str(tmp_path / "o")])
    assert_one_line_error(result, "is a folder, not a file")
    assert not (tmp_path / "o").exists()


def test_seeds_outside_0_to_2_32_are_one_line_before_anything_is_written(tmp_path, assert_one_line_error):
    for seed in ("-1", str(2**32), str(10**23)):
        result = runner.invoke(app, ["reproduce", "entropy", *SMALL, "--seed", seed, "--out", str(tmp_path / "o")])
        assert_one_line_error(result, "--seed must be a whole number in [0, 4294967295]")
    assert not (tmp_path / "o").exists()
