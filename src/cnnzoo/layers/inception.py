"""GoogLeNet's building blocks: the Inception module and the auxiliary classifier.

Szegedy et al. (2014), "Going deeper with convolutions": an Inception module runs four branches side
by side on the same map and concatenates them along the channels: a 1×1 convolution; a 1×1 "reduce"
then a 3×3; a 1×1 "reduce" then a 5×5; a 3×3/1 max-pool then a 1×1 "pool projection". Every
convolution, reductions included, is followed by a ReLU. The 1×1 reductions are what keep the 3×3
and 5×5 branches affordable.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import torch
from torch import nn


class ConvReLU(nn.Sequential):
    """A biased convolution and its ReLU, GoogLeNet's only kind of convolution (no batch norm in
    2014)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 padding: int = 0) -> None:
        super().__init__(OrderedDict(
            conv=nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=padding),
            relu=nn.ReLU(inplace=True),
        ))


@dataclass(frozen=True)
class InceptionSpec:
    """One row of the paper's Table 1, with its column names: #1×1, #3×3 reduce, #3×3, #5×5 reduce,
    #5×5, pool proj (output channels of each convolution)."""

    n1x1: int
    n3x3_reduce: int
    n3x3: int
    n5x5_reduce: int
    n5x5: int
    pool_proj: int

    @property
    def out_channels(self) -> int:
        # Only the last layer of each branch reaches the concatenation; the reductions stay inside.
        return self.n1x1 + self.n3x3 + self.n5x5 + self.pool_proj


class Inception(nn.Module):
    """Four parallel branches, concatenated along channels; the spatial size is kept (padding
    'same')."""

    def __init__(self, in_channels: int, spec: InceptionSpec) -> None:
        super().__init__()
        self.spec = spec
        self.branch1x1 = ConvReLU(in_channels, spec.n1x1, 1)
        self.branch3x3 = nn.Sequential(OrderedDict(
            reduce=ConvReLU(in_channels, spec.n3x3_reduce, 1),
            conv=ConvReLU(spec.n3x3_reduce, spec.n3x3, 3, padding=1),
        ))
        self.branch5x5 = nn.Sequential(OrderedDict(
            reduce=ConvReLU(in_channels, spec.n5x5_reduce, 1),
            conv=ConvReLU(spec.n5x5_reduce, spec.n5x5, 5, padding=2),
        ))
        self.branch_pool = nn.Sequential(OrderedDict(
            pool=nn.MaxPool2d(3, stride=1, padding=1),
            proj=ConvReLU(in_channels, spec.pool_proj, 1),
        ))

    @property
    def out_channels(self) -> int:
        return self.spec.out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Concatenation order is the paper's figure 2 from left to right; checkpoints depend on it.
        return torch.cat([self.branch1x1(x), self.branch3x3(x), self.branch5x5(x),
                          self.branch_pool(x)], dim=1)


@dataclass(frozen=True)
class AuxHeadSpec:
    """The auxiliary classifier's pooling: a ``kernel``×``kernel``/``stride`` average pool that
    should give a ``pooled``×``pooled`` map, and the widths after it (paper: 5×5/3 → 4×4, 128 maps,
    FC 1024)."""

    kernel: int = 5
    stride: int = 3
    pooled: int = 4
    conv_channels: int = 128
    fc_features: int = 1024
    dropout: float = 0.7


class InceptionAux(nn.Module):
    """An auxiliary classifier on an intermediate map: average pool, 1×1 conv + ReLU, FC + ReLU,
    dropout, FC.

    The first FC is sized for the ``pooled``×``pooled`` map that the pool gives at the design input
    (4×4 from the 14×14 map of a 224 px image). An adaptive average pool to that size follows the
    fixed pool, so the head also takes other input sizes; where the fixed pool already gives
    ``pooled``×``pooled`` (as at 224) the adaptive pool is the identity and the head is exactly the
    paper's.
    """

    def __init__(self, in_channels: int, num_classes: int,
                 spec: AuxHeadSpec = AuxHeadSpec()) -> None:
        super().__init__()
        self.spec = spec
        self.pool = nn.AvgPool2d(spec.kernel, stride=spec.stride)
        self.resize = nn.AdaptiveAvgPool2d(spec.pooled)
        self.conv = ConvReLU(in_channels, spec.conv_channels, 1)
        self.fc1 = nn.Linear(spec.conv_channels * spec.pooled * spec.pooled, spec.fc_features)
        self.relu = nn.ReLU(inplace=True)
        self.dropout = nn.Dropout(spec.dropout)
        self.fc2 = nn.Linear(spec.fc_features, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.resize(self.pool(x))  # (N, 512, 14, 14) -> (N, 512, 4, 4) on 4a at 224
        x = self.conv(x)  # (N, 128, 4, 4)
        x = self.relu(self.fc1(torch.flatten(x, 1)))  # (N, 1024)
        return self.fc2(self.dropout(x))  # (N, num_classes)
