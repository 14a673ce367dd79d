"""Small networks: a linear classifier, an MLP and a CNN that trains on a CPU.

They make the toy problem and quick MNIST/CIFAR experiments and tests cheap;
the paper's results use the Wide ResNets of :mod:`wpgdkit.models.wide_resnet`.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from wpgdkit.errors import WpgdkitError
from wpgdkit.models.registry import format_shape, register_model

__all__ = ["SmallCNN", "build_linear", "build_mlp", "build_small_cnn"]

MLP_HIDDEN = 256
SMALL_CNN_MIN_SIZE = 8  # two 2×2 max-pools leave at least 2×2 to average-pool


@register_model("linear", description="Flatten + one linear layer (logistic regression).")
def build_linear(*, num_classes: int, input_shape: tuple[int, ...]) -> nn.Module:
    """``(N, *input_shape)`` -> ``(N, K)`` by one ``Linear(prod(input_shape), K)``."""
    return nn.Sequential(nn.Flatten(), nn.Linear(math.prod(input_shape), num_classes))


@register_model("mlp", description=f"MLP, two hidden ReLU layers of {MLP_HIDDEN}.")
def build_mlp(*, num_classes: int, input_shape: tuple[int, ...]) -> nn.Module:
    """``(N, *input_shape)`` -> ``(N, K)``: Linear(d, 256)-ReLU-Linear(256, 256)-ReLU-Linear(256, K)."""
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(math.prod(input_shape), MLP_HIDDEN),
        nn.ReLU(),
        nn.Linear(MLP_HIDDEN, MLP_HIDDEN),
        nn.ReLU(),
        nn.Linear(MLP_HIDDEN, num_classes),
    )


class SmallCNN(nn.Module):
    """Two conv-ReLU-maxpool stages, a 4×4 adaptive average pool and a 2-layer head.

    Parameters
    ----------
    in_channels : int
        Channels ``C`` of the ``(N, C, H, W)`` input, ``H, W >= 8``.
    num_classes : int
        Number of classes ``K``.

    Notes
    -----
    The adaptive pool fixes the head's input at 64×4×4 whatever ``H, W``, so
    the same network takes MNIST (28×28), CIFAR (32×32) and Tiny-ImageNet
    (64×64) images.
    """

    def __init__(self, in_channels: int, num_classes: int) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 32, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.AdaptiveAvgPool2d(4),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(64 * 4 * 4, 128),
            nn.ReLU(),
            nn.Linear(128, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, C, H, W)`` -> logits ``(N, K)``."""
        return self.classifier(self.features(x))


@register_model(
    "small-cnn",
    description="Two conv layers + MLP head; fast on a CPU.",
    input_note=f"C×H×W images, H, W ≥ {SMALL_CNN_MIN_SIZE}",
)
def build_small_cnn(*, num_classes: int, input_shape: tuple[int, ...]) -> nn.Module:
    """A :class:`SmallCNN` for ``(C, H, W)`` inputs with ``H, W >= 8``.

    Raises
    ------
    WpgdkitError
        For inputs that are not images of at least 8×8 pixels.
    """
    if len(input_shape) != 3 or min(input_shape[1:]) < SMALL_CNN_MIN_SIZE:
        raise WpgdkitError(
            f"model 'small-cnn' needs C×H×W images with H, W ≥ {SMALL_CNN_MIN_SIZE}; got {format_shape(input_shape)}"
        )
    return SmallCNN(input_shape[0], num_classes)
