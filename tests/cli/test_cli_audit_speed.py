"""``wpgdkit audit --early-stop`` and ``--memory-format`` (issue 14): what they record, and what they refuse."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from wpgdkit.cli import app
from wpgdkit.training import DataConfig, TrainConfig, train

runner = CliRunner()


@pytest.fixture(scope="module")
def toy_pgd(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli-audit-speed") / "pgd.pt"
    train(TrainConfig(data=DataConfig("toy", limit=300, val_fraction=0.0), model="mlp", method="pgd", norm="l2",
                      eps=0.4, steps=2, eval_steps=0, epochs=1, lr=0.05, out=str(out), device="cpu"))
    return str(out)


def _json(result) -> dict:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_early_stop_is_recorded_and_fools_at_least_as_many_points(toy_pgd):
    common = ["audit", toy_pgd, "--limit", "120", "--eps", "0.8", "--json", "-", "--quiet"]
    plain = _json(runner.invoke(app, common))
    early = _json(runner.invoke(app, [*common, "--early-stop"]))
    assert plain["attack"]["early_stop"] is False and early["attack"]["early_stop"] is True
    assert 0 < plain["adversarial_error"] < 100
    # Same seeds: every point fooled by the last iterate was fooled at some iterate (ℓ2 steps: no sign flips).
    assert early["adversarial_error"] >= plain["adversarial_error"]
    assert early["natural_error"] == plain["natural_error"] and early["score"] is not None  # S still reported
    assert plain["models"][0]["memory_format"] == "contiguous"  # an MLP on features: nothing to measure


def test_early_stop_note_in_the_table(toy_pgd):
    result = runner.invoke(app, ["audit", toy_pgd, "--limit", "30", "--early-stop"])
    assert result.exit_code == 0, result.output
    assert "early stop: each point's first mistake counts" in " ".join(result.stdout.split())


@pytest.mark.parametrize("attack", ["wpgd", "worst-cost", "strong"])
def test_early_stop_is_refused_for_attacks_that_feed_s(toy_pgd, attack, tmp_path, assert_one_line_error, monkeypatch):
    import wpgdkit.audit.core

    monkeypatch.setattr(wpgdkit.audit.core, "load_subject", lambda path: (_ for _ in ()).throw(AssertionError("loaded")))
    out = tmp_path / "a.json"
    result = runner.invoke(app, ["audit", toy_pgd, "--attack", attack, "--early-stop", "--json", str(out)])
    assert_one_line_error(result, f"early stop is for plain PGD (pgd), not {attack}")
    assert not out.exists()


def test_memory_format_flag(toy_pgd, tmp_path, assert_one_line_error):
    doc = _json(runner.invoke(app, ["audit", toy_pgd, "--limit", "20", "--memory-format", "contiguous", "--json", "-",
                                    "--quiet"]))
    assert doc["models"][0]["memory_format"] == "contiguous"
    out = tmp_path / "a.json"
    assert_one_line_error(runner.invoke(app, ["audit", toy_pgd, "--memory-format", "nhwc", "--json", str(out)]),
                          "--memory-format")
    assert_one_line_error(runner.invoke(app, ["audit", toy_pgd, "--memory-format", "channels_last", "--json", str(out)]),
                          "channels_last needs images")
    assert not out.exists()


def test_help_names_the_flags():
    result = runner.invoke(app, ["audit", "--help"], env={"COLUMNS": "300"})
    assert result.exit_code == 0
    text = " ".join(result.stdout.split())
    assert "--early-stop" in text and "--memory-format" in text and "channels_last" in text
