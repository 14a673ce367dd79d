"""The README's worked example of the non-image route, end to end at a small size.

The README walks a tabular problem where mistakes do not cost the same:
scikit-learn's breast-cancer data, where calling a malignant tumour benign
costs 10 and the reverse 1. Its steps, run here exactly as written, in a
temporary folder, from the command line:

1. export the data to ``bc.npz`` in a few lines of Python (75/25 split,
   ``np.random.default_rng(0)``; ``class_names`` as scikit-learn names them,
   label 0 is malignant);
2. ``wpgdkit metric build --dataset bc.npz --source file --input costs.csv
   --allow-asymmetric --out bc-cost.csv``;
3. ``wpgdkit train`` with CE, PGD, WPGD (``--metric bc-cost.csv``) and PGD
   with ``--class-weights`` (malignant 10, benign 1), all ``--standardize
   --model mlp --eps 0.3 --epochs 2``;
4. ``wpgdkit audit ce.pt pgd.pt wpgd.pt pgdw.pt --baseline ce.pt --reference
   pgd.pt --metric bc-cost.csv --json audit.json``.

The audit's score S is recomputed here by hand from the adversarial
confusion counts and the cost matrix.

The README also states a fact about two classes, tested on the library at
the end: for K = 2, p = 1 and λ = ∞ the WPGD loss is
ℓ_W = C[y]·ŷ = C[y, other]·(1 − ŷ_y), a positive multiple of 1 − ŷ_y, so its
input gradient has the sign of cross-entropy's at every point and an ℓ∞
PGD step (the sign of the gradient) is the same step. With three classes and
a non-uniform metric it is not.
"""

from __future__ import annotations

import csv
import json
import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from wpgdkit.cli import app
from wpgdkit.training import load_checkpoint

runner = CliRunner()

#: Step 2's input: rows are the true class, columns the predicted one.
COSTS_CSV = ",malignant,benign\nmalignant,0,10\nbenign,1,0\n"
#: Step 3's weights for the outer cross-entropy (the "class,weight" table form).
WEIGHTS_CSV = "class,weight\nmalignant,10\nbenign,1\n"
#: The README's training flags, shared by the four runs.
TRAIN = ("--dataset", "bc.npz", "--standardize", "--model", "mlp", "--eps", "0.3", "--epochs", "2")
RUNS = {"ce": ("--method", "ce"), "pgd": ("--method", "pgd"),
        "wpgd": ("--method", "wpgd", "--metric", "bc-cost.csv"),
        "pgdw": ("--method", "pgd", "--class-weights", "weights.csv")}


def export_breast_cancer(path: str = "bc.npz") -> None:
    """Step 1, as the README writes it."""
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer()
    order = np.random.default_rng(0).permutation(len(data.target))
    train, test = order[: int(0.75 * len(order))], order[int(0.75 * len(order)):]
    np.savez(path, x_train=data.data[train], y_train=data.target[train],
             x_test=data.data[test], y_test=data.target[test], class_names=data.target_names)


def cli(*args):
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, (args, result.stderr, result.stdout)
    return result


@pytest.fixture(scope="module")
def example(tmp_path_factory):
    """Run the four steps in a fresh folder (relative paths, as in the README); return what they left."""
    folder = tmp_path_factory.mktemp("breast-cancer")
    before = os.getcwd()
    os.chdir(folder)  # the README's commands name files relative to where they run
    try:
        export_breast_cancer()
        Path("costs.csv").write_text(COSTS_CSV, encoding="utf-8")
        cli("metric", "build", "--dataset", "bc.npz", "--source", "file", "--input", "costs.csv",
            "--allow-asymmetric", "--out", "bc-cost.csv")
        Path("weights.csv").write_text(WEIGHTS_CSV, encoding="utf-8")
        for name, method in RUNS.items():
            cli("train", *TRAIN, *method, "--out", f"{name}.pt")
        audit = cli("audit", "ce.pt", "pgd.pt", "wpgd.pt", "pgdw.pt", "--baseline", "ce.pt", "--reference", "pgd.pt",
                    "--metric", "bc-cost.csv", "--json", "audit.json")
    finally:
        os.chdir(before)
    return {"folder": folder, "stdout": audit.stdout, "audit": json.loads((folder / "audit.json").read_text())}


# --- steps 1 and 2: the data and the cost matrix ---------------------------------------------


def test_the_export_names_label_0_malignant_and_splits_75_25(example):
    with np.load(example["folder"] / "bc.npz", allow_pickle=False) as archive:
        assert archive["class_names"].tolist() == ["malignant", "benign"]
        n_train, n_test = len(archive["y_train"]), len(archive["y_test"])
        assert archive["x_train"].shape == (n_train, 30)
        # Label 0 is the minority class (212 malignant of 569 tumours).
        assert int((archive["y_train"] == 0).sum() + (archive["y_test"] == 0).sum()) == 212
    assert (n_train, n_test) == (426, 143)


def test_the_metric_is_asymmetric_as_given(example):
    with open(example["folder"] / "bc-cost.csv", newline="", encoding="utf-8") as handle:
        rows = [row for row in csv.reader(handle) if row]
    assert rows[0][1:] == ["malignant", "benign"] and [r[0] for r in rows[1:]] == ["malignant", "benign"]
    matrix = np.array([[float(v) for v in row[1:]] for row in rows[1:]])
    np.testing.assert_array_equal(matrix, [[0.0, 10.0], [1.0, 0.0]])  # C[malignant, benign] = 10, not 1
    assert example["audit"]["metric"]["matrix"] == [[0.0, 10.0], [1.0, 0.0]]


# --- step 3: the four runs --------------------------------------------------------------------


def test_the_four_runs_record_their_method_data_and_weights(example):
    states = {name: load_checkpoint(example["folder"] / f"{name}.pt") for name in RUNS}
    for name, state in states.items():
        assert state.epoch == 2 and state.classes == ("malignant", "benign"), name
        assert state.data.source["kind"] == "npz" and state.data.source["options"]["standardize"] is True
        assert state.threat.eps == 0.3
    assert [states[n].method for n in RUNS] == ["ce", "pgd", "wpgd", "pgd"]
    assert states["wpgd"].metric.matrix.tolist() == [[0.0, 10.0], [1.0, 0.0]]
    assert states["pgdw"].settings.class_weights["mode"] == "file"
    assert states["pgd"].settings.class_weights is None


# --- step 4: the audit ------------------------------------------------------------------------


def _cost(example) -> np.ndarray:
    return np.asarray(example["audit"]["metric"]["matrix"], dtype=np.float64)


def test_the_audit_has_per_class_errors_for_both_classes(example):
    doc = example["audit"]
    assert doc["classes"] == ["malignant", "benign"] and doc["baseline"] == "ce.pt" and doc["reference"] == "pgd.pt"
    assert [m["name"] for m in doc["models"]] == list(RUNS)
    for model in doc["models"]:
        natural = np.asarray(model["confusion_natural"]["counts"], dtype=np.float64)
        adversarial = np.asarray(model["confusion_adversarial"]["counts"], dtype=np.float64)
        assert [row["class"] for row in model["per_class"]] == ["malignant", "benign"]
        for i, row in enumerate(model["per_class"]):
            n = natural[i].sum()
            assert row["points"] == n == adversarial[i].sum() == doc["class_counts"][i]
            assert row["natural_error"] == pytest.approx(100.0 * (n - natural[i, i]) / n, abs=1e-12)
            assert row["adversarial_error"] == pytest.approx(100.0 * (n - adversarial[i, i]) / n, abs=1e-12)


def weighted_score_by_hand(counts: np.ndarray, cost: np.ndarray) -> float:
    """S with the "true" normalisation: the mean over present classes i of Σ_j C[i, j]·M[i, j] / n_i."""
    per_class = []
    for i in range(len(counts)):
        n_i = counts[i].sum()
        if n_i > 0:
            per_class.append(sum(cost[i, j] * counts[i, j] for j in range(len(counts))) / n_i)
    return math.fsum(per_class) / len(per_class)


def test_the_score_is_the_cost_of_the_adversarial_confusion(example):
    doc, cost = example["audit"], _cost(example)
    assert doc["score_normalization"] == "true"
    scores = {}
    for model in doc["models"]:
        counts = np.asarray(model["confusion_adversarial"]["counts"], dtype=np.float64)
        scores[model["name"]] = weighted_score_by_hand(counts, cost)
        assert model["score"] == pytest.approx(scores[model["name"]], rel=1e-12, abs=1e-12), model["name"]
    for model in doc["models"]:
        assert model["score_delta"] == pytest.approx(scores[model["name"]] - scores["pgd"], rel=1e-12, abs=1e-12)
    # The check tells C[true, predicted] from its transpose (a malignant point called benign costs 10,
    # not 1) on at least one model, so a library that read the matrix the other way round would fail it.
    transposed = [weighted_score_by_hand(np.asarray(m["confusion_adversarial"]["counts"], dtype=np.float64), cost.T)
                  for m in doc["models"]]
    assert any(t != pytest.approx(scores[m["name"]]) for t, m in zip(transposed, doc["models"]))


def test_the_printed_tables_include_the_per_class_table(example):
    text, doc = example["stdout"], example["audit"]
    assert "comparison" in text and "per class: NE % / AE %" in text
    assert "ε in standard deviations of each feature" in text
    lines = {line.split()[1]: line for line in text.splitlines() if line.startswith("│")}
    for i, name in enumerate(("malignant", "benign")):
        row = lines[name]
        assert f" {doc['class_counts'][i]} " in row
        for model in doc["models"]:
            cell = model["per_class"][i]
            assert f"{cell['natural_error']:.1f} / {cell['adversarial_error']:.1f}" in row, (name, model["name"])


# --- the two-class fact, on the library -------------------------------------------------------


def _network(num_classes: int, seed: int) -> torch.nn.Module:
    """A small random MLP in float64: no ties at zero gradient from float32 rounding."""
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.ReLU(), torch.nn.Linear(16, num_classes)).double()


def _batch(num_classes: int, seed: int, n: int = 200) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 6, generator=generator, dtype=torch.float64)
    return x, torch.randint(0, num_classes, (n,), generator=generator)


def _attacks(model, cost, steps: int) -> dict[str, torch.Tensor]:
    """The ℓ∞ adversarial inputs of CE and of ℓ_W (p = 1, λ = ∞), through both library routes."""
    from wpgdkit.attacks import PGD, WPGD, ThreatModel, pgd_attack
    from wpgdkit.losses import WassersteinLoss

    threat = ThreatModel(eps=0.5, steps=steps, random_start=False, bounds=None)
    x, y = _batch(cost.shape[0], seed=steps)
    return {
        "x": x,
        "pgd": pgd_attack(model, x, y, threat=threat),
        "wasserstein": pgd_attack(model, x, y, threat=threat, loss_fn=WassersteinLoss(cost, p=1.0, lam=math.inf)),
        "PGD": PGD(model, threat=threat)(x, y),
        "WPGD": WPGD(model, cost, p=1.0, lam=math.inf, threat=threat)(x, y),
    }


TWO_CLASS_COST = torch.tensor([[0.0, 10.0], [1.0, 0.0]], dtype=torch.float64)  # the example's, asymmetric


def test_two_class_wasserstein_loss_is_cost_times_the_missing_mass():
    from wpgdkit.losses import wasserstein_loss

    logits = torch.randn(50, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    y = torch.arange(50) % 2
    loss = wasserstein_loss(logits, y, TWO_CLASS_COST, reduction="none")
    p_true = torch.softmax(logits, dim=1)[torch.arange(50), y]
    torch.testing.assert_close(loss, TWO_CLASS_COST[y, 1 - y] * (1 - p_true), rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("steps", [1, 5])
def test_two_class_wpgd_steps_are_pgd_steps(steps):
    out = _attacks(_network(2, seed=steps), TWO_CLASS_COST, steps)
    assert (out["pgd"] != out["x"]).any(dim=1).all()  # every point moved: the comparison is not vacuous
    assert torch.equal(out["pgd"], out["PGD"])
    assert torch.equal(out["wasserstein"], out["pgd"])
    assert torch.equal(out["WPGD"], out["pgd"])


@pytest.mark.parametrize("steps", [1, 5])
def test_three_class_wpgd_steps_differ_from_pgd(steps):
    # Non-uniform costs: with C = 1 − I, ℓ_W = 1 − ŷ_y and the steps would agree again.
    cost = torch.tensor([[0.0, 1.0, 10.0], [1.0, 0.0, 10.0], [10.0, 10.0, 0.0]], dtype=torch.float64)
    out = _attacks(_network(3, seed=steps), cost, steps)
    differs = (out["WPGD"] != out["PGD"]).any(dim=1)
    assert torch.equal(out["wasserstein"], out["WPGD"]) and torch.equal(out["pgd"], out["PGD"])
    assert 0 < int(differs.sum()) < len(differs)  # on some points, not all: the same loop, another objective
