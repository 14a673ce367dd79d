"""The linear-classifier boundary metric (wpgdkit.labelmetric.linear)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from wpgdkit.errors import WpgdkitError
from wpgdkit.labelmetric.linear import (
    LinearFitConfig,
    fit_linear_classifier,
    linear_boundary_distances,
    linear_metric_matrix,
)

# A hand-made 2-D, 3-class linear classifier and a few points.
W = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, -1.0]], dtype=torch.float64)
B = torch.tensor([0.0, 0.5, -1.0], dtype=torch.float64)
X = torch.tensor([[2.0, 0.0], [1.0, 1.0], [0.0, 3.0], [-1.0, -2.0], [0.0, 0.0]], dtype=torch.float64)
Y = torch.tensor([0, 0, 1, 2, 2])


def expected_by_hand(w, b, x, y) -> np.ndarray:
    """A[k, k'] = mean over class-k points of |z_k - z_k'| / ||w_k - w_k'||, by plain loops."""
    w, b, x, y = (t.tolist() for t in (w, b, x, y))
    k = len(w)
    sums = [[0.0] * k for _ in range(k)]
    counts = [0] * k
    for point, label in zip(x, y):
        z = [sum(wi * xi for wi, xi in zip(w[c], point)) + b[c] for c in range(k)]
        counts[label] += 1
        for other in range(k):
            if other != label:
                norm = math.sqrt(sum((p - q) ** 2 for p, q in zip(w[label], w[other])))
                sums[label][other] += abs(z[label] - z[other]) / norm
    return np.array([[sums[i][j] / counts[i] for j in range(k)] for i in range(k)])


def blobs(centres, per_class, std, seed, dtype=torch.float32):
    rng = np.random.default_rng(seed)
    centres = np.asarray(centres, dtype=np.float64)
    y = np.repeat(np.arange(len(centres)), per_class)
    x = centres[y] + std * rng.standard_normal((len(y), centres.shape[1]))
    order = rng.permutation(len(y))
    return torch.tensor(x[order], dtype=dtype), torch.tensor(y[order])


# --- linear_boundary_distances --------------------------------------------------------------------


def test_boundary_distances_hand_made_problem():
    a = linear_boundary_distances(W, B, X, Y)
    assert a.shape == (3, 3) and a.dtype == np.float64
    np.testing.assert_allclose(a, expected_by_hand(W, B, X, Y), rtol=1e-14, atol=0)
    # Two entries worked out on paper:
    # class 1 has the single point (0, 3): z = (0, 3.5, -4);
    #   to class 0: |3.5 - 0| / ||(0,1) - (1,0)|| = 3.5 / sqrt(2)
    #   to class 2: |3.5 + 4| / ||(0,1) - (-1,-1)|| = 7.5 / sqrt(5)
    assert a[1, 0] == pytest.approx(3.5 / math.sqrt(2), rel=1e-14)
    assert a[1, 2] == pytest.approx(7.5 / math.sqrt(5), rel=1e-14)
    # class 0: (2, 0) -> z = (2, 0.5, -3), (1, 1) -> z = (1, 1.5, -3); to class 1 over sqrt(2):
    assert a[0, 1] == pytest.approx((1.5 + 0.5) / 2 / math.sqrt(2), rel=1e-14)
    np.testing.assert_array_equal(np.diag(a), 0.0)


def test_boundary_distance_is_the_euclidean_distance_to_the_hyperplane():
    # Project each point onto the hyperplane (w_k - w_k')·x + b_k - b_k' = 0 and measure.
    a = linear_boundary_distances(W, B, X, Y)
    w, b, x = W.numpy(), B.numpy(), X.numpy()
    for k in range(3):
        for other in range(3):
            if k == other:
                continue
            normal, offset = w[k] - w[other], b[k] - b[other]
            pts = x[Y.numpy() == k]
            foot = pts - ((pts @ normal + offset) / (normal @ normal))[:, None] * normal
            np.testing.assert_allclose(foot @ normal + offset, 0.0, atol=1e-12)
            assert a[k, other] == pytest.approx(np.linalg.norm(pts - foot, axis=1).mean(), rel=1e-12)


def test_boundary_distances_many_points_cross_the_chunk_size():
    # More than 8,192 points, so the chunked accumulation is exercised; images as (N, 1, 2, 2).
    gen = torch.Generator().manual_seed(0)
    n, k, d = 9000, 4, 4
    x = torch.randn(n, 1, 2, 2, generator=gen, dtype=torch.float32)
    y = torch.randint(0, k, (n,), generator=gen)
    w = torch.randn(k, d, generator=gen, dtype=torch.float64)
    b = torch.randn(k, generator=gen, dtype=torch.float64)
    got = linear_boundary_distances(w, b, x, y)
    # Vectorised numpy recomputation.
    xf, yn, wn, bn = x.reshape(n, -1).double().numpy(), y.numpy(), w.numpy(), b.numpy()
    z = xf @ wn.T + bn
    want = np.zeros((k, k))
    for c in range(k):
        zc = z[yn == c]
        for o in range(k):
            if o != c:
                want[c, o] = (np.abs(zc[:, c] - zc[:, o]) / np.linalg.norm(wn[c] - wn[o])).mean()
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=0)


def test_identical_weight_vectors_rejected():
    w = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    with pytest.raises(WpgdkitError, match="identical weight vectors"):
        linear_boundary_distances(w, B, X, Y)


# --- fit_linear_classifier ---------------------------------------------------------------------------------


def test_fit_separable_problem_high_accuracy_and_deterministic():
    centres = [[0, 0, 0, 0, 0], [3.5, 0, 0, 0, 0], [0, 3.5, 0, 0, 0]]
    x, y = blobs(centres, per_class=40, std=1.0, seed=0)
    w1, b1 = fit_linear_classifier(x, y, 3)
    w2, b2 = fit_linear_classifier(x, y, 3)
    assert w1.shape == (3, 5) and b1.shape == (3,)
    assert w1.dtype == b1.dtype == torch.float64
    assert torch.equal(w1, w2) and torch.equal(b1, b2)
    predicted = (x.double() @ w1.T + b1).argmax(1)
    assert (predicted == y).double().mean().item() >= 0.97


def test_fit_reaches_the_stationary_point_of_the_documented_objective():
    # Overlapping classes: a unique finite optimum of cross-entropy + l2/2 ||W||².
    x, y = blobs([[0, 0, 0], [1.5, 0, 0], [0, 1.5, 0]], per_class=50, std=1.0, seed=3)
    config = LinearFitConfig(l2=1e-2, max_iter=200)
    w, b = fit_linear_classifier(x, y, 3, config=config)
    w = w.clone().requires_grad_(True)
    b = b.clone().requires_grad_(True)
    # In the original coordinates (the fit centres internally; the optimum is the same point).
    loss = torch.nn.functional.cross_entropy(x.double() @ w.T + b, y) + 0.5 * config.l2 * (w * w).sum()
    loss.backward()
    assert w.grad.abs().max().item() < 1e-5 and b.grad.abs().max().item() < 1e-5
    # And it is a minimum, not just any point: a small step in any direction does not improve.
    with torch.no_grad():
        for direction in (torch.ones_like(w), -torch.ones_like(w)):
            moved = torch.nn.functional.cross_entropy(x.double() @ (w + 1e-3 * direction).T + b, y)
            moved = moved + 0.5 * config.l2 * ((w + 1e-3 * direction) ** 2).sum()
            assert moved.item() >= loss.item() - 1e-12


def test_fit_l2_shrinks_the_weights():
    x, y = blobs([[0, 0], [2, 0], [0, 2]], per_class=30, std=1.0, seed=4)
    small, _ = fit_linear_classifier(x, y, 3, config=LinearFitConfig(l2=1e-3))
    large, _ = fit_linear_classifier(x, y, 3, config=LinearFitConfig(l2=1.0))
    assert large.norm() < small.norm()


def test_fit_class_without_points():
    x, y = blobs([[0, 0], [3, 0]], per_class=10, std=0.5, seed=0)
    with pytest.raises(WpgdkitError, match=r"classes \[2\] have no training points"):
        fit_linear_classifier(x, y, 3)
    with pytest.raises(WpgdkitError, match="no training points"):
        linear_metric_matrix(x, y, 4)


def test_fit_class_without_points_when_another_label_is_out_of_range():
    # Three distinct labels for three classes, but class 2 has no points and 3
    # is no class: counting distinct labels would miss it and let torch's
    # IndexError ("Target 3 is out of bounds") escape.
    x, y = blobs([[0, 0], [3, 0], [0, 3], [3, 3]], per_class=5, std=0.5, seed=0)
    y = torch.where(y == 2, torch.tensor(3), y)
    assert sorted(torch.unique(y).tolist()) == [0, 1, 3]
    with pytest.raises(WpgdkitError, match=r"labels must lie in 0\.\.2, found 0\.\.3"):
        fit_linear_classifier(x, y, 3)


def test_fit_mismatched_or_empty_inputs():
    x, y = blobs([[0, 0], [3, 0]], per_class=10, std=0.5, seed=0)
    with pytest.raises(WpgdkitError, match="as many labels as inputs"):
        fit_linear_classifier(x, y[:-1], 2)
    with pytest.raises(WpgdkitError, match="as many labels as inputs"):
        fit_linear_classifier(x[:0], y[:0], 2)


# --- linear_metric_matrix ------------------------------------------------------------------------------------


def test_metric_matrix_is_symmetrised_boundary_distances():
    x, y = blobs([[0, 0], [2, 0], [0, 3]], per_class=30, std=0.7, seed=5)
    config = LinearFitConfig(l2=1e-2, max_iter=100, seed=0)
    c = linear_metric_matrix(x, y, 3, config=config)
    w, b = fit_linear_classifier(x, y, 3, config=config)
    a = expected_by_hand(w, b, x.double(), y)
    np.testing.assert_allclose(c, (a + a.T) / 2, rtol=1e-12, atol=0)
    np.testing.assert_array_equal(c, c.T)
    np.testing.assert_array_equal(np.diag(c), 0.0)
    assert np.all(c[~np.eye(3, dtype=bool)] > 0)


def test_distances_order_with_the_geometry():
    # Classes 0 and 1 are close together, 2 and 3 far from them and from each other.
    x, y = blobs([[0, 0], [1.5, 0], [10, 0], [10, 10]], per_class=30, std=0.5, seed=1)
    c = linear_metric_matrix(x, y, 4, config=LinearFitConfig(l2=0.03))
    close = c[0, 1]
    far = [c[i, j] for i in range(4) for j in range(i + 1, 4) if (i, j) != (0, 1)]
    assert close < min(far)
    # Each class is nearer to the close pair's partner than to the far blobs.
    assert c[0, 1] < c[0, 2] < c[0, 3]
    assert c[1, 2] < c[1, 3]


@pytest.mark.parametrize(
    "kwargs", [{"seed": -1}, {"seed": 2**64}, {"l2": float("nan")}, {"l2": float("inf")}, {"l2": -1.0},
               {"max_iter": 0}, {"max_iter": 100_001}],
)
def test_fit_config_refuses_out_of_range_numbers(kwargs):
    # A seed of 2**64 used to reach torch.manual_seed: "Overflow when unpacking long long".
    with pytest.raises(WpgdkitError, match=next(iter(kwargs))):
        LinearFitConfig(**kwargs)
