"""AutoAttack (torchattacks) as an audit adversary: budget, bounds, modes, the audit, and its errors."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from wpgdkit.attacks import AttackConfig, ThreatModel, create_attack
from wpgdkit.attacks.autoattack import MISSING_DEPENDENCY, AutoAttack, autoattack_batch
from wpgdkit.audit import AuditConfig, audit
from wpgdkit.errors import WpgdkitError

SHAPE = (1, 8, 8)
K = 4
FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")


class _ModeSpy(nn.Module):
    """Identity that records the mode of every forward pass."""

    def __init__(self) -> None:
        super().__init__()
        self.modes: list[bool] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.modes.append(self.training)
        return x


def _tiny_model() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), _ModeSpy(), nn.Linear(64, 32), nn.BatchNorm1d(32), nn.ReLU(),
                         nn.Dropout(0.5), nn.Linear(32, K))


def _points(model: nn.Module, n: int = 12) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.rand(n, *SHAPE, generator=torch.Generator().manual_seed(1))
    model.eval()
    with torch.no_grad():
        y = model(x).argmax(1)
    y[:2] = (y[:2] + 1) % K  # two points the model gets wrong from the start
    return x, y


@pytest.fixture(autouse=True)
def one_thread():
    """AutoAttack is thousands of tiny ops: one thread. (Two threads on a shared two-core machine
    wait on each other at every op, 10-40x slower here.)"""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def torchattacks():
    return pytest.importorskip("torchattacks")


@pytest.fixture
def components(torchattacks, monkeypatch):
    """Cap Square at 50 queries (5000 take seconds per robust point on a CPU) and count each component's runs."""
    from torchattacks.attacks import autoattack as module

    calls: dict[str, int] = {}

    def counted(cls, **caps):
        class Counted(cls):
            def __init__(self, *args, **kwargs):
                super().__init__(*args, **{**kwargs, **caps})

            def forward(self, images, labels):
                calls[cls.__name__] = calls.get(cls.__name__, 0) + 1
                return super().forward(images, labels)

        return Counted

    for name, caps in (("APGD", {}), ("APGDT", {}), ("FAB", {}), ("Square", {"n_queries": 50})):
        monkeypatch.setattr(module, name, counted(getattr(module, name), **caps))
    return calls


def _norms(delta: torch.Tensor, norm: str) -> torch.Tensor:
    flat = delta.flatten(1)
    return flat.abs().amax(1) if norm == "linf" else flat.norm(dim=1)


@pytest.mark.parametrize("norm, eps", [("linf", 0.03), ("l2", 0.3)])
def test_within_budget_and_bounds_and_no_better_than_clean(components, norm, eps):
    model = _tiny_model()
    x, y = _points(model)
    model.train()
    model[3].eval()  # a frozen BatchNorm inside a training model
    before = [m.training for m in model.modules()]
    stats = model[3].running_mean.clone()
    model[2].weight.grad = torch.ones_like(model[2].weight)  # FAB runs .backward(): .grad must stay as it is
    rng = torch.get_rng_state()
    model[1].modes.clear()
    x_adv = AutoAttack(model, eps=eps, norm=norm)(x, y, seeds=[0])

    assert x_adv.shape == x.shape and x_adv.dtype == x.dtype and not x_adv.requires_grad
    assert float(_norms(x_adv - x, norm).max()) <= eps * (1 + 1e-5)
    assert float(x_adv.min()) >= 0.0 and float(x_adv.max()) <= 1.0
    assert [m.training for m in model.modules()] == before  # each module's own mode restored
    assert model[1].modes and not any(model[1].modes)  # every forward pass of the attack in eval mode
    assert torch.equal(model[3].running_mean, stats)
    assert torch.equal(model[2].weight.grad, torch.ones_like(model[2].weight))
    assert all(p.grad is None for name, p in model.named_parameters() if name != "2.weight")
    assert all(p.requires_grad for p in model.parameters())
    assert torch.equal(torch.get_rng_state(), rng)  # torchattacks reseeds the global RNG; we restore it
    # Budget this small leaves robust points: all four component attacks ran, on the CPU.
    assert set(components) == {"APGD", "APGDT", "FAB", "Square"}
    model.eval()
    with torch.no_grad():
        clean = model(x).argmax(1) == y
        adv = model(x_adv).argmax(1) == y
    assert int(adv.sum()) <= int(clean.sum())
    assert not bool((adv & ~clean).any())  # never turns a mistake into a correct answer
    assert bool((~adv & clean).any())  # and fools some of the points


def test_same_seed_same_examples(components):
    model = _tiny_model().eval()
    x, y = _points(model)
    threat = ThreatModel(eps=0.03)
    a = autoattack_batch(model, x, y, threat=threat, seed=3)
    b = autoattack_batch(model, x, y, threat=threat, seed=3)
    assert torch.equal(a, b)


def test_steps_and_step_size_do_not_apply(components):
    model = _tiny_model().eval()
    x, y = _points(model)
    a = autoattack_batch(model, x, y, threat=ThreatModel(eps=0.03, steps=1), seed=0)
    b = autoattack_batch(model, x, y, threat=ThreatModel(eps=0.03, steps=50, step_size=0.5), seed=0)
    assert torch.equal(a, b)


@pytest.mark.skipif(not (FASHION_MNIST / "t10k-images-idx3-ubyte.gz").is_file(),
                    reason="Debian's dataset-fashion-mnist is not installed")
def test_audit_of_a_fashion_mnist_checkpoint(components, tmp_path):
    from wpgdkit.training import DataConfig, TrainConfig, train

    out = tmp_path / "fm-pgd.pt"
    train(TrainConfig(data=DataConfig("fashion-mnist", limit=128, val_fraction=0.0), model="linear", method="pgd",
                      eps=0.1, steps=1, eval_steps=0, epochs=1, batch_size=64, lr=0.05, out=str(out), device="cpu"))
    report = audit(AuditConfig(checkpoints=(str(out),), attack="autoattack", limit=16, batch_size=8, device="cpu"))
    (model,) = report.models
    assert report.attack.name == "autoattack" and report.attack.threat.eps == pytest.approx(0.1)
    assert report.to_dict()["attack"]["name"] == "autoattack"
    assert 0.0 <= model.natural_error <= model.adversarial_error <= 100.0
    assert components["APGD"] == 2  # one per batch of 8, the model attacked once


def test_missing_torchattacks_is_a_one_line_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "torchattacks", None)  # import torchattacks now raises ImportError
    model = _tiny_model().eval()
    x, y = _points(model, 4)
    with pytest.raises(WpgdkitError) as info:
        autoattack_batch(model, x, y, threat=ThreatModel(eps=0.03), seed=0)
    assert str(info.value) == MISSING_DEPENDENCY
    assert str(info.value) == "the autoattack attack needs torchattacks: pip install 'wpgdkit[autoattack]'"
    assert "\n" not in str(info.value)
    with pytest.raises(WpgdkitError, match="needs torchattacks"):  # through the audit's attack registry
        create_attack(AttackConfig("autoattack", ThreatModel(eps=0.03)), model)(x, y)


@pytest.mark.parametrize("bounds", [None, (-1.0, 1.0), (0.0, 255.0)])
def test_data_not_in_the_unit_interval_is_refused(bounds):
    model = _tiny_model().eval()
    x, y = _points(model, 4)
    with pytest.raises(WpgdkitError, match=r"needs image data in \[0, 1\]"):
        autoattack_batch(model, x, y, threat=ThreatModel(eps=0.03, bounds=bounds), seed=0)


def test_non_image_batches_and_other_norms_are_refused():
    model = nn.Sequential(nn.Linear(2, 3)).eval()
    x, y = torch.rand(5, 2), torch.zeros(5, dtype=torch.int64)
    with pytest.raises(WpgdkitError, match=r"\(N, C, H, W\)"):
        autoattack_batch(model, x, y, threat=ThreatModel(eps=0.1), seed=0)
    threat = ThreatModel(eps=0.1)
    object.__setattr__(threat, "norm", "l1")
    with pytest.raises(WpgdkitError, match="norms linf, l2"):
        autoattack_batch(_tiny_model().eval(), torch.rand(2, *SHAPE), torch.zeros(2, dtype=torch.int64),
                         threat=threat, seed=0)


def test_toy_audit_is_refused(tmp_path):
    from wpgdkit.training import DataConfig, TrainConfig, train

    out = tmp_path / "toy.pt"
    train(TrainConfig(data=DataConfig("toy", limit=64, val_fraction=0.0), model="linear", method="ce", norm="l2",
                      eps=0.4, steps=1, eval_steps=0, epochs=1, batch_size=64, lr=0.05, out=str(out), device="cpu"))
    with pytest.raises(WpgdkitError, match=r"needs image data in \[0, 1\]"):
        audit(AuditConfig(checkpoints=(str(out),), attack="autoattack", limit=8, device="cpu"))
