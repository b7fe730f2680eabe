"""LeNet-5: LeCun, Bottou, Bengio & Haffner, "Gradient-based learning applied to document
recognition", Proc. IEEE 86(11), 1998 — and the modern variant every course teaches.

``lenet5_1998`` follows the paper: 32×32 input, C1 5×5 conv to 6 maps, S2 trainable subsampling, C3
with the partial connection table of Table I, S4, C5 a 5×5 conv to 120 maps (1×1 at 32×32 input), F6
with 84 units, the squashing function 1.7159·tanh(2a/3) after every layer up to F6, and Euclidean
RBF outputs against fixed ±1 7×12 bitmaps. Its ``forward`` returns class scores = −penalties, so
argmax and softmax read it like any other classifier; cross-entropy on these scores is the paper's
MAP criterion without the constant "rubbish class" term, and ``model.penalties(x)`` /
``cnnzoo.layers.lenet1998.map_loss`` give the paper's form. Deviations:
- The 7×12 output bitmaps are our own drawings of the ten digits (the paper prints its set in Fig.
  3).
- The squashing after S2/S4 is the same scaled tanh the paper uses everywhere (it says "sigmoidal
  function").
- Training uses whatever optimiser the engine is given, not the paper's stochastic diagonal
  Levenberg-Marquardt.

``lenet5`` is the modern variant (ReLU, max-pooling, full C3, a linear softmax head); it takes 28×28
input by padding the first convolution by 2 (as the paper padded MNIST to 32×32) and 32×32 input
without padding. ``lenet5_bn`` adds BatchNorm after every convolution and hidden linear layer (Ioffe
& Szegedy, 2015).

All three flatten a feature map into their first FC layer: ``lenet5`` and ``lenet5_bn`` size it for
``input_size`` (12 px at least); ``lenet5_1998`` is the paper's network and takes 32 only.
"""

from __future__ import annotations

import torch
from torch import nn

from cnnzoo.errors import ConfigError
from cnnzoo.layers.lenet1998 import (
    C3_CONNECTION_TABLE,
    EuclideanRBF,
    PartialConv2d,
    ScaledTanh,
    Subsampling2d,
    digit_prototypes,
    lecun_uniform_,
)
from cnnzoo.layers.output_size import conv_output_size
from cnnzoo.models.base import ModelConfig, ZooModel, check_fixed_side, check_min_side
from cnnzoo.models.registry import register_model

PAPER = "LeCun, Bottou, Bengio & Haffner, 1998"


class LeNet5_1998(ZooModel):
    """LeNet-5 as published, for 32×32 single-channel images and 10 classes."""

    def __init__(self, *, num_classes: int = 10, in_channels: int = 1,
                 input_size: int = 32) -> None:
        super().__init__()
        if (num_classes, in_channels) != (10, 1):
            raise ConfigError(
                "lenet5_1998 is the paper's network: 1 input channel and 10 classes (its RBF "
                f"prototypes are the ten digits); got in_channels={in_channels}, "
                f"num_classes={num_classes}. Use lenet5 for other shapes."
            )
        check_fixed_side("lenet5_1998", input_size, 32, "lenet5")
        self.cfg = ModelConfig("lenet5_1998", (1, 32, 32), 10, min_size=32, fixed_size=True,
                               resizable=False,
                               mean=(0.0,), std=(1.0,), small_variant="lenet5", paper=PAPER)
        self.c1 = nn.Sequential(nn.Conv2d(1, 6, 5), ScaledTanh())
        self.s2 = nn.Sequential(Subsampling2d(6), ScaledTanh())
        self.c3 = nn.Sequential(PartialConv2d(6, C3_CONNECTION_TABLE, 5), ScaledTanh())
        self.s4 = nn.Sequential(Subsampling2d(16), ScaledTanh())
        self.c5 = nn.Sequential(nn.Conv2d(16, 120, 5), ScaledTanh())
        self.f6 = nn.Sequential(nn.Flatten(), nn.Linear(120, 84), ScaledTanh())
        self.output = EuclideanRBF(digit_prototypes())
        self.apply(lecun_uniform_)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.c1(x)  # (N, 6, 28, 28)
        x = self.s2(x)  # (N, 6, 14, 14)
        x = self.c3(x)  # (N, 16, 10, 10)
        x = self.s4(x)  # (N, 16, 5, 5)
        return self.c5(x)  # (N, 120, 1, 1)

    def penalties(self, x: torch.Tensor) -> torch.Tensor:
        """The RBF outputs as the paper defines them: (N, 10) squared distances, smaller is
        likelier."""
        return self.output(self.f6(self.forward_features(x)))

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        return -self.output(self.f6(x))  # (N, 120, 1, 1) -> (N, 84) -> (N, 10) scores


class LeNet5(ZooModel):
    """The modern LeNet-5: ReLU, max-pooling, every C3 map connected to every S2 map, a softmax
    head."""

    def __init__(self, *, num_classes: int, in_channels: int, input_size: int,
                 batch_norm: bool) -> None:
        super().__init__()
        name = "lenet5_bn" if batch_norm else "lenet5"
        check_min_side(name, input_size, 12)  # 12 -> C1 (padded) 12 -> pool 6 -> C3 2 -> pool 1
        padding = 2 if input_size < 32 else 0  # 28×28 digits padded to the paper's 32×32 field
        # C1 then a 2×2 pool
        side = conv_output_size(conv_output_size(input_size, 5, padding=padding), 2, 2)
        side = conv_output_size(conv_output_size(side, 5), 2, 2)  # C3 then a 2×2 pool
        self.cfg = ModelConfig(name, (in_channels, input_size, input_size), num_classes,
                               min_size=12, fixed_size=True, paper=PAPER)

        def conv(cin: int, cout: int, pad: int) -> list[nn.Module]:
            return [nn.Conv2d(cin, cout, 5, padding=pad, bias=not batch_norm),
                    *([nn.BatchNorm2d(cout)] if batch_norm else []), nn.ReLU(inplace=True)]

        def linear(cin: int, cout: int) -> list[nn.Module]:
            return [nn.Linear(cin, cout, bias=not batch_norm),
                    *([nn.BatchNorm1d(cout)] if batch_norm else []), nn.ReLU(inplace=True)]

        self.features = nn.Sequential(*conv(in_channels, 6, padding), nn.MaxPool2d(2),
                                      *conv(6, 16, 0), nn.MaxPool2d(2))
        self.classifier = nn.Sequential(nn.Flatten(), *linear(16 * side * side, 120),
                                        *linear(120, 84), nn.Linear(84, num_classes))

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)  # (N, C, 28, 28) -> (N, 16, 5, 5)


@register_model
def lenet5_1998(
    *, num_classes: int = 10, in_channels: int = 1, input_size: int = 32
) -> LeNet5_1998:
    """LeNet-5 as published in 1998 (32×32 grey input, 10 digit classes, RBF output)."""
    return LeNet5_1998(num_classes=num_classes, in_channels=in_channels, input_size=input_size)


@register_model
def lenet5(*, num_classes: int = 10, in_channels: int = 1, input_size: int = 28) -> LeNet5:
    """Modern LeNet-5 (ReLU, max-pool) for 28×28 or 32×32 images."""
    return LeNet5(num_classes=num_classes, in_channels=in_channels, input_size=input_size,
                  batch_norm=False)


@register_model
def lenet5_bn(*, num_classes: int = 10, in_channels: int = 1, input_size: int = 28) -> LeNet5:
    """Modern LeNet-5 with BatchNorm after each convolution and hidden linear layer."""
    return LeNet5(num_classes=num_classes, in_channels=in_channels, input_size=input_size,
                  batch_norm=True)
