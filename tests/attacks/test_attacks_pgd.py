"""PGD and WPGD (wpgdkit.attacks.pgd_attack) on small seeded models."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from wpgdkit.attacks import ThreatModel, pgd_attack
from wpgdkit.errors import WpgdkitError
from wpgdkit.losses import WassersteinLoss, wasserstein_loss

K = 5


def tiny_cnn(channels: int = 1, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Conv2d(channels, 8, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 8 * 8, K))
    with torch.no_grad():  # larger weights: confident, non-trivial predictions
        for p in model.parameters():
            p.mul_(4.0)
    return model


def image_batch(channels: int = 1, n: int = 32, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, channels, 8, 8, generator=g), torch.randint(0, K, (n,), generator=g)


def random_metric(k: int = K, seed: int = 2) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    c = torch.rand(k, k, generator=g) * 5
    return (c + c.T) / 2 * (1 - torch.eye(k))


def seeded(seed: int = 3) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def per_sample_ce(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return F.cross_entropy(model(x), y, reduction="none")


LINF = ThreatModel(eps=8 / 255, step_size=2 / 255, steps=10)
L2 = ThreatModel(eps=0.5, step_size=0.1, steps=10, norm="l2")


# --- the threat model ----------------------------------------------------------------------------


@pytest.mark.parametrize("channels", [1, 3])
def test_linf_stays_in_ball_and_bounds(channels):
    model = tiny_cnn(channels)
    x, y = image_batch(channels)
    x_adv = pgd_attack(model, x, y, threat=LINF, generator=seeded())
    assert (x_adv - x).abs().max().item() <= LINF.eps + 1e-6
    assert x_adv.min().item() >= 0.0 and x_adv.max().item() <= 1.0
    assert not x_adv.requires_grad and x_adv.grad_fn is None
    assert x_adv.shape == x.shape and x_adv.dtype == x.dtype


def test_l2_stays_in_ball_and_bounds():
    model = tiny_cnn(3)
    x, y = image_batch(3)
    x_adv = pgd_attack(model, x, y, threat=L2, generator=seeded())
    norms = (x_adv - x).flatten(1).norm(dim=1)
    assert norms.max().item() <= L2.eps + 1e-5
    assert norms.min().item() > 0.5 * L2.eps  # it did move
    assert x_adv.min().item() >= 0.0 and x_adv.max().item() <= 1.0


def test_float64_inputs_keep_their_dtype():
    model = tiny_cnn().double()
    x, y = image_batch()
    x_adv = pgd_attack(model, x.double(), y, threat=L2, generator=seeded())
    assert x_adv.dtype == torch.float64
    assert (x_adv - x.double()).flatten(1).norm(dim=1).max().item() <= L2.eps + 1e-12


@pytest.mark.parametrize("config", [LINF, L2], ids=["linf", "l2"])
def test_cross_entropy_increases(config):
    model = tiny_cnn()
    x, y = image_batch(n=64)
    clean = per_sample_ce(model, x, y)
    attacked = per_sample_ce(model, pgd_attack(model, x, y, threat=config, generator=seeded()), y)
    assert attacked.mean() > clean.mean() + 0.5
    assert (attacked > clean).float().mean() > 0.9


def test_wasserstein_loss_increases():
    model = tiny_cnn()
    x, y = image_batch(n=64)
    loss = WassersteinLoss(random_metric(), p=2.5, reduction="none")
    with torch.no_grad():
        clean = loss(model(x), y)
        attacked = loss(model(pgd_attack(model, x, y, threat=LINF, loss_fn=loss, generator=seeded())), y)
    assert attacked.mean() > clean.mean() + 0.5
    assert (attacked >= clean).float().mean() > 0.9


def test_no_random_start_is_deterministic_without_generator():
    model = tiny_cnn()
    x, y = image_batch()
    config = ThreatModel(eps=LINF.eps, step_size=LINF.step_size, steps=3, random_start=False)
    torch.manual_seed(0)
    first = pgd_attack(model, x, y, threat=config)
    torch.manual_seed(1)
    torch.testing.assert_close(pgd_attack(model, x, y, threat=config), first, rtol=0, atol=0)


@pytest.mark.parametrize("config", [LINF, L2], ids=["linf", "l2"])
def test_reproducible_with_the_same_generator(config):
    model = tiny_cnn()
    x, y = image_batch()
    first = pgd_attack(model, x, y, threat=config, generator=seeded(7))
    torch.testing.assert_close(pgd_attack(model, x, y, threat=config, generator=seeded(7)), first, rtol=0, atol=0)
    assert not torch.equal(pgd_attack(model, x, y, threat=config, generator=seeded(8)), first)


def test_random_start_is_uniform_in_the_linf_ball():
    # One step of size ≪ eps from the start: the start's spread shows through.
    model = tiny_cnn()
    x = torch.full((256, 1, 8, 8), 0.5)
    y = torch.zeros(256, dtype=torch.long)
    config = ThreatModel(eps=0.25, step_size=1e-6, steps=1)
    delta = pgd_attack(model, x, y, threat=config, generator=seeded()) - x
    assert delta.abs().max().item() <= 0.25 + 1e-6
    assert abs(delta.mean().item()) < 0.01
    assert delta.std().item() == pytest.approx(0.25 / math.sqrt(3), rel=0.02)  # std of U(-eps, eps)


# --- the model is left as it was -----------------------------------------------------------------


class ModeRecorder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.inner = tiny_cnn()
        self.frozen = nn.BatchNorm1d(K)
        self.seen: list[bool] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append(self.training)
        return self.frozen(self.inner(x))


@pytest.mark.parametrize("training", [True, False])
def test_eval_mode_during_attack_and_mode_restored(training):
    model = ModeRecorder().train(training)
    model.frozen.eval()  # a submodule kept in eval inside a training model stays so
    x, y = image_batch()
    pgd_attack(model, x, y, threat=LINF, generator=seeded())
    assert model.seen == [False] * LINF.steps
    assert model.training is training and model.inner.training is training
    assert model.frozen.training is False


@pytest.mark.parametrize("training", [True, False])
def test_mode_restored_when_the_loss_raises(training):
    model = ModeRecorder().train(training)

    def broken_loss(logits, target):
        raise RuntimeError("boom")

    x, y = image_batch()
    with pytest.raises(RuntimeError, match="boom"):
        pgd_attack(model, x, y, threat=LINF, loss_fn=broken_loss, generator=seeded())
    assert model.seen == [False]
    assert all(m.training is training for m in model.modules())


def test_parameter_gradients_untouched():
    model = tiny_cnn()
    first, *rest = list(model.parameters())
    first.grad = torch.ones_like(first)
    x, y = image_batch()
    pgd_attack(model, x, y, threat=LINF, loss_fn=WassersteinLoss(random_metric(), p=2.5), generator=seeded())
    assert torch.equal(first.grad, torch.ones_like(first))
    assert all(p.grad is None for p in rest)


def test_works_under_no_grad():
    model = tiny_cnn()
    x, y = image_batch()
    with torch.no_grad():
        x_adv = pgd_attack(model, x, y, threat=LINF, generator=seeded())
    assert per_sample_ce(model, x_adv, y).mean() > per_sample_ce(model, x, y).mean()


# --- WPGD ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("channels", [1, 3])
def test_uniform_metric_wpgd_is_pgd(channels):
    # ∇(1 − ŷ_y) = ŷ_y ∇CE: with λ = ∞ and the same start, the sign steps agree.
    model = tiny_cnn(channels)
    x, y = image_batch(channels, n=64)
    uniform = torch.ones(K, K) - torch.eye(K)
    pgd = pgd_attack(model, x, y, threat=LINF, generator=seeded(11))
    wpgd = pgd_attack(model, x, y, threat=LINF, loss_fn=WassersteinLoss(uniform, p=1), generator=seeded(11))
    assert (pgd != wpgd).float().mean().item() < 1e-3
    # The comparison has teeth: a cost-sensitive metric does change the examples.
    other = pgd_attack(model, x, y, threat=LINF, loss_fn=WassersteinLoss(random_metric(), p=2.5),
                       generator=seeded(11))
    assert (pgd != other).float().mean().item() > 0.05


# A 3-class linear model on the plane: logits = W x. The point (-1, -1) is class 0,
# as far from the boundary to class 1 (x₁ = 0) as from the one to class 2 (x₂ = 0).
W = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
CHEAP_EXPENSIVE = torch.tensor([[0.0, 0.01, 10.0], [0.01, 0.0, 10.0], [10.0, 10.0, 0.0]], dtype=torch.float64)


def linear_model() -> nn.Module:
    model = nn.Linear(2, 3, bias=False).double()
    with torch.no_grad():
        model.weight.copy_(W)
    return model


def test_wpgd_l2_step_follows_the_wasserstein_gradient():
    model = linear_model()
    x = torch.tensor([[-1.0, -1.0], [-0.5, -2.0]], dtype=torch.float64)
    y = torch.tensor([0, 0])
    config = ThreatModel(eps=1.0, step_size=0.1, steps=1, norm="l2", random_start=False, bounds=None)
    delta = pgd_attack(model, x, y, threat=config, loss_fn=WassersteinLoss(CHEAP_EXPENSIVE, p=2)) - x
    # The gradient of (C^2)[y] · softmax(W x), computed here by autograd on a fresh leaf.
    leaf = x.clone().requires_grad_(True)
    wasserstein_loss(leaf @ W.T, y, CHEAP_EXPENSIVE**2, reduction="sum").backward()
    expected = 0.1 * leaf.grad / leaf.grad.norm(dim=1, keepdim=True)
    torch.testing.assert_close(delta, expected, rtol=1e-12, atol=1e-14)
    # Towards the expensive class 2 and away from the cheap class 1 (moving mass from
    # class 2 to class 1 would lower the cost), unlike cross-entropy's symmetric (1, 1).
    assert delta[0, 1] > 0 > delta[0, 0]
    ce_delta = pgd_attack(model, x[:1], y[:1], threat=config) - x[:1]
    torch.testing.assert_close(ce_delta[0, 0], ce_delta[0, 1])


def test_wpgd_reaches_the_expensive_class():
    model = linear_model()
    x = torch.tensor([[-1.0, -1.0]], dtype=torch.float64)
    y = torch.tensor([0])
    config = ThreatModel(eps=1.5, step_size=0.3, steps=10, norm="l2", random_start=False, bounds=None)
    wpgd = pgd_attack(model, x, y, threat=config, loss_fn=WassersteinLoss(CHEAP_EXPENSIVE, p=1))
    assert model(wpgd).argmax(1).item() == 2
    pgd = pgd_attack(model, x, y, threat=config)
    cost = WassersteinLoss(CHEAP_EXPENSIVE, p=1)
    with torch.no_grad():
        assert cost(model(wpgd), y) > cost(model(pgd), y) + 1.0


# --- no bounds -----------------------------------------------------------------------------------


def test_no_bounds_linf_saturates_at_the_sign_of_the_weights():
    # Two classes, linear: ∇CE = (1 − ŷ_y)(w_other − w_y) keeps its sign, so after
    # enough steps δ = eps · sign(w_other − w_y) exactly, far outside [0, 1].
    model = nn.Linear(2, 2).double()
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[1.0, -2.0], [-0.5, 3.0]]))
        model.bias.zero_()
    x = torch.tensor([[5.0, -3.0], [-4.0, 7.0]], dtype=torch.float64)
    y = torch.tensor([0, 1])
    config = ThreatModel(eps=0.3, step_size=0.1, steps=5, bounds=None)
    delta = pgd_attack(model, x, y, threat=config, generator=seeded()) - x
    direction = torch.tensor([[-1.5, 5.0], [1.5, -5.0]], dtype=torch.float64)  # w_other − w_y
    torch.testing.assert_close(delta, 0.3 * direction.sign(), rtol=0, atol=1e-12)
    clamped = pgd_attack(model, x, y, threat=ThreatModel(eps=0.3, step_size=0.1, steps=5), generator=seeded())
    assert clamped.min().item() >= 0.0 and clamped.max().item() <= 1.0


def test_no_bounds_l2_saturates_along_the_weights():
    model = nn.Linear(2, 2, bias=False).double()
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[1.0, -2.0], [-0.5, 3.0]]))
    # Moderate logits (-0.9, 2.85): ŷ_y - 1 keeps its digits, so the direction is exact.
    x = torch.tensor([[1.5, 1.2]], dtype=torch.float64)
    y = torch.tensor([0])
    # No random start: every step is along the same direction, then cut at eps.
    config = ThreatModel(eps=0.4, step_size=0.1, steps=8, norm="l2", random_start=False, bounds=None)
    delta = pgd_attack(model, x, y, threat=config, generator=seeded()) - x
    direction = torch.tensor([[-1.5, 5.0]], dtype=torch.float64)
    torch.testing.assert_close(delta, 0.4 * direction / direction.norm(), rtol=1e-9, atol=1e-12)


# --- a per-sample loss ---------------------------------------------------------------------------


def test_per_sample_loss_is_summed():
    model = tiny_cnn()
    x, y = image_batch()
    per_sample = pgd_attack(model, x, y, threat=L2, generator=seeded(),
                            loss_fn=lambda z, t: F.cross_entropy(z, t, reduction="none"))
    torch.testing.assert_close(per_sample, pgd_attack(model, x, y, threat=L2, generator=seeded()))


# --- bad input -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"eps": 0.0}, "eps"),
        ({"eps": -0.1}, "eps"),
        ({"eps": math.nan}, "eps"),
        ({"step_size": 0.0}, "step_size"),
        ({"steps": 0}, "steps"),
        ({"steps": 2.5}, "steps"),
        ({"norm": "l1"}, "norm"),
        ({"bounds": (1.0, 0.0)}, "bounds"),
    ],
)
def test_invalid_config(kwargs, match):
    settings = {"eps": 0.1, "step_size": 0.01, "steps": 3} | kwargs
    with pytest.raises(WpgdkitError, match=match) as info:
        ThreatModel(**settings)
    assert "\n" not in str(info.value)


def test_invalid_inputs():
    model = tiny_cnn()
    x, y = image_batch()
    with pytest.raises(WpgdkitError, match="floating point"):
        pgd_attack(model, (x * 255).to(torch.uint8), y, threat=LINF)
    with pytest.raises(WpgdkitError, match="labels"):
        pgd_attack(model, x, y[:-1], threat=LINF)
