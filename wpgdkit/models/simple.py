"""Small networks: a linear classifier, an MLP, an image CNN and a 1-D CNN that train on a CPU.

They make the toy problem, quick MNIST/CIFAR experiments, time-series problems
and tests cheap; the paper's results use the Wide ResNets of
:mod:`wpgdkit.models.wide_resnet`.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from wpgdkit.errors import WpgdkitError

# The sizes the registry's descriptions quote (registered without torch in wpgdkit.models.builtin).
from wpgdkit.models.builtin import CONV1D_KERNELS, CONV1D_MIN_LENGTH, MLP_HIDDEN, SMALL_CNN_MIN_SIZE
from wpgdkit.models.registry import format_shape

__all__ = ["Conv1dNet", "SmallCNN", "build_conv1d", "build_linear", "build_mlp", "build_small_cnn"]

#: Channels of the three blocks: the FCN's 128/256/128 halved, for CPU training (see :class:`Conv1dNet`).
CONV1D_WIDTHS: tuple[int, int, int] = (64, 128, 64)


def build_linear(*, num_classes: int, input_shape: tuple[int, ...]) -> nn.Module:
    """``(N, *input_shape)`` -> ``(N, K)`` by one ``Linear(prod(input_shape), K)``."""
    return nn.Sequential(nn.Flatten(), nn.Linear(math.prod(input_shape), num_classes))


def build_mlp(*, num_classes: int, input_shape: tuple[int, ...]) -> nn.Module:
    """``(N, *input_shape)`` -> ``(N, K)``: Linear(d, 256)-ReLU-Linear(256, 256)-ReLU-Linear(256, K).

    ``d = prod(input_shape)``: any shape is flattened, so ``(F,)`` tabular
    features, ``(C, T)`` series and ``(C, H, W)`` images all fit.
    """
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


class _ConvBlock1d(nn.Module):
    """Conv1d ("same" length) -> BatchNorm1d -> ReLU.

    The convolution has no bias: the batch norm right after it subtracts the
    per-channel mean, which would cancel a bias exactly.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int) -> None:
        super().__init__()
        # "Same" padding as in Keras (the FCN's reference code): k - 1 zeros in
        # all, the extra one on the right for an even k. Padded by hand because
        # Conv1d(padding="same") warns about, and copies for, even kernels.
        self.padding = ((kernel_size - 1) // 2, kernel_size // 2)
        self.conv = nn.Conv1d(in_channels, out_channels, kernel_size, bias=False)
        self.bn = nn.BatchNorm1d(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, C_in, T)`` -> ``(N, C_out, T)``."""
        return F.relu(self.bn(self.conv(F.pad(x, self.padding))))


class Conv1dNet(nn.Module):
    """A fully convolutional network for series: three conv blocks, global average pooling, linear.

    The architecture of the FCN baseline for time-series classification of
    Wang, Yan & Oates, "Time series classification from scratch with deep
    neural networks: a strong baseline", IJCNN 2017 (arXiv:1611.06455):
    convolutions of kernel length 8, 5 and 3 with "same" padding, each
    followed by batch norm and ReLU, then global average pooling over time and
    a linear layer to the ``K`` logits.

    Parameters
    ----------
    in_channels : int
        Channels ``C`` (variables) of the ``(N, C, T)`` input.
    num_classes : int
        Number of classes ``K``.
    widths : tuple of 3 int, default=:data:`CONV1D_WIDTHS` (64, 128, 64)
        Output channels of the three blocks; ``(128, 256, 128)`` is the FCN
        of the paper.
    kernels : tuple of 3 int, default=:data:`CONV1D_KERNELS` (8, 5, 3)
        Kernel lengths of the three blocks.

    Notes
    -----
    Widths: the registered ``conv1d`` halves the FCN's 128/256/128. The
    second and third convolutions dominate the cost and scale with the product
    of their input and output widths, so halving them cuts the
    multiply-adds about fourfold (measured on one CPU thread: 9 forward-backward passes
    of a batch of 128 series of length 140, i.e. one PGD-8 training step,
    take about 7 s at full width and 2 s at half width), and adversarial
    training repeats that for every attack step. Pass ``widths=(128, 256,
    128)`` for the paper's network.

    Convolutions have no bias (the batch norm after each would cancel it);
    the paper's Keras code has one, which changes the parameter count, not the
    functions the network can represent.

    Global average pooling makes the network take any length ``T`` and keeps
    every series' logits independent of the other series in the batch in
    eval mode; the receptive field of one pooled position spans
    ``8 + 5 + 3 - 2 = 14`` time steps.
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        *,
        widths: tuple[int, int, int] = CONV1D_WIDTHS,
        kernels: tuple[int, int, int] = CONV1D_KERNELS,
    ) -> None:
        super().__init__()
        if len(widths) != len(kernels):
            raise ValueError(f"widths {widths} and kernels {kernels} differ in length")
        blocks = []
        channels = in_channels
        for width, kernel in zip(widths, kernels):
            blocks.append(_ConvBlock1d(channels, width, kernel))
            channels = width
        self.features = nn.Sequential(*blocks)
        self.classifier = nn.Linear(channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, C, T)`` -> logits ``(N, K)``."""
        return self.classifier(self.features(x).mean(dim=2))


def build_conv1d(*, num_classes: int, input_shape: tuple[int, ...]) -> nn.Module:
    """A :class:`Conv1dNet` for ``(C, T)`` series with ``T >= 8``.

    ``T >= 8`` is the first kernel's length: shorter series would be seen by
    no window of the first layer without zero padding.

    Raises
    ------
    WpgdkitError
        For inputs that are not ``C×T`` series of at least 8 steps; the message
        names the model that fits feature vectors (``mlp``) or images
        (``small-cnn``).
    """
    needs = f"model 'conv1d' needs C×T series with T ≥ {CONV1D_MIN_LENGTH}; got {format_shape(input_shape)}"
    if len(input_shape) == 1:
        raise WpgdkitError(f"{needs} (feature vectors: use mlp or linear)")
    if len(input_shape) == 3:
        raise WpgdkitError(f"{needs} (images: use small-cnn, or a wrn-* for 3×32×32 and 3×64×64)")
    if len(input_shape) != 2:
        raise WpgdkitError(needs)
    if input_shape[1] < CONV1D_MIN_LENGTH:
        raise WpgdkitError(
            f"{needs} (the first convolution spans {CONV1D_KERNELS[0]} steps; use mlp for shorter series)"
        )
    return Conv1dNet(input_shape[0], num_classes)
