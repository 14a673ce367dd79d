"""``wpgdkit audit`` on the command line: output, JSON on stdout, and one-line errors for bad input."""

from __future__ import annotations

import json
import os
import zipfile

import pytest
import torch
from typer.testing import CliRunner

from wpgdkit.cli import app
from wpgdkit.labelmetric import LabelMetric, write_metric
from wpgdkit.labelmetric.shipped import PAPER_TOY_METRIC
from wpgdkit.training import DataConfig, TrainConfig, train

runner = CliRunner()


def _train(folder, name: str, method: str = "pgd", **data_changes) -> str:
    out = folder / f"{name}.pt"
    train(TrainConfig(data=DataConfig("toy", limit=300, val_fraction=0.0, **data_changes), model="mlp", method=method,
                      norm="l2", eps=0.4, steps=2, eval_steps=0, epochs=1, lr=0.05, out=str(out), device="cpu"))
    return str(out)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cli-audit")
    return {"ce": _train(folder, "ce", "ce"), "pgd": _train(folder, "pgd"),
            "sub": _train(folder, "sub", classes=("0", "1")), "folder": folder}


def test_audit_prints_the_comparison_table(runs):
    result = runner.invoke(app, ["audit", runs["ce"], runs["pgd"], "--baseline", runs["ce"], "--reference", runs["pgd"],
                                 "--limit", "90"])
    assert result.exit_code == 0, result.output
    for text in ("comparison", "NE %", "AE %", "S − S_ref", "ce", "pgd", "most frequent adversarial flips",
                 "attack pgd l2 ε=0.4, 20 steps"):
        assert text in result.stdout, text


def test_json_to_stdout_is_only_json(runs):
    result = runner.invoke(app, ["audit", runs["pgd"], "--limit", "30", "--json", "-"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["num_points"] == 30 and doc["models"][0]["name"] == "pgd"


def test_plots_folder_gets_pictures(runs, tmp_path):
    result = runner.invoke(app, ["audit", runs["ce"], runs["pgd"], "--baseline", runs["ce"], "--limit", "60", "--quiet",
                                 "--plots", str(tmp_path / "plots")])
    assert result.exit_code == 0, result.output
    names = {p.name for p in (tmp_path / "plots").iterdir()}
    assert {"metric.png", "pgd-gap.png", "pgd-confusion-adversarial.png", "pgd-entropy.png"} <= names


def test_audit_of_a_class_subset_slices_the_shipped_metric(runs):
    result = runner.invoke(app, ["audit", runs["sub"], "--limit", "40", "--json", "-", "--quiet"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["classes"] == ["0", "1"] and doc["metric"]["matrix"] == [[0.0, 10.0], [10.0, 0.0]]


# --- bad input: one line on stderr, exit code 2, nothing written --------------------------


def _malicious_checkpoint(path, marker):
    class Exploit:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    torch.save({"format": "wpgdkit-checkpoint", "payload": Exploit()}, path)


def test_a_checkpoint_carrying_code_is_refused_and_nothing_runs(tmp_path, assert_one_line_error):
    marker = tmp_path / "pwned"
    bad = tmp_path / "evil.pt"
    _malicious_checkpoint(bad, marker)
    out = tmp_path / "audit.json"
    result = runner.invoke(app, ["audit", str(bad), "--json", str(out)])
    assert_one_line_error(result, "refused to load", "evil.pt")
    assert not marker.exists() and not out.exists()


def test_the_malicious_file_would_run_code_if_unpickled(tmp_path):
    """The fixture is a real exploit: plain pickle loading runs it (so the refusal above means something)."""
    marker = tmp_path / "pwned"
    bad = tmp_path / "evil.pt"
    _malicious_checkpoint(bad, marker)
    torch.load(bad, weights_only=False)
    assert marker.exists()


def test_truncated_and_foreign_files_are_refused(runs, tmp_path, assert_one_line_error):
    data = open(runs["pgd"], "rb").read()
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(data[: len(data) // 2])
    assert_one_line_error(runner.invoke(app, ["audit", str(truncated)]), "not a readable checkpoint")
    foreign = tmp_path / "foreign.pt"
    torch.save({"state_dict": {"w": torch.zeros(2)}}, foreign)
    # A state_dict is weights without an architecture: the message says how to give one.
    assert_one_line_error(runner.invoke(app, ["audit", str(foreign)]), "holds weights only", "--model ARCH --weights")
    text = tmp_path / "notes.pt"
    text.write_text("hello")
    assert_one_line_error(runner.invoke(app, ["audit", str(text)]), "not a readable checkpoint")
    assert zipfile.is_zipfile(runs["pgd"])  # the good one is a torch zip archive


@pytest.mark.parametrize("args, fragment", [
    (["--eps", "0"], "--eps"),
    (["--eps", "-1/255"], "--eps"),
    (["--steps", "0"], "--steps"),
    (["--restarts", "0"], "--restarts"),
    (["--attack", "fgsm"], "--attack"),
    (["--limit", "0"], "--limit"),
    (["--batch-size", "0"], "--batch-size"),
    (["--attack-lam", "-1"], "--attack-lam"),
    (["--attack", "autoattack"], "autoattack"),  # toy data is not an image, or torchattacks is missing
])
def test_bad_flags_are_one_line_errors(runs, args, fragment, tmp_path, assert_one_line_error):
    out = tmp_path / "a.json"
    result = runner.invoke(app, ["audit", runs["pgd"], "--limit", "10", *args, "--json", str(out)])
    assert_one_line_error(result, fragment)
    assert not out.exists()


def test_missing_checkpoint_and_missing_argument(tmp_path, assert_one_line_error):
    assert_one_line_error(runner.invoke(app, ["audit", str(tmp_path / "none.pt")]), "not found")
    # No model at all: the line says what to give (a file, or --model).
    assert_one_line_error(runner.invoke(app, ["audit"]), "give at least one model to audit")


def test_baseline_on_other_classes_is_refused(runs, assert_one_line_error):
    result = runner.invoke(app, ["audit", runs["pgd"], "--baseline", runs["sub"]])
    assert_one_line_error(result, "--baseline", "other classes")
    result = runner.invoke(app, ["audit", runs["pgd"], runs["sub"]])
    assert_one_line_error(result, "other classes")


def test_metric_of_the_wrong_size_is_refused(runs, tmp_path, assert_one_line_error):
    metric = write_metric(LabelMetric(("a", "b", "c", "d"), 1.0 - torch.eye(4).double().numpy()), tmp_path / "m.csv")
    result = runner.invoke(app, ["audit", runs["pgd"], "--metric", str(metric)])
    assert_one_line_error(result, "4 classes", "not the 3 classes")
    good = write_metric(PAPER_TOY_METRIC, tmp_path / "toy.csv")
    assert runner.invoke(app, ["audit", runs["pgd"], "--metric", str(good), "--limit", "10", "-q"]).exit_code == 0


def test_checkpoints_of_different_datasets_are_refused(runs, tmp_path, assert_one_line_error):
    import dataclasses

    from wpgdkit.checkpoint import load_checkpoint

    state = load_checkpoint(runs["pgd"])
    state.settings = dataclasses.replace(state.settings, data=dataclasses.replace(state.data, dataset="mnist"))
    other = state.save(tmp_path / "mnist.pt")
    assert_one_line_error(runner.invoke(app, ["audit", runs["pgd"], str(other)]), "trained on mnist")


def test_plots_path_that_is_a_file_is_refused_before_any_work(runs, tmp_path, assert_one_line_error):
    target = tmp_path / "plots"
    target.write_text("")
    assert_one_line_error(runner.invoke(app, ["audit", runs["pgd"], "--plots", str(target)]), "not a folder")


# --- progress in a log file, Ctrl-C, --threads ------------------------------------------------


def test_progress_off_a_terminal_is_plain_batch_lines(runs, monkeypatch):
    import wpgdkit.cli._progress

    monkeypatch.setattr(wpgdkit.cli._progress, "INTERVAL_S", 0.0)  # a line after every batch
    result = runner.invoke(app, ["audit", runs["pgd"], "--limit", "30", "--batch-size", "10"])
    assert result.exit_code == 0, result.output
    lines = result.stderr.splitlines()
    assert lines[0].startswith("attacking pgd: batch 1/3 (33%), eta ")
    assert lines[2] == "attacking pgd: batch 3/3 (100%), eta 0s"
    assert "\x1b[" not in result.stderr


def test_ctrl_c_is_one_line_and_writes_nothing(runs, tmp_path, monkeypatch):
    import wpgdkit.audit

    def interrupted(config, progress=None):
        progress.start_model("pgd", 3)
        progress.advance()
        raise KeyboardInterrupt

    monkeypatch.setattr(wpgdkit.audit, "audit", interrupted)
    out, plots = tmp_path / "a.json", tmp_path / "plots"
    result = runner.invoke(app, ["audit", runs["pgd"], "--json", str(out), "--plots", str(plots)])
    assert result.exit_code == 130, result.output
    assert result.stderr == "wpgdkit: interrupted; nothing was written\n"
    assert "Traceback" not in result.output and list(tmp_path.iterdir()) == []


def test_ctrl_c_while_drawing_leaves_no_partial_set_of_plots(runs, tmp_path, monkeypatch):
    import wpgdkit.audit.plots as plots_module

    real, calls = plots_module._plot_confusion, []

    def interrupted(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:  # after the metric heatmap and one confusion matrix were drawn
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(plots_module, "_plot_confusion", interrupted)
    out, plots = tmp_path / "a.json", tmp_path / "plots"
    result = runner.invoke(app, ["audit", runs["pgd"], "--limit", "10", "--quiet", "--json", str(out),
                                 "--plots", str(plots)])
    assert result.exit_code == 130, result.output
    assert result.stderr == "wpgdkit: interrupted; nothing was written\n"
    assert len(calls) == 2
    assert not out.exists() and not plots.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no hidden temporary folder either


def test_threads_reach_the_audit(runs, monkeypatch):
    import wpgdkit.audit

    real, seen = wpgdkit.audit.audit, []

    def recording(config, progress=None):
        seen.append(torch.get_num_threads())
        return real(config, progress=progress)

    monkeypatch.setattr(wpgdkit.audit, "audit", recording)
    before = torch.get_num_threads()
    result = runner.invoke(app, ["audit", runs["pgd"], "--limit", "10", "--threads", "3", "--quiet"])
    assert result.exit_code == 0, result.output
    assert seen == [3] and torch.get_num_threads() == before


def test_zero_threads_is_one_line(runs, tmp_path, assert_one_line_error):
    out = tmp_path / "a.json"
    assert_one_line_error(runner.invoke(app, ["audit", runs["pgd"], "--threads", "0", "--json", str(out)]),
                          "threads", "at least 1")
    assert not out.exists()


@pytest.mark.parametrize("args, fragment", [
    (["--seed", "-1"], "--seed must be a whole number in [0, 4294967295], got -1"),
    (["--seed", str(2**32)], "--seed must be a whole number in [0, 4294967295]"),
    (["--seed", str(10**23)], "--seed must be a whole number in [0, 4294967295]"),
    (["--steps", "0"], "--steps must be a whole number in [1, 2147483647], got 0"),
    (["--restarts", "0"], "--restarts must be a whole number in [1, 10000], got 0"),
    (["--attack-p", "0"], "--attack-p must be a number > 0"),
    (["--attack-p", "nan"], "--attack-p must be a number > 0"),
    (["--limit", str(2**40)], "--limit must be a whole number in [1, 2147483647]"),
    (["--bins", "0"], "--bins must be a whole number in [1, 100000], got 0"),
])
def test_numbers_outside_their_range_are_one_line_before_any_checkpoint_loads(
        runs, tmp_path, args, fragment, assert_one_line_error, monkeypatch):
    import wpgdkit.audit.core

    monkeypatch.setattr(wpgdkit.audit.core, "load_subject", lambda path: (_ for _ in ()).throw(AssertionError("loaded")))
    out = tmp_path / "a.json"
    assert_one_line_error(runner.invoke(app, ["audit", runs["pgd"], *args, "--json", str(out)]), fragment)
    assert not out.exists()


@pytest.mark.parametrize("role", ["checkpoint", "--baseline", "--reference", "--metric"])
def test_a_folder_given_for_an_input_file_says_so(runs, tmp_path, role, assert_one_line_error):
    folder = tmp_path / "given.pt"
    folder.mkdir()
    args = [str(folder)] if role == "checkpoint" else [runs["pgd"], role, str(folder)]
    assert_one_line_error(runner.invoke(app, ["audit", *args]), f"{folder} is a folder, not a file")
