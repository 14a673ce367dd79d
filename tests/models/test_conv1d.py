"""The 1-D CNN for series (N, C, T): shapes, independence of the batch, size, refusals, a training sanity check."""

from __future__ import annotations

import math
import time
import warnings

import pytest
import torch
import torch.nn.functional as F

import wpgdkit.datasets.registry as dataset_registry
from wpgdkit.datasets import DatasetSpec, register_dataset
from wpgdkit.errors import WpgdkitError
from wpgdkit.models import (
    Normalize,
    count_parameters,
    create_model,
    describe_models,
    get_model_spec,
    list_models,
    model_parameter_count,
)
from wpgdkit.models.simple import CONV1D_KERNELS, CONV1D_MIN_LENGTH, CONV1D_WIDTHS, Conv1dNet


def _independent_count(channels: int, num_classes: int, widths=CONV1D_WIDTHS, kernels=CONV1D_KERNELS) -> int:
    """Weights of the bias-free convolutions, BN scale and shift, then the linear layer's weights and biases."""
    total, c_in = 0, channels
    for width, kernel in zip(widths, kernels):
        total += c_in * width * kernel + 2 * width
        c_in = width
    return total + c_in * num_classes + num_classes


def test_registered_after_the_image_cnn():
    names = list_models()
    assert "conv1d" in names and names.index("conv1d") == names.index("small-cnn") + 1
    spec = get_model_spec("conv1d")
    assert spec.input_shapes is None and spec.supported_inputs == f"C×T series, T ≥ {CONV1D_MIN_LENGTH}"
    assert spec.description.startswith("1-D CNN for series")


@pytest.mark.parametrize(("shape", "k"), [((1, 140), 5), ((3, 128), 6), ((9, 8), 2), ((2, 1000), 3), ((1, 9), 4)])
def test_logits_for_any_series(shape, k):
    torch.manual_seed(0)
    model = create_model("conv1d", num_classes=k, input_shape=shape)
    assert isinstance(model.net, Conv1dNet)
    logits = model(torch.randn(3, *shape))  # train mode: batch statistics
    assert logits.shape == (3, k) and torch.isfinite(logits).all()
    with torch.no_grad():
        assert model.eval()(torch.randn(1, *shape)).shape == (1, k)


def test_train_mode_takes_a_single_series():
    # BatchNorm1d pools over N·T values per channel, so one series of T ≥ 8 steps is enough.
    model = create_model("conv1d", num_classes=2, input_shape=(2, CONV1D_MIN_LENGTH)).train()
    assert model(torch.randn(1, 2, CONV1D_MIN_LENGTH)).shape == (1, 2)


def test_blocks_keep_the_length_with_keras_same_padding():
    torch.manual_seed(0)
    net = Conv1dNet(2, 3).double().eval()
    x = torch.randn(4, 2, 37, dtype=torch.float64)
    h = x
    for block in net.features:
        out = block(h)
        assert out.shape[2] == 37
        with warnings.catch_warnings():  # torch warns that an even kernel needs a padded copy
            warnings.simplefilter("ignore", UserWarning)
            reference = F.relu(block.bn(F.conv1d(h, block.conv.weight, padding="same")))
        torch.testing.assert_close(out, reference, rtol=1e-12, atol=1e-12)
        h = out
    assert net.features[0].padding == (3, 4)  # kernel 8: 3 zeros left, 4 right, as Keras pads


def test_batch_and_single_items_give_the_same_logits_in_eval_mode():
    torch.manual_seed(0)
    model = create_model("conv1d", num_classes=4, input_shape=(3, 50), mean=(0.1, -0.2, 0.3), std=(1.0, 2.0, 0.5))
    model = model.double()
    # A few training-mode passes so the BN running statistics are not the trivial 0/1.
    with torch.no_grad():
        for _ in range(3):
            model.train()(torch.randn(16, 3, 50, dtype=torch.float64) * 2 + 1)
    model.eval()
    x = torch.randn(7, 3, 50, dtype=torch.float64)
    with torch.no_grad():
        batch = model(x)
        one_by_one = torch.cat([model(x[i : i + 1]) for i in range(len(x))])
        # Other series in the batch, before or after, change nothing either.
        shuffled = model(torch.cat([torch.randn(5, 3, 50, dtype=torch.float64), x.flip(0)]))[5:].flip(0)
    torch.testing.assert_close(batch, one_by_one, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(batch, shuffled, rtol=1e-12, atol=1e-12)


def test_global_average_pooling_is_the_mean_over_time():
    torch.manual_seed(0)
    net = Conv1dNet(1, 3).double().eval()
    x = torch.randn(2, 1, 20, dtype=torch.float64)
    with torch.no_grad():
        features = net.features(x)
        assert features.shape == (2, CONV1D_WIDTHS[-1], 20)
        torch.testing.assert_close(net(x), features.sum(2) / 20 @ net.classifier.weight.T + net.classifier.bias)


def test_normalisation_is_per_channel_for_series():
    mean, std = (0.5, -1.0, 2.0), (0.25, 2.0, 4.0)
    torch.manual_seed(0)
    model = create_model("conv1d", num_classes=2, input_shape=(3, 16), mean=mean, std=std).eval()
    assert isinstance(model.normalize, Normalize) and model.normalize.mean.shape == (1, 3, 1)
    x = torch.randn(5, 3, 16)
    by_hand = (x - torch.tensor(mean).view(1, 3, 1)) / torch.tensor(std).view(1, 3, 1)
    with torch.no_grad():
        torch.testing.assert_close(model(x), model.net(by_hand))
    with pytest.raises(WpgdkitError, match="needs 1 or 3"):  # T values (per time step) are not channels
        create_model("conv1d", num_classes=2, input_shape=(3, 16), mean=(0.0,) * 16, std=(1.0,) * 16)


@pytest.mark.parametrize(("shape", "k"), [((1, 140), 5), ((3, 128), 6), ((3, 128), 2), ((12, 8), 10)])
def test_parameter_count(shape, k):
    expected = _independent_count(shape[0], k)
    assert model_parameter_count("conv1d", num_classes=k, input_shape=shape) == (expected, None)
    assert count_parameters(create_model("conv1d", num_classes=k, input_shape=shape)) == expected


def test_parameter_counts_by_hand():
    # 1×140, 5 classes: 1·64·8 + 128 + 64·128·5 + 256 + 128·64·3 + 128 + 64·5 + 5.
    assert model_parameter_count("conv1d", num_classes=5, input_shape=(1, 140))[0] == 66_885
    assert model_parameter_count("conv1d", num_classes=6, input_shape=(3, 128))[0] == 67_974
    # The FCN of the paper at full width (bias-free convolutions).
    full = Conv1dNet(1, 5, widths=(128, 256, 128))
    assert count_parameters(full) == _independent_count(1, 5, widths=(128, 256, 128)) == 264_837


def test_describe_models_on_a_series_dataset(monkeypatch):
    monkeypatch.setattr(dataset_registry, "_REGISTRY", dataset_registry._REGISTRY.copy())
    register_dataset(DatasetSpec(
        name="ecg-like", classes=("normal", "r-on-t", "pvc", "sp", "ub"), input_shape=(1, 140), input_range=None,
        description="five-class series of 140 steps", how_to_get="made up for this test",
        loader=lambda split, **kwargs: None,
    ))
    by_name = {row["name"]: row for row in describe_models("ecg-like")}
    row = by_name["conv1d"]
    assert row["parameters"] == _independent_count(1, 5) and row["note"] is None
    assert row["supported_inputs"] == "C×T series, T ≥ 8" and row["input_shapes"] is None
    # mlp flattens C×T; the image models do not apply.
    assert by_name["mlp"]["parameters"] == 140 * 256 + 256 + 256 * 256 + 256 + 256 * 5 + 5
    assert by_name["small-cnn"]["parameters"] is None and by_name["wrn-16-10"]["parameters"] is None


def test_describe_models_on_images_marks_conv1d_not_applicable():
    row = {row["name"]: row for row in describe_models("cifar10")}["conv1d"]
    assert row["parameters"] is None and row["note"] == "needs C×T series, T ≥ 8"


@pytest.mark.parametrize(
    ("shape", "fragments"),
    [
        ((2,), ["needs C×T series with T ≥ 8; got 2", "use mlp"]),
        ((784,), ["got 784", "use mlp"]),
        ((3, 32, 32), ["got 3×32×32", "use small-cnn"]),
        ((1, 28, 28), ["got 1×28×28", "use small-cnn"]),
        ((3, 7), ["got 3×7", "spans 8 steps"]),
        ((1, 1), ["got 1×1"]),
        ((1, 2, 3, 4), ["got 1×2×3×4"]),
    ],
)
def test_refuses_what_is_not_a_series(shape, fragments):
    with pytest.raises(WpgdkitError) as info:
        create_model("conv1d", num_classes=3, input_shape=shape)
    message = str(info.value)
    assert message.startswith("model 'conv1d' needs C×T series") and "\n" not in message
    for fragment in fragments:
        assert fragment in message
    # Nothing is built on the meta device either: the count says why.
    assert model_parameter_count("conv1d", num_classes=3, input_shape=shape) == (None, "needs C×T series, T ≥ 8")


@pytest.mark.parametrize("shape", [(3, 128), (1, 140), (2, 5)])
def test_mlp_flattens_series(shape):
    torch.manual_seed(0)
    model = create_model("mlp", num_classes=4, input_shape=shape)
    assert model(torch.randn(6, *shape)).shape == (6, 4)
    assert model.net[1].in_features == math.prod(shape)
    assert model.normalize.mean.shape == (1, shape[0], 1)


@pytest.mark.parametrize("features", [1, 7, 30])
def test_mlp_takes_any_flat_input(features):
    model = create_model("mlp", num_classes=2, input_shape=(features,))
    assert model(torch.randn(3, features)).shape == (3, 2)


def _sine_or_square(n: int, length: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Class 0: a noisy sine, class 1: a noisy square wave; random 2-5 cycles and phase."""
    t = torch.arange(length, dtype=torch.float32) / length
    cycles = 2 + 3 * torch.rand(n, 1, generator=generator)
    phase = 2 * math.pi * torch.rand(n, 1, generator=generator)
    wave = torch.sin(2 * math.pi * cycles * t + phase)
    y = torch.arange(n) % 2
    x = torch.where(y[:, None] == 1, torch.sign(wave), wave) + 0.3 * torch.randn(n, length, generator=generator)
    return x.unsqueeze(1), y


def _adam_step(params: list[torch.Tensor], grads, state: dict, *, lr: float, betas=(0.9, 0.999), eps=1e-8) -> None:
    """One step of Adam (Kingma & Ba, 2015), written out.

    ``torch.optim.Adam`` would do the same, but the first torch optimiser
    step in a process imports ``torch._dynamo``: seconds, more than this
    whole check.
    """
    state["t"] = t = state.get("t", 0) + 1
    moments = state.setdefault("moments", [(torch.zeros_like(p), torch.zeros_like(p)) for p in params])
    with torch.no_grad():
        for p, g, (m, v) in zip(params, grads, moments):
            m.mul_(betas[0]).add_(g, alpha=1 - betas[0])
            v.mul_(betas[1]).addcmul_(g, g, value=1 - betas[1])
            m_hat, v_hat = m / (1 - betas[0] ** t), v / (1 - betas[1] ** t)
            p.sub_(lr * m_hat / (v_hat.sqrt() + eps))


def test_hand_written_adam_under_a_constant_gradient():
    # With the same gradient g at every step, the bias-corrected moments are
    # g and g², so every Adam step moves each parameter by lr·g / (|g| + eps).
    p, g = torch.tensor([1.0, -2.0, 0.5]), torch.tensor([3.0, -0.5, 1e-3])
    state: dict = {}
    for step in range(1, 4):
        _adam_step([p], [g], state, lr=0.1)
        expected = torch.tensor([1.0, -2.0, 0.5]) - step * 0.1 * g / (g.abs() + 1e-8)
        torch.testing.assert_close(p, expected)


def test_training_sanity_sine_vs_square():
    generator = torch.Generator().manual_seed(0)
    x, y = _sine_or_square(200, 48, generator)
    torch.manual_seed(0)
    model = create_model("conv1d", num_classes=2, input_shape=(1, 48))
    params = list(model.parameters())
    start = time.perf_counter()
    model.eval()
    with torch.no_grad():
        initial = F.cross_entropy(model(x), y).item()
    model.train()
    state: dict = {}
    for _ in range(30):
        batch = torch.randperm(len(x), generator=generator)[:32]
        grads = torch.autograd.grad(F.cross_entropy(model(x[batch]), y[batch]), params)
        _adam_step(params, grads, state, lr=1e-2)
    model.eval()
    with torch.no_grad():
        logits = model(x)
    final = F.cross_entropy(logits, y).item()
    chance = math.log(2)
    assert abs(initial - chance) < 0.2  # starts near chance ...
    assert final < chance / 4  # ... and ends far below it
    assert (logits.argmax(1) == y).float().mean() > 0.95
    assert time.perf_counter() - start < 5


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_pgd_attacks_series_through_conv1d(norm):
    from wpgdkit.attacks import AttackConfig, ThreatModel, create_attack

    torch.manual_seed(0)
    model = create_model("conv1d", num_classes=3, input_shape=(2, 30)).eval()
    x, y = torch.randn(4, 2, 30), torch.tensor([0, 1, 2, 0])
    threat = ThreatModel(eps=0.25, steps=3, norm=norm, bounds=None)
    x_adv = create_attack(AttackConfig("pgd", threat), model)(x, y, generator=torch.Generator().manual_seed(0))
    assert x_adv.shape == x.shape and not torch.equal(x_adv, x)
    delta = (x_adv - x).flatten(1)
    size = delta.abs().amax(1) if norm == "linf" else delta.norm(dim=1)
    assert (size <= 0.25 + 1e-5).all()
