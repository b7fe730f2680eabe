"""DenseNet's building blocks: the bottleneck dense layer, the dense block and the transition.

Huang, Liu, van der Maaten & Weinberger (2017), "Densely Connected Convolutional Networks": inside a
dense block every layer sees the concatenation of the block input and all earlier layers' outputs,
and adds k ("growth rate") new maps of its own. Layers are pre-activation, BN-ReLU-conv. The "B"
(bottleneck) layer first reduces to 4k maps with a 1×1 conv; the "C" (compression) transition
between blocks keeps a fraction θ of the channels with a 1×1 conv and halves the map with a 2×2
average pool.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn


class DenseLayer(nn.Module):
    """BN-ReLU-conv 1×1 (bn_size·k maps), BN-ReLU-conv 3×3 (k maps); returns only the k new maps.

    ``drop_rate`` > 0 adds dropout after each conv, as the paper does for its runs without
    augmentation.
    """

    def __init__(self, in_channels: int, growth_rate: int, bn_size: int = 4,
                 drop_rate: float = 0.0) -> None:
        super().__init__()
        width = bn_size * growth_rate
        self.norm1 = nn.BatchNorm2d(in_channels)
        self.relu1 = nn.ReLU(inplace=True)
        # No conv biases: every conv output meets a batch norm (in this layer or a later one) first.
        self.conv1 = nn.Conv2d(in_channels, width, 1, bias=False)
        self.norm2 = nn.BatchNorm2d(width)
        self.relu2 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(width, growth_rate, 3, padding=1, bias=False)
        self.dropout = nn.Dropout(drop_rate)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x is the concatenation of everything before this layer; relu1 is in place only on norm1's
        # output.
        y = self.dropout(self.conv1(self.relu1(self.norm1(x))))  # (N, 4k, H, W)
        return self.dropout(self.conv2(self.relu2(self.norm2(y))))  # (N, k, H, W)


class DenseBlock(nn.Module):
    """``num_layers`` dense layers; the output is the input with every layer's k maps appended."""

    def __init__(self, num_layers: int, in_channels: int, growth_rate: int, bn_size: int = 4,
                 drop_rate: float = 0.0) -> None:
        super().__init__()
        for i in range(num_layers):
            self.add_module(f"denselayer{i + 1}",
                            DenseLayer(in_channels + i * growth_rate, growth_rate, bn_size,
                                       drop_rate))
        self.out_channels = in_channels + num_layers * growth_rate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        maps = [x]
        for layer in self.children():
            maps.append(layer(torch.cat(maps, dim=1)))  # each adds (N, k, H, W)
        return torch.cat(maps, dim=1)  # (N, C_in + L·k, H, W)


class Transition(nn.Sequential):
    """BN-ReLU-conv 1×1 to ``out_channels`` (θ·m), then a 2×2/2 average pool: half the side."""

    def __init__(self, in_channels: int, out_channels: int, drop_rate: float = 0.0) -> None:
        super().__init__(OrderedDict(
            norm=nn.BatchNorm2d(in_channels),
            relu=nn.ReLU(inplace=True),
            conv=nn.Conv2d(in_channels, out_channels, 1, bias=False),
            dropout=nn.Dropout(drop_rate),
            pool=nn.AvgPool2d(2, stride=2),
        ))
        self.out_channels = out_channels
