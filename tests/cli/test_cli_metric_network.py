"""`wpgdkit metric build --source boundary|confusion --checkpoint PATH` through typer's CliRunner."""

from __future__ import annotations

import csv
import io
import shlex

import numpy as np
import pytest
from typer.testing import CliRunner

from wpgdkit.cli import app
from wpgdkit.labelmetric import read_metric
from wpgdkit.training import DataConfig, TrainConfig, train

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def parse_csv(text: str) -> tuple[list[str], np.ndarray]:
    rows = list(csv.reader(io.StringIO(text)))
    return rows[0][1:], np.array([[float(v) for v in r[1:]] for r in rows[1:]])


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> str:
    """A 3-class toy MLP trained for two epochs against an ℓ∞ attack (under a second)."""
    out = tmp_path_factory.mktemp("ckpt") / "toy.pt"
    config = TrainConfig(
        data=DataConfig("toy", limit=300, val_fraction=0.0), model="mlp", method="pgd", norm="linf", eps=0.2,
        steps=1, eval_steps=0, epochs=2, batch_size=64, lr=0.05, out=str(out), device="cpu",
    )
    return str(train(config).checkpoint)


def test_boundary_to_stdout(checkpoint):
    result = invoke("metric", "build", "--source", "boundary", "--checkpoint", checkpoint, "--limit", "8")
    assert result.exit_code == 0, result.stderr
    classes, matrix = parse_csv(result.stdout)
    assert classes == ["0", "1", "2"]
    np.testing.assert_array_equal(matrix, matrix.T)
    assert (np.diag(matrix) == 0).all() and (matrix[~np.eye(3, dtype=bool)] > 0).all()
    assert "boundary/linf" in result.stderr  # the checkpoint's attack norm is the default measure


@pytest.mark.parametrize("source", ["boundary", "confusion"])
def test_the_recorded_command_rebuilds_the_metric(tmp_path, checkpoint, source):
    first = tmp_path / "first.json"
    args = ["--source", source, "--checkpoint", checkpoint, "--dataset", "toy", "--split", "train", "--limit", "6"]
    result = invoke("metric", "build", *args, "--out", first, "-q")
    assert result.exit_code == 0, result.stderr
    metric = read_metric(first)
    prov = metric.provenance
    assert prov.source == source and prov.dataset == "toy"
    assert prov.parameters["checkpoint"] == checkpoint and prov.parameters["split"] == "train"
    words = shlex.split(prov.command)
    assert words[:3] == ["wpgdkit", "metric", "build"] and "--checkpoint" in words
    second = tmp_path / "second.json"
    assert invoke(*words[1:], "--out", second, "-q").exit_code == 0
    again = read_metric(second)
    np.testing.assert_array_equal(again.matrix, metric.matrix)
    assert again.provenance == prov


def test_confusion_measure_and_class_subset(checkpoint):
    result = invoke("metric", "build", "--source", "confusion", "--checkpoint", checkpoint, "--measure", "one-minus",
                    "--classes", "2,0", "-q")
    assert result.exit_code == 0, result.stderr
    classes, matrix = parse_csv(result.stdout)
    assert classes == ["2", "0"] and 0 < matrix[0, 1] < 1


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--source", "boundary"], "--source boundary needs --checkpoint"),
        (["--source", "confusion", "--checkpoint", "{tmp}/missing.pt"], "not found"),
        (["--source", "boundary", "--checkpoint", "{tmp}/notes.pt"], "not a readable checkpoint"),
        (["--source", "boundary", "--checkpoint", "{ckpt}", "--dataset", "cifar10"], "disagrees"),
        (["--source", "boundary", "--checkpoint", "{ckpt}", "--limit", "0"], "--limit must be a whole number"),
        (["--source", "confusion", "--checkpoint", "{ckpt}", "--measure", "l2"], "unknown measure 'l2'"),
        (["--source", "confusion", "--checkpoint", "{ckpt}", "--split", "val"], "'val' is not one of"),
        (["--source", "wordnet", "--dataset", "cifar10", "--checkpoint", "{ckpt}"],
         "--checkpoint is only read by --source boundary, confusion"),
        (["--source", "uniform", "--dataset", "toy", "--split", "train"], "--split is only read by"),
        (["--source", "boundary", "--checkpoint", "{ckpt}", "--device", "tpu"], "'tpu' is not one of"),
    ],
)
def test_bad_checkpoint_builds(tmp_path, checkpoint, args, fragment, assert_one_line_error):
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    (inputs / "notes.pt").write_text("not a checkpoint\n")
    out = tmp_path / "out" / "m.csv"
    out.parent.mkdir()
    args = [a.format(tmp=inputs, ckpt=checkpoint) for a in args]
    result = invoke("metric", "build", *args, "--out", out)
    assert_one_line_error(result, fragment)
    assert result.stdout == "" and list(out.parent.iterdir()) == []  # no partial output


@pytest.mark.parametrize("source", ["boundary", "confusion"])
def test_device_flag_runs_there_and_is_not_part_of_the_rebuild_command(tmp_path, checkpoint, source):
    args = ["metric", "build", "--source", source, "--checkpoint", checkpoint, "--limit", "30", "-q"]
    auto, cpu = tmp_path / "auto.json", tmp_path / "cpu.json"
    assert invoke(*args, "--out", auto).exit_code == 0
    result = invoke(*args, "--device", "cpu", "--out", cpu)
    assert result.exit_code == 0, result.stderr
    metric = read_metric(cpu)
    assert "--device" not in metric.provenance.command  # the matrix does not depend on it beyond rounding
    if not __import__("torch").cuda.is_available():  # auto is the CPU here: the same bits
        np.testing.assert_array_equal(read_metric(auto).matrix, metric.matrix)


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="needs a machine without CUDA")
def test_device_cuda_without_a_gpu_is_one_line(tmp_path, checkpoint, assert_one_line_error):
    out = tmp_path / "m.csv"
    result = invoke("metric", "build", "--source", "boundary", "--checkpoint", checkpoint, "--device", "cuda",
                    "--out", out)
    assert_one_line_error(result, "no CUDA device")
    assert not out.exists()


@pytest.fixture(scope="module")
def overflowing_checkpoint(checkpoint, tmp_path_factory) -> str:
    """The toy checkpoint with its weights scaled by 1e30: finite weights, infinite (then NaN) logits."""
    import dataclasses

    from wpgdkit.training import load_checkpoint

    trained = load_checkpoint(checkpoint)
    state = {k: v * 1e30 if v.is_floating_point() else v for k, v in trained.state_dict.items()}
    out = tmp_path_factory.mktemp("big") / "big.pt"
    dataclasses.replace(trained, state_dict=state).save(out)
    return str(out)


@pytest.mark.parametrize(
    ("source", "fragment"),
    [("boundary", "the network produced non-finite distances"), ("confusion", "the network produced non-finite logits")],
)
def test_a_network_with_non_finite_outputs_builds_no_metric(tmp_path, overflowing_checkpoint, source, fragment,
                                                           assert_one_line_error):
    out = tmp_path / "out" / "m.json"
    out.parent.mkdir()
    result = invoke("metric", "build", "--source", source, "--checkpoint", overflowing_checkpoint, "--out", out)
    assert_one_line_error(result, fragment)
    assert list(out.parent.iterdir()) == []  # nothing written
