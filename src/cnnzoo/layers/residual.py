"""Residual blocks (He, Zhang, Ren & Sun, "Deep residual learning for image recognition", CVPR
2016).

A block learns a residual F(x) and adds it to a shortcut of its input: y = relu(F(x) + shortcut(x)).
Where the block changes width or resolution the shortcut must change too; the paper offers
- option A: take every other pixel and pad the new channels with zeros (no parameters; its CIFAR
  nets), and
- option B: a 1×1 convolution with stride and BatchNorm, a "projection" (its ImageNet nets).
With ``shortcut=None`` the block is a plain stack of the same layers, for the degradation
experiment.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

Shortcut = Literal["A", "B"] | None


class ZeroPadShortcut(nn.Module):
    """Option A: subsample by ``stride`` and zero-pad the channels up to ``out_channels``; no
    parameters."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.extra_channels = out_channels - in_channels
        # kernel/stride attributes let the inspector compute receptive fields through this layer
        self.kernel_size, self.stride = 1, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x[:, :, :: self.stride, :: self.stride]
        return F.pad(x, (0, 0, 0, 0, 0, self.extra_channels))  # zeros after the existing channels


def projection_shortcut(in_channels: int, out_channels: int, stride: int) -> nn.Sequential:
    """Option B: a strided 1×1 convolution and BatchNorm."""
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                         nn.BatchNorm2d(out_channels))


def make_shortcut(
    kind: Shortcut, in_channels: int, out_channels: int, stride: int
) -> nn.Module | None:
    if kind is None:
        return None
    if stride == 1 and in_channels == out_channels:
        return nn.Identity()
    if kind == "A":
        return ZeroPadShortcut(in_channels, out_channels, stride)
    return projection_shortcut(in_channels, out_channels, stride)


def conv_bn(in_channels: int, out_channels: int, kernel: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, kernel, stride=stride,
                                   padding=kernel // 2, bias=False), nn.BatchNorm2d(out_channels))


class BasicBlock(nn.Module):
    """Two 3×3 convolutions (ResNet-18/34 and the CIFAR nets)."""

    expansion = 1

    def __init__(self, in_channels: int, width: int, stride: int = 1,
                 shortcut: Shortcut = "B") -> None:
        super().__init__()
        self.conv1 = conv_bn(in_channels, width, 3, stride)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv2 = conv_bn(width, width, 3)
        self.shortcut = make_shortcut(shortcut, in_channels, width, stride)
        self.relu2 = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv2(self.relu1(self.conv1(x)))  # (N, width, H/stride, W/stride)
        if self.shortcut is not None:
            out = out + self.shortcut(x)
        return self.relu2(out)


class Bottleneck(nn.Module):
    """1×1 reduce, 3×3, 1×1 expand ×4 (ResNet-50/101/152). The stride sits on the 3×3 convolution,
    as in torchvision's "ResNet v1.5"; the paper puts it on the first 1×1 (same parameters, better
    accuracy)."""

    expansion = 4

    def __init__(self, in_channels: int, width: int, stride: int = 1,
                 shortcut: Shortcut = "B") -> None:
        super().__init__()
        out_channels = width * self.expansion
        self.conv1 = conv_bn(in_channels, width, 1)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv2 = conv_bn(width, width, 3, stride)
        self.relu2 = nn.ReLU(inplace=True)
        self.conv3 = conv_bn(width, out_channels, 1)
        self.shortcut = make_shortcut(shortcut, in_channels, out_channels, stride)
        self.relu3 = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu1(self.conv1(x))  # (N, width, H, W): the cheap 1×1 reduction
        out = self.relu2(self.conv2(out))  # (N, width, H/stride, W/stride)
        out = self.conv3(out)  # (N, 4·width, H/stride, W/stride)
        if self.shortcut is not None:
            out = out + self.shortcut(x)
        return self.relu3(out)


def zero_init_last_bn(block: nn.Module) -> None:
    """Start each residual branch at zero (Goyal et al., 2017), so a deep net begins as a shallow
    one."""
    last = block.conv3 if isinstance(block, Bottleneck) else block.conv2
    nn.init.zeros_(last[1].weight)
