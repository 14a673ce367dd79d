"""The audit's attack in either memory layout: the same predictions and confusions (issue 14).

A small CNN is trained here in seconds on a seeded Fashion-MNIST subset. In
float64 the two layouts' kernels agree to ~1e-16, so every natural and
adversarial prediction must be equal. In float32 they agree to ~1e-7: a
gradient component within rounding of zero may change its sign in one layout
and move that point's PGD trajectory, so up to 2 % of the adversarial
predictions may differ (0 of 512 did on the machine this was written on);
natural predictions must be equal wherever the top two logits are not tied
to within 1e-4.
"""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from wpgdkit.attacks import AttackConfig, ThreatModel
from wpgdkit.audit import audit_model
from wpgdkit.errors import WpgdkitError
from wpgdkit.models import create_model
from wpgdkit.models.layout import clear_memory_format_cache, memory_format_name, preferred_memory_format

THREAT = ThreatModel(eps=0.03, steps=8)


@pytest.fixture(scope="module")
def fm_cnn():
    """small-cnn after 120 SGD steps on 2,048 seeded Fashion-MNIST images, and 256 test points."""
    from wpgdkit.datasets import load_tensors
    from wpgdkit.models import dataset_normalization

    try:
        x, y = load_tensors("fashion-mnist", "train", limit=2048, seed=0)
        x_test, y_test = load_tensors("fashion-mnist", "test", limit=256, seed=0)
    except WpgdkitError as exc:  # pragma: no cover - the data is installed where the suite runs
        pytest.skip(f"Fashion-MNIST not available: {exc}")
    torch.manual_seed(0)
    mean, std = dataset_normalization("fashion-mnist")
    model = create_model("small-cnn", num_classes=10, input_shape=(1, 28, 28), mean=mean, std=std)
    params = list(model.parameters())
    velocity = [torch.zeros_like(p) for p in params]
    g = torch.Generator().manual_seed(0)
    for _ in range(120):
        i = torch.randint(0, len(x), (32,), generator=g)
        grads = torch.autograd.grad(F.cross_entropy(model(x[i]), y[i]), params)
        with torch.no_grad():
            for p, v, d in zip(params, velocity, grads):
                p.add_(v.mul_(0.9).add_(d), alpha=-0.05)
    return model.eval(), x_test, y_test


class Float64(nn.Module):
    """The network in float64, taking the audit's float32 points."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = copy.deepcopy(net).double()

    def forward(self, x):
        return self.net(x.double())


class LayoutProbe:
    """Records the storage of the second convolution's weight during the audit."""

    def __init__(self, model: nn.Module) -> None:
        conv = [m for m in model.modules() if isinstance(m, nn.Conv2d)][1]
        self.seen: set[str] = set()
        self.handle = conv.register_forward_pre_hook(
            lambda module, args: self.seen.add("channels_last" if not module.weight.is_contiguous() else "contiguous"))


def _audit(model, data, fmt, **changes):
    return audit_model(model, data, attack=AttackConfig("pgd", THREAT), batch_size=64, device="cpu",
                       memory_format=fmt, **changes)


def test_float32_audits_agree_across_layouts(fm_cnn):
    model, x, y = fm_cnn
    probe = LayoutProbe(model)
    reports, seen = {}, {}
    for fmt in ("contiguous", "channels_last"):
        probe.seen.clear()
        reports[fmt] = _audit(model, (x, y), fmt).models[0]
        seen[fmt] = set(probe.seen)
    probe.handle.remove()
    # The layouts did differ (a forward before the attack, checking the model's output, runs as given).
    assert seen["contiguous"] == {"contiguous"} and "channels_last" in seen["channels_last"]
    assert [reports[f].memory_format for f in reports] == ["contiguous", "channels_last"]
    assert all(p.is_contiguous() for p in model.parameters())  # the caller's model is given back as it was
    a, b = reports["contiguous"], reports["channels_last"]
    assert 10 < a.natural_error < 60 and a.adversarial_error > a.natural_error  # a model worth attacking
    with torch.no_grad():
        top2 = Float64(model)(x).topk(2, dim=1).values
    clear = (top2[:, 0] - top2[:, 1]) > 1e-4
    assert torch.equal(a.predictions.natural[clear], b.predictions.natural[clear])
    if bool(clear.all()):
        assert torch.equal(a.confusion_natural, b.confusion_natural) and a.natural_error == b.natural_error
    differ = int((a.predictions.adversarial != b.predictions.adversarial).sum())
    assert differ <= 0.02 * len(y), differ
    assert int((a.confusion_adversarial - b.confusion_adversarial).abs().sum()) <= 2 * differ
    assert abs(a.adversarial_error - b.adversarial_error) <= 100 * differ / len(y)


def test_float64_audits_are_equal_across_layouts(fm_cnn):
    model, x, y = fm_cnn
    net = Float64(model)
    reports = {fmt: _audit(net, (x[:96], y[:96]), fmt).models[0] for fmt in ("contiguous", "channels_last")}
    a, b = reports["contiguous"], reports["channels_last"]
    assert torch.equal(a.predictions.natural, b.predictions.natural)
    assert torch.equal(a.predictions.adversarial, b.predictions.adversarial)
    assert torch.equal(a.confusion_natural, b.confusion_natural)
    assert torch.equal(a.confusion_adversarial, b.confusion_adversarial)
    assert a.adversarial_error > a.natural_error


def test_auto_records_the_measured_layout(fm_cnn):
    model, x, y = fm_cnn
    clear_memory_format_cache()
    report = _audit(model, (x[:64], y[:64]), "auto")
    expected = memory_format_name(preferred_memory_format(model, x[:32]))  # the audit's trial: 32 points on a CPU
    assert report.models[0].memory_format == expected
    assert report.to_dict()["models"][0]["memory_format"] == expected
    assert report.to_dict()["attack"]["early_stop"] is False


def test_early_stop_in_the_audit(fm_cnn):
    """Same seeds: every point the plain audit fools is fooled with early stop too; S is still reported."""
    model, x, y = fm_cnn
    plain = _audit(model, (x[:128], y[:128]), "contiguous").models[0]
    early_report = audit_model(model, (x[:128], y[:128]), attack=AttackConfig("pgd", THREAT, early_stop=True),
                               batch_size=64, device="cpu", memory_format="contiguous")
    early = early_report.models[0]
    fooled_plain = plain.predictions.adversarial != y[:128]
    fooled_early = early.predictions.adversarial != y[:128]
    assert int((fooled_plain & ~fooled_early).sum()) <= 1  # float32: a borderline point may round either way
    assert early.adversarial_error >= plain.adversarial_error - 100 / 128
    assert early_report.to_dict()["attack"]["early_stop"] is True
    assert torch.equal(plain.predictions.natural, early.predictions.natural)
