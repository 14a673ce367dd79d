"""The model registry: names, building, in-model normalisation, parameter counts."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import wpgdkit.models.registry as model_registry
from wpgdkit.datasets import get_dataset, list_datasets
from wpgdkit.errors import UnknownNameError, WpgdkitError
from wpgdkit.models import (
    ModelSpec,
    Normalize,
    NormalizedModel,
    count_parameters,
    create_model,
    dataset_normalization,
    get_model_spec,
    list_models,
    register_model,
)

# Models cheap enough to run a real forward pass on a CPU in every test run.
CPU_FORWARD = {"linear", "mlp", "small-cnn", "conv1d", "wrn-16-10"}
# Models for inputs other than images: a shape they take.
_SHAPES = {"conv1d": (2, 16)}


def _compatible_shape(name: str) -> tuple[int, ...]:
    spec = get_model_spec(name)
    return spec.input_shapes[0] if spec.input_shapes else _SHAPES.get(name, (3, 32, 32))


def test_names_in_registration_order():
    assert list_models() == ["linear", "mlp", "small-cnn", "conv1d", "wrn-16-10", "wrn-28-10", "wrn-40-10"]
    assert all(isinstance(get_model_spec(n), ModelSpec) for n in list_models())


@pytest.mark.parametrize("name", list_models())
def test_every_model_gives_logits(name):
    shape = _compatible_shape(name)
    torch.manual_seed(0)
    if name in CPU_FORWARD:
        model = create_model(name, num_classes=7, input_shape=shape).eval()
        with torch.no_grad():
            logits = model(torch.rand(2, *shape))
        assert torch.isfinite(logits).all()
    else:  # the big WRNs: shapes only, through meta tensors, no memory
        with torch.device("meta"):
            model = create_model(name, num_classes=7, input_shape=shape)
            logits = model(torch.empty(2, *shape))
        assert logits.is_meta
    assert isinstance(model, NormalizedModel) and model.model_name == name
    assert tuple(logits.shape) == (2, 7)


@pytest.mark.parametrize("name", ["linear", "mlp"])
def test_flat_models_take_the_toy_problem(name):
    spec = get_dataset("toy")
    model = create_model(name, num_classes=spec.num_classes, input_shape=spec.input_shape)
    assert tuple(model(torch.randn(5, *spec.input_shape)).shape) == (5, spec.num_classes)
    assert model.mean == (0.0, 0.0) and model.std == (1.0, 1.0)


@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 8, 8), (3, 64, 64), (1, 9, 13)])
def test_small_cnn_takes_any_image_of_at_least_8_pixels(shape):
    model = create_model("small-cnn", num_classes=4, input_shape=shape)
    assert tuple(model(torch.rand(2, *shape)).shape) == (2, 4)


def test_unknown_name_lists_the_valid_ones():
    with pytest.raises(UnknownNameError) as info:
        create_model("resnet-50", num_classes=10, input_shape=(3, 32, 32))
    message = str(info.value)
    assert message.startswith("unknown model 'resnet-50'")
    assert all(name in message for name in list_models())
    with pytest.raises(UnknownNameError):
        get_model_spec("wrn-22-4")  # parseable, but not registered


@pytest.mark.parametrize(
    ("name", "shape", "needs"),
    [
        ("wrn-16-10", (1, 28, 28), "3×32×32 or 3×64×64"),
        ("wrn-28-10", (2,), "3×32×32 or 3×64×64"),
        ("wrn-16-10", (3, 48, 48), "3×32×32 or 3×64×64"),
        ("small-cnn", (2,), "H, W ≥ 8"),
        ("small-cnn", (3, 7, 32), "H, W ≥ 8"),
    ],
)
def test_unsupported_input_shapes(name, shape, needs):
    with pytest.raises(WpgdkitError, match=needs):
        create_model(name, num_classes=10, input_shape=shape)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"num_classes": 0}, "num_classes"),
        ({"num_classes": 2.5}, "num_classes"),
        ({"input_shape": ()}, "input_shape"),
        ({"input_shape": (3, 0, 32)}, "input_shape"),
        ({"mean": (0.5,)}, "both mean and std"),
        ({"mean": (0.1, 0.2), "std": (1.0, 1.0)}, "needs 1 or 3"),
        ({"mean": (0.1,), "std": (0.0,)}, "positive"),
        ({"mean": ("a",), "std": (1.0,)}, "numbers"),
        ({"mean": (float("nan"),), "std": (1.0,)}, "finite"),
    ],
)
def test_bad_arguments_are_wpgdkit_errors(kwargs, match):
    args = {"num_classes": 10, "input_shape": (3, 32, 32), **kwargs}
    with pytest.raises(WpgdkitError, match=match):
        create_model("small-cnn", **args)


# --- normalisation ------------------------------------------------------------------------


def test_normalize_by_hand():
    x = torch.tensor([[[[0.0, 1.0]], [[0.5, 0.25]]]])  # (N=1, C=2, H=1, W=2)
    layer = Normalize((0.5, 0.25), (0.5, 0.125))
    expected = torch.tensor([[[[-1.0, 1.0]], [[2.0, 0.0]]]])
    assert torch.equal(layer(x), expected)
    assert layer.mean.shape == (1, 2, 1, 1) and layer.std.shape == (1, 2, 1, 1)
    assert "mean=(0.5, 0.25)" in repr(layer) and "std=(0.5, 0.125)" in repr(layer)


def test_normalize_flat_features():
    layer = Normalize((1.0, -1.0, 0.0), (2.0, 1.0, 4.0), spatial_dims=0)
    assert layer.mean.shape == (1, 3)
    x = torch.tensor([[3.0, 1.0, 2.0]])
    assert torch.equal(layer(x), torch.tensor([[1.0, 2.0, 0.5]]))


def test_normalisation_lives_inside_the_model():
    mean, std = dataset_normalization("cifar10")
    torch.manual_seed(0)
    model = create_model("small-cnn", num_classes=10, input_shape=(3, 32, 32), mean=mean, std=std).eval()
    x = torch.rand(4, 3, 32, 32)
    by_hand = (x - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    with torch.no_grad():
        torch.testing.assert_close(model(x), model.net(by_hand))
    assert model.mean == mean and model.std == std  # recorded exactly, for checkpoints
    assert isinstance(model.normalize, Normalize) and model[1] is model.net


def test_normalisation_is_saved_and_restored():
    mean, std = dataset_normalization("mnist")
    source = create_model("linear", num_classes=10, input_shape=(1, 28, 28), mean=mean, std=std)
    target = create_model("linear", num_classes=10, input_shape=(1, 28, 28))
    assert {"normalize.mean", "normalize.std"} <= set(source.state_dict())
    target.load_state_dict(source.state_dict())
    assert target.mean == mean and target.std == std


def test_no_normalisation_is_the_identity():
    model = create_model("linear", num_classes=3, input_shape=(3, 4, 4))
    x = torch.rand(2, 3, 4, 4)
    assert torch.equal(model.normalize(x), x)
    assert model.mean == (0.0, 0.0, 0.0) and model.std == (1.0, 1.0, 1.0)


def test_a_single_value_is_broadcast_over_channels():
    model = create_model("linear", num_classes=3, input_shape=(3, 4, 4), mean=(0.5,), std=(0.25,))
    assert model.mean == (0.5, 0.5, 0.5) and model.std == (0.25, 0.25, 0.25)


def test_dataset_normalization():
    assert dataset_normalization("cifar10") == ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616))
    assert dataset_normalization("cifar100") == ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762))
    assert dataset_normalization("tiny-imagenet") == ((0.4802, 0.4481, 0.3975), (0.2770, 0.2691, 0.2821))
    assert dataset_normalization("mnist") == ((0.1307,), (0.3081,))
    assert dataset_normalization("fashion-mnist") == ((0.2860,), (0.3530,))
    assert dataset_normalization("toy") == (None, None)
    with pytest.raises(UnknownNameError, match="choose one of: .*cifar10"):
        dataset_normalization("imagenet")


@pytest.mark.parametrize("dataset", list_datasets())
def test_dataset_statistics_fit_the_dataset(dataset):
    spec = get_dataset(dataset)
    mean, std = dataset_normalization(dataset)
    if mean is not None:
        assert len(mean) == len(std) == spec.input_shape[0]
    model = create_model("linear", num_classes=spec.num_classes, input_shape=spec.input_shape, mean=mean, std=std)
    assert len(model.mean) == spec.input_shape[0]


# --- registration and parameter counts ---------------------------------------------------


def test_register_model_into_a_copy(monkeypatch):
    monkeypatch.setattr(model_registry, "_REGISTRY", model_registry._REGISTRY.copy())

    @register_model("tiny", description="flatten + linear", input_shapes=[(1, 2, 2)])
    def tiny(*, num_classes, input_shape):
        return nn.Sequential(nn.Flatten(), nn.Linear(math.prod(input_shape), num_classes))

    assert list_models()[-1] == "tiny" and get_model_spec("tiny").builder is tiny
    assert get_model_spec("tiny").supported_inputs == "1×2×2"
    assert count_parameters(create_model("tiny", num_classes=2, input_shape=(1, 2, 2))) == 10
    with pytest.raises(ValueError, match="already registered"):
        register_model("tiny", description="again")(tiny)


def test_supported_inputs_text():
    assert get_model_spec("linear").supported_inputs == "any"
    assert get_model_spec("wrn-28-10").supported_inputs == "3×32×32 or 3×64×64"
    assert "H, W ≥ 8" in get_model_spec("small-cnn").supported_inputs


def test_linear_parameter_count():
    assert count_parameters(create_model("linear", num_classes=10, input_shape=(1, 28, 28))) == 7850


@pytest.mark.parametrize(("shape", "k"), [((2,), 3), ((1, 28, 28), 10), ((3, 32, 32), 100)])
def test_mlp_parameter_count(shape, k):
    d = math.prod(shape)
    expected = d * 256 + 256 + 256 * 256 + 256 + 256 * k + k
    assert count_parameters(create_model("mlp", num_classes=k, input_shape=shape)) == expected


def test_small_cnn_parameter_count():
    expected = (3 * 32 * 9 + 32) + (32 * 64 * 9 + 64) + (64 * 16 * 128 + 128) + (128 * 10 + 10)
    assert count_parameters(create_model("small-cnn", num_classes=10, input_shape=(3, 32, 32))) == expected


def test_count_parameters_excludes_buffers_and_shared_weights():
    shared = nn.Linear(3, 3)
    model = nn.Sequential(shared, nn.BatchNorm1d(3), shared)
    assert count_parameters(model) == 12 + 6  # BN running stats are buffers
