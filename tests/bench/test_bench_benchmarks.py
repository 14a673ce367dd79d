"""Each benchmark of wpgdkit.bench: its rows, values and skips (never its timings)."""

from __future__ import annotations

import json
import math
import sys

import pytest
import torch

from wpgdkit import bench
from wpgdkit.attacks import PGD, ThreatModel
from wpgdkit.bench import BenchConfig, BenchRow
from wpgdkit.bench.audit import count_attack_calls
from wpgdkit.errors import DataNotFoundError, WordNetError

# One timed call and no warm-up: these tests check structure and values, not speed.
FAST = BenchConfig(quick=True, repeats=1, warmup=0, device="cpu")



@pytest.fixture
def no_fashion_mnist(monkeypatch):
    def missing(*args, **kwargs):
        raise DataNotFoundError("no Fashion-MNIST here")

    monkeypatch.setattr("wpgdkit.datasets.load_tensors", missing)


def _check_timed(row: BenchRow) -> None:
    assert row.status == "ok", row.note
    assert row.ours_s > 0 and row.reference_s > 0
    assert row.ratio == pytest.approx(row.reference_s / row.ours_s)
    json.dumps(row.to_dict(), allow_nan=False)  # plain JSON values only


# --- loss ---------------------------------------------------------------------------------------


def test_loss_closed_form_agrees_with_pot():
    rows = bench.bench_loss(FAST)
    assert [(r.case, r.reference.split()[0]) for r in rows] == [
        ("K=10, batch 16, p=1", "ot.emd2"), ("K=10, batch 16, p=1", "ot.sinkhorn2"),
        ("K=100, batch 16, p=1", "ot.emd2"), ("K=100, batch 16, p=1", "ot.sinkhorn2"),
    ]
    for row in rows:
        _check_timed(row)
        assert row.unit == "batch" and row.extra["within_tolerance"] is True
    emd = [r for r in rows if r.reference.startswith("ot.emd2")]
    sinkhorn = [r for r in rows if r.reference.startswith("ot.sinkhorn2")]
    assert all(r.agreement <= 1e-9 for r in emd)  # exact LP: agrees to rounding (ot_check's tolerance)
    assert all(r.agreement <= 1e-6 for r in sinkhorn)  # the forced plan: only convergence error
    for r in sinkhorn:  # the entropic objective would differ by reg·H(q)
        assert r.extra["entropic_gap_mean"] > 0 and r.extra["reg_relative"] == 0.01 and "reg 0.01·max C" in r.note


# --- attack-step --------------------------------------------------------------------------------


def test_attack_step_quick_measures_the_small_cnn_and_leaves_out_the_wrn():
    small, wrn = bench.bench_attack_step(BenchConfig(quick=True, repeats=2, warmup=0, device="cpu"))
    _check_timed(small)
    assert small.case == "small-cnn, 1×28×28, batch 8" and (small.ours, small.reference) == ("WPGD", "PGD")
    assert small.extra["wpgd_over_pgd"] == pytest.approx(1 / small.ratio) and small.unit == "step"
    assert small.ours_s == pytest.approx(small.extra["wpgd_step_median_s"])
    assert len(small.extra["pgd_step_times_s"]) == 2 and small.extra["pgd_step_iqr_s"] >= 0
    threat = small.extra["threat"]  # the threat model's own default step, no random start
    assert threat["step_size"] == pytest.approx(ThreatModel(eps=8 / 255, steps=1).step) and not threat["random_start"]
    assert wrn.status == "skipped" and "--quick" in wrn.note and wrn.ours_s is None and wrn.ratio is None


# --- torchattacks -------------------------------------------------------------------------------


def test_torchattacks_missing_is_a_skipped_row(monkeypatch):
    monkeypatch.setitem(sys.modules, "torchattacks", None)  # import torchattacks now raises ImportError
    (row,) = bench.bench_torchattacks(FAST)
    assert row.status == "skipped" and "pip install" in row.note and row.ours_s is None
    assert bench.bench_header(torch.device("cpu"))["torchattacks"] is None


def test_torchattacks_on_random_images_without_fashion_mnist(no_fashion_mnist):
    pytest.importorskip("torchattacks")
    (row,) = bench.bench_torchattacks(BenchConfig(quick=True, repeats=2, warmup=0, device="cpu", batch=32))
    _check_timed(row)
    extra = row.extra
    assert extra["data"] == "random images" and "no Fashion-MNIST" in extra["why_not_fashion_mnist"]
    assert extra["clean_accuracy"] == 1.0  # labels are the untrained model's own predictions
    assert extra["points"] == 64 and extra["steps"] == 10
    assert extra["step_size"] == pytest.approx(ThreatModel(eps=8 / 255, steps=10).step)
    for side in ("ours", "reference"):
        assert 0.0 <= extra[f"{side}_adversarial_accuracy"] <= 1.0
        assert len(extra[f"{side}_adversarial_accuracy_per_repeat"]) == 2
        assert extra[f"{side}_max_linf_perturbation"] <= 8 / 255 + 1e-6
    assert math.isfinite(extra["difference_binomial_se"])


# --- wordnet ------------------------------------------------------------------------------------


def test_wordnet_unavailable_is_reported_as_skipped(monkeypatch):
    def missing(*args, **kwargs):
        raise WordNetError("WordNet data not found (looked in /nowhere)")

    monkeypatch.setattr("wpgdkit.wordnet.load_wordnet", missing)
    rows = bench.bench_wordnet(FAST)
    assert [r.case for r in rows] == ["tiny-imagenet, K=200", "random nouns, K=100", "cifar10 build, fresh process"]
    assert all(r.status == "skipped" and "WordNet not available" in r.note and "/nowhere" in r.note for r in rows)
    full = bench.bench_wordnet(BenchConfig(device="cpu"))  # a full run also builds lch, wup and lca-depth
    assert [r.ours for r in full[:4]] == [f"batched build ({m})" for m in ("path", "lch", "wup", "lca-depth")]
    assert full[3].reference is None and all(r.status == "skipped" for r in full)
    assert len(full) == 9 and full[-1].case == "cifar10 build, fresh process"


def test_wordnet_build_agrees_with_nltk(wordnet):
    *rows, fresh = bench.bench_wordnet(FAST)
    assert [r.extra["num_classes"] for r in rows] == [200, 100]
    # A whole build in fresh processes: the warm cache gives the same matrix without importing NLTK.
    _check_timed(fresh)
    assert (fresh.case, fresh.ours, fresh.reference) == ("cifar10 build, fresh process", "warm cache", "no cache (NLTK)")
    assert fresh.agreement == 0.0 and fresh.extra["cached_imports_nltk"] is False
    assert fresh.extra["cold_cpu_s"] > 0 and fresh.extra["cached_cpu_s"] > 0 and fresh.extra["repeats"] == 1
    for row in rows:
        _check_timed(row)
        assert row.agreement == 0.0 and row.extra["max_abs_difference"] == 0.0  # path lengths are integers
        assert row.extra["nltk_pairs_timed"] == 200 and row.extra["nltk_extrapolated"] is True
    assert rows[0].extra["pairs"] == 200 * 199 // 2
    first = bench.sample_noun_synsets(wordnet, 5, seed=3)
    assert first == bench.sample_noun_synsets(wordnet, 5, seed=3) and all(s.pos() == "n" for s in first)


# --- audit and train-loop (the former scripts) ----------------------------------------------------


def test_audit_without_fashion_mnist_is_five_skipped_rows(no_fashion_mnist):
    rows = bench.bench_audit(FAST)
    assert [(r.ours, r.reference) for r in rows] == [
        ("audit PGD", "torchattacks.PGD"), ("audit PGD, early stop", "torchattacks.PGD"),
        ("audit PGD", "floor: 20 × (forward + input-gradient backward)"),
        ("audit PGD", "audit PGD, channels-first, malloc default"), ("4 checkpoints", "1 checkpoint")]
    assert all(r.status == "skipped" and "Fashion-MNIST not available" in r.note for r in rows)


def test_train_loop_without_fashion_mnist_is_skipped(no_fashion_mnist):
    nothing, checkpoint = bench.bench_train_loop(FAST)
    for row in (nothing, checkpoint):
        assert row.status == "skipped" and "no Fashion-MNIST" in row.note
    assert nothing.case.endswith("both writing nothing") and nothing.reference == "hand-written loop"
    assert checkpoint.case.endswith("both writing their checkpoint")
    assert checkpoint.reference == "hand-written loop + torch.save"
    full = bench.bench_train_loop(BenchConfig(device="cpu"))  # a full run adds the 60,000-image epoch
    assert [r.status for r in full] == ["skipped"] * 3 and "60,000" in full[2].case


def test_train_loop_rows_compare_like_with_like(monkeypatch):
    # The two sides are faked (the structure is under test, not the timing): which call writes what.
    from wpgdkit.bench import train_loop

    calls = []
    monkeypatch.setattr(train_loop, "toolkit_epoch",
                        lambda config, threat, limit, tmp, write=True: calls.append(("toolkit", limit, write)))
    monkeypatch.setattr(train_loop, "hand_written_epoch",
                        lambda config, threat, limit, device, write_to=None: calls.append(("hand", limit, write_to is not None)))
    monkeypatch.setattr("wpgdkit.datasets.load_tensors", lambda *a, **k: None)
    rows = bench.bench_train_loop(BenchConfig(quick=True, repeats=2, warmup=1, device="cpu"))
    assert [r.case.split(", both ")[1] for r in rows] == ["writing nothing", "writing their checkpoint"]
    for row in rows:
        _check_timed(row)
        assert row.unit == "epoch" and row.extra["schedule"] == "piecewise" and "CPU time" in row.note
        assert len(row.extra["toolkit_cpu_s"]) == len(row.extra["hand_written_cpu_s"]) == 2
        assert row.extra["paired_cpu_ratio_median"] > 0 and row.extra["writes"] in ("nothing", "checkpoint")
    warmup, timed = calls[:4], calls[4:]
    assert sorted(warmup) == sorted([("hand", 256, False), ("toolkit", 256, False), ("hand", 256, True),
                                     ("toolkit", 256, True)])
    assert sorted(timed) == sorted([(side, 256, write) for side in ("toolkit", "hand") for write in (False, True)] * 2)


def test_shuffled_times_runs_each_function_per_repeat_in_a_seeded_order():
    from wpgdkit.bench.train_loop import shuffled_times

    def run(seed):
        order = []
        times = shuffled_times({name: (lambda name=name: order.append(name)) for name in "abcd"}, repeats=6, seed=seed)
        return order, times

    order, times = run(0)
    assert all(sorted(order[i:i + 4]) == list("abcd") for i in range(0, 24, 4))
    assert len({tuple(order[i:i + 4]) for i in range(0, 24, 4)}) > 1  # not one fixed order
    assert run(0)[0] == order and run(1)[0] != order
    assert all(len(wall) == len(cpu) == 6 and min(wall + cpu) >= 0 for wall, cpu in times.values())


def test_the_toolkit_epoch_writes_nothing_or_its_checkpoint_as_told(tmp_path):
    from wpgdkit.bench.train_loop import hand_written_epoch, toolkit_epoch
    from wpgdkit.datasets import load_tensors

    try:
        load_tensors("fashion-mnist", "train", limit=1)
    except DataNotFoundError:
        pytest.skip("needs Fashion-MNIST (Debian: dataset-fashion-mnist)")

    threat = ThreatModel(eps=8 / 255, steps=1)
    config = BenchConfig(device="cpu", batch=4)
    written = {}
    for write in (False, True):
        out = tmp_path / str(write)
        out.mkdir()
        result = toolkit_epoch(config, threat, 8, str(out), write=write)
        assert len(result.history) == 1
        written[write] = sorted(p.name for p in out.rglob("*") if p.is_file())
    assert written == {False: [], True: ["bench.log.jsonl", "bench.pt"]}
    hand = tmp_path / "hand"
    hand.mkdir()
    hand_written_epoch(config, threat, 8, torch.device("cpu"))
    assert list(hand.iterdir()) == []
    hand_written_epoch(config, threat, 8, torch.device("cpu"), write_to=str(hand))
    assert sorted(p.name for p in hand.iterdir()) == ["hand.log.jsonl", "hand.pt"]
    assert set(torch.load(hand / "hand.pt", weights_only=True)) == {"model", "optimizer", "scheduler", "epoch"}


def test_count_attack_calls_counts_per_model_and_restores():
    from wpgdkit.attacks.base import Attack

    original = Attack.__call__
    models = [torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3)) for _ in range(2)]
    x, y = torch.rand(2, 4), torch.tensor([0, 1])
    threat = ThreatModel(eps=0.1, steps=1)
    with count_attack_calls() as calls:
        for model, n in zip(models, (2, 3)):
            attack = PGD(model, threat=threat)
            for _ in range(n):
                attack(x, y, seeds=[0])
    assert sorted(calls.values()) == [2, 3]
    assert Attack.__call__ is original
