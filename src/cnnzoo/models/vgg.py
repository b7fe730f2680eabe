"""VGG: Simonyan & Zisserman, "Very deep convolutional networks for large-scale image recognition",
ICLR 2015.

Stacks of 3×3 convolutions (padding 1) separated by 2×2 max-pools, configurations A (VGG-11), B
(13), D (16) and E (19) of the paper's Table 1, then a 4096-4096-classes head with dropout 0.5. The
``_bn`` versions add BatchNorm after every convolution (Ioffe & Szegedy, 2015), which the paper
predates. Deviations:
- An adaptive average pool to 7×7 before the head, so the network accepts any input of at least
  32×32 (at 224×224 it is the identity, and the parameter counts match the paper's head).
- Kaiming-normal initialisation rather than the paper's scheme of initialising deeper nets from a
  trained configuration A.

``vgg16_bn_small`` is the CIFAR-style VGG-16 with BatchNorm of our notes: configuration D and a
512-wide head (512-512-classes with dropout). Deviation: the fifth max-pool is a global average
pool, so 28×28 images (which four 2×2 pools reduce to 1×1) fit as well as 32×32 ones. Its ``width``
option scales every layer's channel count (the head's too), for CPU budgets; the depth and layout
stay configuration D's.

``input_size`` sets the side a network declares as its default; the head does not depend on it. The
smallest side is 2 to the number of 2×2 pools: 32 for the paper's networks, 16 for
``vgg16_bn_small``.
"""

from __future__ import annotations

import torch
from torch import nn

from cnnzoo.errors import ConfigError
from cnnzoo.layers.initialisation import he_init_, on_meta
from cnnzoo.models.base import ModelConfig, ZooModel, check_min_side
from cnnzoo.models.registry import register_model

PAPER = "Simonyan & Zisserman, 2015"

# Table 1 of the paper: conv widths, "M" for a 2×2 max-pool. A is VGG-11, B VGG-13, D VGG-16, E
# VGG-19.
VGG_CONFIGS: dict[str, list[int | str]] = {
    "A": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "B": [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "D": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
    "E": [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512,
          512, 512, "M"],
}


def make_vgg_features(config: list[int | str], in_channels: int, batch_norm: bool) -> nn.Sequential:
    layers: list[nn.Module] = []
    channels = in_channels
    for item in config:
        if item == "M":
            layers.append(nn.MaxPool2d(2, 2))
            continue
        layers.append(nn.Conv2d(channels, item, 3, padding=1))
        if batch_norm:
            layers.append(nn.BatchNorm2d(item))
        layers.append(nn.ReLU(inplace=True))
        channels = item
    return nn.Sequential(*layers)


def _init_weights(model: nn.Module) -> None:
    if on_meta(model):
        return
    # the convolutions all come before the head, so the random draws keep their order
    he_init_(model)
    for m in model.modules():
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0, 0.01)
            nn.init.zeros_(m.bias)


class VGG(ZooModel):
    def __init__(self, *, name: str, config: list[int | str], num_classes: int, in_channels: int,
                 input_size: int, batch_norm: bool, dropout: float) -> None:
        super().__init__()
        min_size = 2 ** config.count("M")
        check_min_side(name, input_size, min_size, "vgg16_bn_small")
        self.cfg = ModelConfig(name, (in_channels, input_size, input_size), num_classes,
                               min_size=min_size, small_variant="vgg16_bn_small", paper=PAPER)
        self.features = make_vgg_features(config, in_channels, batch_norm)
        self.pool = nn.AdaptiveAvgPool2d(7)
        self.classifier = nn.Sequential(
            nn.Linear(512 * 7 * 7, 4096), nn.ReLU(inplace=True), nn.Dropout(dropout),
            nn.Linear(4096, 4096), nn.ReLU(inplace=True), nn.Dropout(dropout),
            nn.Linear(4096, num_classes),
        )
        _init_weights(self)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)  # (N, C, 224, 224) -> (N, 512, 7, 7)

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.flatten(self.pool(x), 1)  # (N, 25088)
        return self.classifier(x)


class VGGSmall(ZooModel):
    """Configuration D with BatchNorm for 28–32 px images, its last pool global, a 512-wide head."""

    def __init__(self, *, num_classes: int, in_channels: int, input_size: int, dropout: float,
                 width: float) -> None:
        super().__init__()
        if width <= 0:
            raise ConfigError("width must be a positive multiplier of VGG-16's channel counts; "
                              f"got {width}")
        # the fifth pool becomes the global average pool below; width scales every layer (64 -> 16
        # at 0.25)
        config = [
            item if item == "M" else max(1, round(item * width)) for item in VGG_CONFIGS["D"][:-1]
        ]
        min_size = 2 ** config.count("M")
        check_min_side("vgg16_bn_small", input_size, min_size)
        self.cfg = ModelConfig("vgg16_bn_small", (in_channels, input_size, input_size), num_classes,
                               min_size=min_size, paper=PAPER)
        self.features = make_vgg_features(config, in_channels, batch_norm=True)
        self.pool = nn.AdaptiveAvgPool2d(1)
        channels = config[-1]
        self.classifier = nn.Sequential(
            nn.Linear(channels, channels), nn.ReLU(inplace=True), nn.Dropout(dropout),
            nn.Linear(channels, channels), nn.ReLU(inplace=True), nn.Dropout(dropout),
            nn.Linear(channels, num_classes),
        )
        _init_weights(self)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)  # (N, C, 28, 28) -> (N, 512, 1, 1); 32×32 -> (N, 512, 2, 2)

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.pool(x), 1))  # (N, 512) -> (N, classes)


def _vgg(name: str, config: str, batch_norm: bool, num_classes: int, in_channels: int,
         input_size: int, dropout: float) -> VGG:
    return VGG(name=name, config=VGG_CONFIGS[config], num_classes=num_classes,
               in_channels=in_channels,
               input_size=input_size, batch_norm=batch_norm, dropout=dropout)


@register_model
def vgg11(*, num_classes: int = 1000, in_channels: int = 3, input_size: int = 224,
          dropout: float = 0.5) -> VGG:
    """VGG-11, configuration A."""
    return _vgg("vgg11", "A", False, num_classes, in_channels, input_size, dropout)


@register_model
def vgg11_bn(*, num_classes: int = 1000, in_channels: int = 3, input_size: int = 224,
             dropout: float = 0.5) -> VGG:
    """VGG-11, configuration A, with BatchNorm."""
    return _vgg("vgg11_bn", "A", True, num_classes, in_channels, input_size, dropout)


@register_model
def vgg13(*, num_classes: int = 1000, in_channels: int = 3, input_size: int = 224,
          dropout: float = 0.5) -> VGG:
    """VGG-13, configuration B."""
    return _vgg("vgg13", "B", False, num_classes, in_channels, input_size, dropout)


@register_model
def vgg13_bn(*, num_classes: int = 1000, in_channels: int = 3, input_size: int = 224,
             dropout: float = 0.5) -> VGG:
    """VGG-13, configuration B, with BatchNorm."""
    return _vgg("vgg13_bn", "B", True, num_classes, in_channels, input_size, dropout)


@register_model
def vgg16(*, num_classes: int = 1000, in_channels: int = 3, input_size: int = 224,
          dropout: float = 0.5) -> VGG:
    """VGG-16, configuration D."""
    return _vgg("vgg16", "D", False, num_classes, in_channels, input_size, dropout)


@register_model
def vgg16_bn(*, num_classes: int = 1000, in_channels: int = 3, input_size: int = 224,
             dropout: float = 0.5) -> VGG:
    """VGG-16, configuration D, with BatchNorm."""
    return _vgg("vgg16_bn", "D", True, num_classes, in_channels, input_size, dropout)


@register_model
def vgg19(*, num_classes: int = 1000, in_channels: int = 3, input_size: int = 224,
          dropout: float = 0.5) -> VGG:
    """VGG-19, configuration E."""
    return _vgg("vgg19", "E", False, num_classes, in_channels, input_size, dropout)


@register_model
def vgg19_bn(*, num_classes: int = 1000, in_channels: int = 3, input_size: int = 224,
             dropout: float = 0.5) -> VGG:
    """VGG-19, configuration E, with BatchNorm."""
    return _vgg("vgg19_bn", "E", True, num_classes, in_channels, input_size, dropout)


@register_model
def vgg16_bn_small(*, num_classes: int = 10, in_channels: int = 1, input_size: int = 28,
                   dropout: float = 0.5, width: float = 1.0) -> VGGSmall:
    """CIFAR-style VGG-16 with BatchNorm and a 512-wide head for 28–32 px; ``width`` scales it."""
    return VGGSmall(num_classes=num_classes, in_channels=in_channels, input_size=input_size,
                    dropout=dropout, width=width)
