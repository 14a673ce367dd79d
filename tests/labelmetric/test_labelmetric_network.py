"""Label metrics from a trained network: boundary and confusion (wpgdkit.labelmetric.network)."""

from __future__ import annotations

import math
import shlex

import numpy as np
import pytest
import torch
from torch import nn

from wpgdkit.datasets.toy import make_toy
from wpgdkit.errors import DataNotFoundError, UnknownNameError, WpgdkitError
from wpgdkit.labelmetric import BuildConfig, boundary_distance_matrix, build_metric, confusion_distance_matrix
from wpgdkit.labelmetric.linear import linear_boundary_distances
from wpgdkit.audit.scores import confusion_matrix
from wpgdkit.labelmetric.network import GRADIENT_NORM_FLOOR
from wpgdkit.models import create_model
from wpgdkit.training import DataConfig, TrainConfig, load_checkpoint, train
from wpgdkit.checkpoint import CheckpointError

DUAL = {"linf": 1, "l2": 2}  # the ℓp norm of the gradient each attack norm is measured with


def reference_boundary(model: nn.Module, x: torch.Tensor, y: torch.Tensor, k: int, norm: str) -> np.ndarray:
    """Deliberately simple: one backward per (point, other class), asymmetric D."""
    out, counts = np.zeros((k, k)), np.zeros(k)
    for xi, yi in zip(x, y):
        c = int(yi)
        counts[c] += 1
        for j in range(k):
            if j == c:
                continue
            point = xi[None].clone().requires_grad_(True)
            logits = model(point)[0]
            gap = logits[c] - logits[j]
            (grad,) = torch.autograd.grad(gap, point)
            out[c, j] += abs(gap.item()) / grad.flatten().double().norm(p=DUAL[norm]).item()
    return out / counts[:, None]


def seeded_points(shape: tuple[int, ...], k: int, per_class: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    y = torch.arange(k).repeat_interleave(per_class)[torch.randperm(k * per_class, generator=gen)]
    return torch.rand((k * per_class, *shape), generator=gen), y


# --- boundary_distance_matrix ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "shape", "k", "norm"), [("mlp", (6,), 4, "linf"), ("mlp", (6,), 4, "l2"), ("small-cnn", (1, 8, 8), 5, "linf")]
)
def test_batched_gradients_match_one_backward_per_pair(name, shape, k, norm):
    torch.manual_seed(0)
    # float64: in float32 a small logit gap (0.0006 here) cancels to ~1e-5 relative, batch-shape and CPU dependent.
    model = create_model(name, num_classes=k, input_shape=shape).double().eval()
    x, y = seeded_points(shape, k, per_class=2, seed=1)
    x = x.double()
    # batch_size 7: passes of one point (K >= 4), so chunking and index_add are exercised too.
    for batch_size in (7, 256):
        batched = boundary_distance_matrix(model, x, y, k, norm=norm, batch_size=batch_size, symmetrize=False)
        np.testing.assert_allclose(batched, reference_boundary(model, x, y, k, norm), rtol=1e-10, atol=0)
    symmetric = boundary_distance_matrix(model, x, y, k, norm=norm)
    np.testing.assert_allclose(symmetric, (batched + batched.T) / 2, rtol=1e-12)
    assert symmetric.dtype == np.float64 and symmetric.shape == (k, k)
    np.testing.assert_array_equal(np.diag(symmetric), 0.0)


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_linear_model_is_exact(norm):
    # For f(x) = W x + b the linearisation is the model: the distance to the k/k' hyperplane is exact.
    rng = np.random.default_rng(3)
    k, d, n = 4, 5, 40
    w, b = rng.normal(size=(k, d)), rng.normal(size=k)
    x, y = rng.normal(size=(n, d)), np.arange(n) % k
    model = nn.Linear(d, k).double()
    with torch.no_grad():
        model.weight.copy_(torch.from_numpy(w))
        model.bias.copy_(torch.from_numpy(b))
    expected = np.zeros((k, k))
    for c in range(k):
        for j in range(k):
            if j != c:
                dw, db = w[c] - w[j], b[c] - b[j]
                expected[c, j] = np.mean(np.abs(x[y == c] @ dw + db) / np.linalg.norm(dw, ord=DUAL[norm]))
    got = boundary_distance_matrix(model, torch.from_numpy(x), torch.from_numpy(y), k, norm=norm, symmetrize=False)
    np.testing.assert_allclose(got, expected, rtol=1e-12)
    if norm == "l2":  # the same quantity as the linear source's
        linear = linear_boundary_distances(torch.from_numpy(w), torch.from_numpy(b), torch.from_numpy(x), torch.from_numpy(y))
        np.testing.assert_allclose(got, linear, rtol=1e-12)


def test_eval_mode_is_used_and_restored_and_no_parameter_gradient_is_touched():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3)).double()
    model.train()
    model[3].eval()  # mixed modes come back as they were
    modes = [m.training for m in model.modules()]
    stats = model[1].running_mean.clone()
    x, y = seeded_points((3,), 3, per_class=4, seed=0)
    x = x.double()
    got = boundary_distance_matrix(model, x, y, 3, norm="l2", symmetrize=False)
    assert [m.training for m in model.modules()] == modes
    assert torch.equal(model[1].running_mean, stats)  # eval mode: BatchNorm did not update its statistics
    assert all(p.grad is None for p in model.parameters())
    # And in eval mode each point is independent of its batch, so the result matches the reference.
    np.testing.assert_allclose(got, reference_boundary(model.eval(), x, y, 3, "l2"), rtol=1e-10)


def test_a_flat_logit_difference_gives_a_large_finite_distance():
    # Two identical output rows: their gradient difference is 0, the gap is the bias difference (1).
    model = nn.Linear(2, 3).double()
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]]))
        model.bias.copy_(torch.tensor([1.0, 0.0, 0.0]))
    x = torch.zeros(3, 2, dtype=torch.float64)
    got = boundary_distance_matrix(model, x, torch.tensor([0, 1, 2]), 3, norm="linf", symmetrize=False)
    assert np.isfinite(got).all()
    assert got[0, 1] == pytest.approx(1.0 / GRADIENT_NORM_FLOOR)


def test_boundary_input_errors():
    model = nn.Linear(2, 3)
    x = torch.zeros(4, 2)
    with pytest.raises(WpgdkitError, match="class 2 has no points"):
        boundary_distance_matrix(model, x, torch.tensor([0, 1, 0, 1]), 3)
    with pytest.raises(WpgdkitError, match="one label per input"):
        boundary_distance_matrix(model, x, torch.tensor([0, 1, 2]), 3)
    with pytest.raises(WpgdkitError, match="labels must lie in 0..2"):
        boundary_distance_matrix(model, x, torch.tensor([0, 1, 2, 3]), 3)
    with pytest.raises(UnknownNameError, match="unknown norm 'l1'"):
        boundary_distance_matrix(model, x, torch.tensor([0, 1, 2, 0]), 3, norm="l1")
    with pytest.raises(WpgdkitError, match="batch_size"):
        boundary_distance_matrix(model, x, torch.tensor([0, 1, 2, 0]), 3, batch_size=0)
    with pytest.raises(WpgdkitError, match="logits of shape"):
        boundary_distance_matrix(nn.Linear(2, 4), x, torch.tensor([0, 1, 2, 0]), 3)


# --- confusion_distance_matrix -------------------------------------------------------------------------------------


def test_confusion_distances_by_hand():
    counts = np.array([[8, 2, 0], [1, 9, 0], [0, 0, 10]])
    # β = 1, K = 3, every row has 10 points: P = (M + 1) / 13, so
    # s01 = (3/13 + 2/13) / 2 = 5/26 and s02 = s12 = (1/13 + 1/13) / 2 = 1/13.
    expected = np.array([[0, math.log(26 / 5), math.log(13)],
                         [math.log(26 / 5), 0, math.log(13)],
                         [math.log(13), math.log(13), 0]])
    np.testing.assert_allclose(confusion_distance_matrix(counts), expected, rtol=1e-14)
    one_minus = confusion_distance_matrix(torch.tensor(counts), measure="one-minus")
    np.testing.assert_allclose(one_minus, np.array([[0, 21 / 26, 12 / 13], [21 / 26, 0, 12 / 13], [12 / 13, 12 / 13, 0]]))
    # β = 0.5: P = (M + 0.5) / 11.5; s01 = (2.5 + 1.5) / 23, s02 = 1 / 23.
    half = confusion_distance_matrix(counts, smoothing=0.5)
    assert half[0, 1] == pytest.approx(-math.log(4 / 23)) and half[0, 2] == pytest.approx(math.log(23))


def test_confusion_distance_is_positive_and_decreases_with_confusion():
    base = np.diag([50, 50, 50, 50])
    never = confusion_distance_matrix(base)
    # A never-confused pair with n points per class sits at log(n / β + K).
    np.testing.assert_allclose(never[~np.eye(4, dtype=bool)], math.log(50 + 4))
    previous = never[0, 1]
    for mistakes in (1, 5, 20, 50):
        counts = base.copy()
        counts[0, 1] = mistakes
        d = confusion_distance_matrix(counts)
        assert 0 < d[0, 1] < previous
        previous = d[0, 1]
    # Even two fully swapped classes stay at a positive distance.
    swapped = confusion_distance_matrix(np.array([[0, 30], [30, 0]]))
    assert swapped[0, 1] > 0 and np.allclose(swapped, swapped.T)


@pytest.mark.parametrize(
    ("counts", "options", "error", "fragment"),
    [
        (np.array([[3, 1], [0, 0]]), {}, WpgdkitError, "class 1 has no points"),
        (np.array([[3, -1], [0, 2]]), {}, WpgdkitError, "non-negative"),
        (np.ones((2, 3)), {}, WpgdkitError, "K×K"),
        (np.ones((1, 1)), {}, WpgdkitError, "K >= 2"),
        (np.ones((2, 2)), {"smoothing": 0.0}, WpgdkitError, "smoothing"),
        (np.ones((2, 2)), {"measure": "rate"}, UnknownNameError, "unknown measure 'rate'"),
    ],
)
def test_confusion_input_errors(counts, options, error, fragment):
    with pytest.raises(error, match=fragment):
        confusion_distance_matrix(counts, **options)


# --- the sources, end to end on tiny toy checkpoints --------------------------------------------------------------


def _train(folder, **data) -> str:
    config = TrainConfig(
        data=DataConfig("toy", limit=300, val_fraction=0.0, **data), model="mlp", method="ce", norm="l2", eps=0.4,
        steps=1, eval_steps=0, epochs=2, batch_size=64, lr=0.05, out=str(folder / "toy.pt"), device="cpu",
        seed=4,  # deterministic=True would import torch._inductor (seconds); nothing here needs it
    )
    return str(train(config).checkpoint)


@pytest.fixture(scope="module")
def toy_checkpoint(tmp_path_factory) -> str:
    return _train(tmp_path_factory.mktemp("toy"), seed=5)


@pytest.fixture(scope="module")
def toy_pair_checkpoint(tmp_path_factory) -> str:
    """Trained on classes 2 and 0 of the toy problem, in that order."""
    return _train(tmp_path_factory.mktemp("pair"), classes=("2", "0"))


def independent_points(checkpoint: str) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """The checkpoint's model and test points, recomputed from the toy generator itself."""
    state = load_checkpoint(checkpoint)
    x, labels = make_toy("test", seed=state.data.seed)
    original = list(state.data.class_indices)
    keep = torch.isin(labels, torch.tensor(original))
    y = torch.tensor([original.index(int(v)) for v in labels[keep]])
    return state.build_model(), x[keep], y


def test_confusion_source_matches_an_independent_recomputation(toy_checkpoint):
    metric = build_metric(BuildConfig(source="confusion", checkpoint=toy_checkpoint))
    model, x, y = independent_points(toy_checkpoint)
    with torch.no_grad():
        pred = model(x).argmax(1).numpy()
    counts = np.zeros((3, 3))
    np.add.at(counts, (y.numpy(), pred), 1)
    rates = (counts + 1) / (counts.sum(1, keepdims=True) + 3)
    expected = -np.log((rates + rates.T) / 2)
    np.fill_diagonal(expected, 0)
    assert metric.classes == ("0", "1", "2")
    np.testing.assert_allclose(metric.matrix, expected, rtol=1e-12)
    np.testing.assert_array_equal(confusion_matrix(y, torch.from_numpy(pred), 3).numpy(), counts)
    prov = metric.provenance
    assert (prov.source, prov.measure, prov.dataset) == ("confusion", "neglog", "toy")
    assert prov.parameters["points"] == 1500 and prov.parameters["split"] == "test"
    assert prov.parameters["model"] == "mlp" and len(prov.parameters["checkpoint_sha256"]) == 64


def test_boundary_source_defaults_to_the_checkpoint_norm_and_limits_per_class(toy_checkpoint):
    metric = build_metric(BuildConfig(source="boundary", checkpoint=toy_checkpoint, limit=10))
    model, x, y = independent_points(toy_checkpoint)
    keep = torch.cat([torch.nonzero(y == c).squeeze(1)[:10] for c in range(3)]).sort().values
    expected = reference_boundary(model.double(), x[keep].double(), y[keep], 3, "l2")
    # The source runs the float32 checkpoint; its logit gaps (>= 0.5 against logits of ~2) are well
    # conditioned, so float32 rounding is ~1e-7 relative (3e-8 measured): 1e-5 is a 100x margin.
    np.testing.assert_allclose(metric.matrix, (expected + expected.T) / 2, rtol=1e-5)
    assert metric.provenance.measure == "l2"  # the checkpoint was trained against an ℓ2 attack
    assert metric.provenance.parameters["points"] == 30
    assert (metric.matrix[~np.eye(3, dtype=bool)] > 0).all()
    linf = build_metric(BuildConfig(source="boundary", checkpoint=toy_checkpoint, limit=10, measure="linf"))
    # ||g||_1 >= ||g||_2 in 2-D, so the ℓ∞ distances are the smaller ones.
    assert linf.provenance.measure == "linf" and (linf.matrix <= metric.matrix + 1e-12).all()


def test_a_class_subset_checkpoint_gives_its_own_classes(toy_pair_checkpoint):
    metric = build_metric(BuildConfig(source="confusion", checkpoint=toy_pair_checkpoint, split="train", limit=100))
    assert metric.classes == ("2", "0") and metric.matrix.shape == (2, 2)
    assert metric.provenance.parameters["split"] == "train" and metric.provenance.parameters["points"] == 100


def test_rebuilding_with_the_same_config_gives_the_same_matrix(toy_checkpoint):
    config = BuildConfig(source="boundary", checkpoint=toy_checkpoint, limit=5, split="train", normalize="max")
    first, second = build_metric(config), build_metric(config)
    np.testing.assert_array_equal(first.matrix, second.matrix)
    words = shlex.split(first.provenance.command)
    assert words[words.index("--checkpoint") + 1] == toy_checkpoint
    assert words[3:] == ["--source", "boundary", "--normalize", "max", "--checkpoint", toy_checkpoint,
                         "--split", "train", "--limit", "5"]


@pytest.mark.parametrize(
    ("config", "error", "fragment"),
    [
        ({"source": "boundary", "checkpoint": None}, WpgdkitError, "needs --checkpoint"),
        ({"source": "confusion", "checkpoint": "/nonexistent/model.pt"}, DataNotFoundError, "not found"),
        ({"source": "boundary", "dataset": "cifar10"}, WpgdkitError, "disagrees"),
        ({"source": "confusion", "limit": 1}, WpgdkitError, "class '[0-2]' .*has no points among the first 1 in the test split of toy"),
        ({"source": "boundary", "split": "val"}, UnknownNameError, "unknown split 'val'"),
        ({"source": "boundary", "measure": "l1"}, UnknownNameError, "unknown measure 'l1'"),
        ({"source": "uniform", "dataset": "toy"}, WpgdkitError, "--checkpoint is only read by --source boundary, confusion"),
        ({"source": "uniform", "dataset": "toy", "checkpoint": None, "split": "test"}, WpgdkitError, "--split is only"),
    ],
)
def test_source_errors(toy_checkpoint, config, error, fragment):
    with pytest.raises(error, match=fragment):
        build_metric(BuildConfig(**{"checkpoint": toy_checkpoint, **config}))


def test_a_file_that_is_not_a_checkpoint(tmp_path):
    path = tmp_path / "model.pt"
    torch.save({"weights": torch.zeros(2)}, path)
    with pytest.raises(CheckpointError, match="not a wpgdkit checkpoint"):
        build_metric(BuildConfig(source="boundary", checkpoint=str(path)))


# --- hardening: a network whose outputs are not finite -------------------------------------------


class _NonFinite(nn.Module):
    """A linear model whose logits are NaN (or inf) for every input."""

    def __init__(self, k: int, value: float):
        super().__init__()
        self.linear = nn.Linear(2, k)
        self.value = value

    def forward(self, x):
        return self.linear(x) + self.value


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_boundary_distances_of_a_non_finite_network_are_refused(value):
    x = torch.randn(6, 2)
    y = torch.tensor([0, 1, 2, 0, 1, 2])
    with pytest.raises(WpgdkitError, match="the network produced non-finite distances"):
        boundary_distance_matrix(_NonFinite(3, value), x, y, 3)


@pytest.mark.parametrize("value", [float("nan"), float("-inf")])
def test_predictions_of_a_non_finite_network_are_refused(value):
    # arg-max of NaN logits is a valid-looking class: the confusion metric was built from it.
    from wpgdkit.labelmetric.network import predict

    with pytest.raises(WpgdkitError, match="the network produced non-finite logits"):
        predict(_NonFinite(3, value), torch.randn(5, 2))
