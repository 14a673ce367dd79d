"""Wide Residual Networks (Zagoruyko & Komodakis, BMVC 2016) for CIFAR-sized images.

The paper's W-16-10, W-28-10 and W-40-10 are registered as ``wrn-16-10``,
``wrn-28-10`` and ``wrn-40-10``; one builder reads depth and width from the
name. The architecture is the CIFAR WRN used throughout adversarial training
(TRADES, MART, AWP, ...), with dropout 0:

- ``conv3x3(C, 16)``;
- three groups of ``n = (depth - 4) / 6`` pre-activation basic blocks
  (BN-ReLU-conv3x3-BN-ReLU-conv3x3) of widths ``16k, 32k, 64k`` and strides
  1, 2, 2, with a 1×1 convolution on the shortcut where the shape changes;
- BN-ReLU, global average pooling, ``Linear(64k, K)``.

Inputs are 3×32×32 (CIFAR) or 3×64×64 (Tiny-ImageNet). A 64×64 input leaves
16×16 feature maps instead of 8×8 before the global average pool, so the same
network and parameter count serve both; this is how adversarial-training
papers run WRNs on Tiny-ImageNet, at four times the compute per image.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from wpgdkit.errors import WpgdkitError

# The names, input shapes and name parser: registered without torch in wpgdkit.models.builtin.
from wpgdkit.models.builtin import WRN_INPUT_SHAPES, WRN_NAMES, parse_wrn_name

__all__ = ["WRN_INPUT_SHAPES", "WRN_NAMES", "BasicBlock", "WideResNet", "build_wide_resnet", "parse_wrn_name"]


def _conv3x3(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride, padding=1, bias=False)


class BasicBlock(nn.Module):
    """Pre-activation block: BN-ReLU-conv3x3-BN-ReLU-(dropout)-conv3x3, plus shortcut.

    Parameters
    ----------
    in_planes, out_planes : int
        Channels in and out.
    stride : int
        Stride of the first convolution (and of the projection shortcut).
    dropout : float, keyword-only, default=0.0
        Dropout probability between the two convolutions.

    Notes
    -----
    Where the shape changes, the 1×1 projection shortcut is applied to the
    pre-activated input ``relu(bn1(x))``, as in the reference implementation;
    otherwise the shortcut is the identity on ``x``.
    """

    def __init__(self, in_planes: int, out_planes: int, stride: int, *, dropout: float = 0.0) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = _conv3x3(in_planes, out_planes, stride)
        self.bn2 = nn.BatchNorm2d(out_planes)
        self.conv2 = _conv3x3(out_planes, out_planes)
        self.dropout = dropout
        self.shortcut = (
            nn.Conv2d(in_planes, out_planes, kernel_size=1, stride=stride, bias=False)
            if in_planes != out_planes or stride != 1
            else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, in_planes, H, W)`` -> ``(N, out_planes, H / stride, W / stride)``."""
        # In-place ReLU on BN outputs is safe (they are fresh tensors) and
        # saves one activation per layer, which matters for WRN-28-10 under PGD.
        out = F.relu(self.bn1(x), inplace=True)
        shortcut = x if self.shortcut is None else self.shortcut(out)
        out = self.conv1(out)
        out = F.relu(self.bn2(out), inplace=True)
        if self.dropout > 0:
            out = F.dropout(out, p=self.dropout, training=self.training)
        return self.conv2(out) + shortcut


class WideResNet(nn.Module):
    """WRN-depth-width for CIFAR-sized images.

    Parameters
    ----------
    depth : int
        Total depth ``6n + 4``: ``n`` blocks per group.
    width : int
        Widening factor ``k``: group widths ``16k, 32k, 64k``.
    num_classes : int, keyword-only
        Number of classes ``K``.
    in_channels : int, keyword-only, default=3
        Channels ``C`` of the input.
    dropout : float, keyword-only, default=0.0
        Dropout probability inside each block (0 in the paper's models).
    """

    def __init__(self, depth: int, width: int, *, num_classes: int, in_channels: int = 3, dropout: float = 0.0) -> None:
        super().__init__()
        if depth < 10 or (depth - 4) % 6:
            raise WpgdkitError(f"a Wide ResNet's depth must be 6n + 4 with n >= 1, got {depth}")
        blocks = (depth - 4) // 6
        widths = (16, 16 * width, 32 * width, 64 * width)
        self.depth, self.width = depth, width
        self.conv1 = _conv3x3(in_channels, widths[0])
        self.block1 = self._group(widths[0], widths[1], blocks, stride=1, dropout=dropout)
        self.block2 = self._group(widths[1], widths[2], blocks, stride=2, dropout=dropout)
        self.block3 = self._group(widths[2], widths[3], blocks, stride=2, dropout=dropout)
        self.bn = nn.BatchNorm2d(widths[3])
        self.fc = nn.Linear(widths[3], num_classes)
        self._init_weights()

    @staticmethod
    def _group(in_planes: int, out_planes: int, blocks: int, *, stride: int, dropout: float) -> nn.Sequential:
        return nn.Sequential(
            *(
                BasicBlock(in_planes if i == 0 else out_planes, out_planes, stride if i == 0 else 1, dropout=dropout)
                for i in range(blocks)
            )
        )

    def _init_weights(self) -> None:
        # The reference initialisation: He-normal over fan-out for convolutions,
        # identity batch norms, zero linear bias (weights keep PyTorch's default).
        if self.fc.weight.is_meta:
            # Meta tensors hold no values to initialise, and PyTorch's first
            # normal_ on the meta device costs about 2 s of lazy set-up.
            return
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Linear):
                nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, C, H, W)`` -> logits ``(N, K)``."""
        out = self.conv1(x)
        out = self.block3(self.block2(self.block1(out)))
        out = F.relu(self.bn(out), inplace=True)
        out = F.adaptive_avg_pool2d(out, 1).flatten(1)
        return self.fc(out)


def build_wide_resnet(name: str, *, num_classes: int, input_shape: tuple[int, ...]) -> WideResNet:
    """The Wide ResNet named ``wrn-{depth}-{width}``, dropout 0.

    Raises
    ------
    WpgdkitError
        For a malformed name or an input shape outside :data:`WRN_INPUT_SHAPES`.
    """
    depth, width = parse_wrn_name(name)
    if tuple(input_shape) not in WRN_INPUT_SHAPES:
        supported = " or ".join("×".join(map(str, s)) for s in WRN_INPUT_SHAPES)
        raise WpgdkitError(f"model {name!r} supports inputs of shape {supported}; got {'×'.join(map(str, input_shape))}")
    return WideResNet(depth, width, num_classes=num_classes, in_channels=input_shape[0])
