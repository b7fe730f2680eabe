"""ResNet: He, Zhang, Ren & Sun, "Deep residual learning for image recognition", CVPR 2016.

``resnet18 … resnet152``: the ImageNet networks of the paper's Table 1 — a 7×7/2 stem, 3×3/2
max-pool, four stages of basic or bottleneck blocks (widths 64-128-256-512, the first block of
stages 2-4 halving the resolution), global average pooling and one FC layer; projection shortcuts
(option B) where shapes change. Deviations: the bottleneck's stride sits on its 3×3 convolution
("ResNet v1.5", as torchvision; the paper strides the first 1×1); parameter counts are unchanged.

``resnet20 … resnet110``: the CIFAR-10 networks of section 4.2 — a 3×3 conv to 16 maps, three stages
of n basic blocks at 16, 32 and 64 maps (depth = 6n + 2), option A (parameter-free) shortcuts,
global average pooling, FC. ``plain20 … plain110`` are the same stacks without shortcuts, the
paper's "plain" baselines for the degradation experiment (Fig. 6).

``resnet18_small`` is ResNet-18 for 28–32 px images: the stem is a 3×3 stride-1 convolution and the
max-pool is dropped (a common CIFAR adaptation), so 28×28 inputs leave 4×4 maps for the last stage.

Every network ends in global average pooling, so ``input_size`` only sets the side it declares as
its default; any side of at least 1 px goes through. ``zero_init_residual=True`` (ImageNet networks
and ``resnet18_small``) starts the last BatchNorm scale of each residual branch at zero (Goyal et
al., 2017), so every block begins as the identity.
"""

from __future__ import annotations

import torch
from torch import nn

from cnnzoo.errors import ConfigError
from cnnzoo.layers.initialisation import he_init_, on_meta
from cnnzoo.layers.residual import BasicBlock, Bottleneck, Shortcut, zero_init_last_bn
from cnnzoo.models.base import ModelConfig, ZooModel, check_min_side
from cnnzoo.models.registry import register_model

PAPER = "He, Zhang, Ren & Sun, 2016"

# Table 1 of the paper: block type and number of blocks per stage.
IMAGENET_DEPTHS: dict[int, tuple[type[nn.Module], tuple[int, int, int, int]]] = {
    18: (BasicBlock, (2, 2, 2, 2)),
    34: (BasicBlock, (3, 4, 6, 3)),
    50: (Bottleneck, (3, 4, 6, 3)),
    101: (Bottleneck, (3, 4, 23, 3)),
    152: (Bottleneck, (3, 8, 36, 3)),
}


def make_stage(block: type[nn.Module], in_channels: int, width: int, blocks: int, stride: int,
               shortcut: Shortcut) -> tuple[nn.Sequential, int]:
    layers = []
    for index in range(blocks):
        layers.append(block(in_channels, width, stride if index == 0 else 1, shortcut))
        in_channels = width * block.expansion
    return nn.Sequential(*layers), in_channels


def _init_weights(model: nn.Module, zero_init_residual: bool) -> None:
    if on_meta(model):
        return
    he_init_(model)
    if zero_init_residual:  # after he_init_, which sets every BatchNorm scale to one
        for m in model.modules():
            if isinstance(m, (BasicBlock, Bottleneck)) and m.shortcut is not None:
                zero_init_last_bn(m)


class ResNet(ZooModel):
    """The ImageNet ResNets, and with ``small_input`` the 3×3-stem version for 28–32 px images."""

    def __init__(self, *, name: str, block: type[nn.Module], blocks: tuple[int, ...],
                 num_classes: int, in_channels: int, input_size: int, small_input: bool = False,
                 zero_init_residual: bool = False) -> None:
        super().__init__()
        small_variant = None if small_input else "resnet18_small"
        check_min_side(name, input_size, 1, small_variant)
        self.cfg = ModelConfig(name, (in_channels, input_size, input_size), num_classes, min_size=1,
                               small_variant=small_variant, paper=PAPER)
        if small_input:
            self.stem = nn.Sequential(nn.Conv2d(in_channels, 64, 3, padding=1, bias=False),
                                      nn.BatchNorm2d(64), nn.ReLU(inplace=True))
        else:
            self.stem = nn.Sequential(nn.Conv2d(in_channels, 64, 7, stride=2, padding=3,
                                                bias=False),
                                      nn.BatchNorm2d(64), nn.ReLU(inplace=True),
                                      nn.MaxPool2d(3, 2, padding=1))
        channels = 64
        self.layer1, channels = make_stage(block, channels, 64, blocks[0], 1, "B")
        self.layer2, channels = make_stage(block, channels, 128, blocks[1], 2, "B")
        self.layer3, channels = make_stage(block, channels, 256, blocks[2], 2, "B")
        self.layer4, channels = make_stage(block, channels, 512, blocks[3], 2, "B")
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(channels, num_classes)
        _init_weights(self, zero_init_residual)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)  # (N, 64, 56, 56) at 224 input; (N, 64, 28, 28) for the small stem at 28
        x = self.layer1(x)  # (N, 64·e, 56, 56)
        x = self.layer2(x)  # (N, 128·e, 28, 28)
        x = self.layer3(x)  # (N, 256·e, 14, 14)
        return self.layer4(x)  # (N, 512·e, 7, 7); e = 1 for basic blocks, 4 for bottlenecks

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.pool(x), 1))  # (N, 512·e) -> (N, classes)


class CifarResNet(ZooModel):
    """The CIFAR-10 ResNets (and plain nets) of the paper's section 4.2: depth 6n + 2, widths
    16-32-64."""

    def __init__(self, *, name: str, depth: int, num_classes: int, in_channels: int,
                 input_size: int, residual: bool) -> None:
        super().__init__()
        if (depth - 2) % 6:
            raise ConfigError("CIFAR ResNet depth must be 6n + 2 (20, 32, 44, 56, 110…); got "
                              f"{depth}")
        check_min_side(name, input_size, 1)
        n = (depth - 2) // 6
        self.cfg = ModelConfig(name, (in_channels, input_size, input_size), num_classes,
                               min_size=1, paper=PAPER)
        shortcut: Shortcut = "A" if residual else None
        self.stem = nn.Sequential(nn.Conv2d(in_channels, 16, 3, padding=1, bias=False),
                                  nn.BatchNorm2d(16), nn.ReLU(inplace=True))
        self.layer1, channels = make_stage(BasicBlock, 16, 16, n, 1, shortcut)
        self.layer2, channels = make_stage(BasicBlock, channels, 32, n, 2, shortcut)
        self.layer3, channels = make_stage(BasicBlock, channels, 64, n, 2, shortcut)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(channels, num_classes)
        _init_weights(self, zero_init_residual=False)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)  # (N, 16, 32, 32)
        x = self.layer1(x)  # (N, 16, 32, 32)
        x = self.layer2(x)  # (N, 32, 16, 16)
        return self.layer3(x)  # (N, 64, 8, 8)

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.pool(x), 1))  # (N, 64) -> (N, classes)


def _resnet(depth: int, num_classes: int, in_channels: int, input_size: int,
            zero_init_residual: bool, small_input: bool = False) -> ResNet:
    block, blocks = IMAGENET_DEPTHS[depth]
    name = f"resnet{depth}" + ("_small" if small_input else "")
    return ResNet(name=name, block=block, blocks=blocks, num_classes=num_classes,
                  in_channels=in_channels,
                  input_size=input_size, small_input=small_input,
                  zero_init_residual=zero_init_residual)


def _cifar_resnet(
    depth: int, num_classes: int, in_channels: int, input_size: int, residual: bool
) -> CifarResNet:
    name = f"{'resnet' if residual else 'plain'}{depth}"
    return CifarResNet(name=name, depth=depth, num_classes=num_classes, in_channels=in_channels,
                       input_size=input_size, residual=residual)


# ---- ImageNet (Table 1) --------------------------------------------------------------------------


@register_model
def resnet18(*, num_classes: int = 1000, in_channels: int = 3, input_size: int = 224,
             zero_init_residual: bool = False) -> ResNet:
    """ResNet-18: basic blocks, 2-2-2-2."""
    return _resnet(18, num_classes, in_channels, input_size, zero_init_residual)


@register_model
def resnet34(*, num_classes: int = 1000, in_channels: int = 3, input_size: int = 224,
             zero_init_residual: bool = False) -> ResNet:
    """ResNet-34: basic blocks, 3-4-6-3."""
    return _resnet(34, num_classes, in_channels, input_size, zero_init_residual)


@register_model
def resnet50(*, num_classes: int = 1000, in_channels: int = 3, input_size: int = 224,
             zero_init_residual: bool = False) -> ResNet:
    """ResNet-50: bottleneck blocks, 3-4-6-3."""
    return _resnet(50, num_classes, in_channels, input_size, zero_init_residual)


@register_model
def resnet101(*, num_classes: int = 1000, in_channels: int = 3, input_size: int = 224,
              zero_init_residual: bool = False) -> ResNet:
    """ResNet-101: bottleneck blocks, 3-4-23-3."""
    return _resnet(101, num_classes, in_channels, input_size, zero_init_residual)


@register_model
def resnet152(*, num_classes: int = 1000, in_channels: int = 3, input_size: int = 224,
              zero_init_residual: bool = False) -> ResNet:
    """ResNet-152: bottleneck blocks, 3-8-36-3."""
    return _resnet(152, num_classes, in_channels, input_size, zero_init_residual)


@register_model
def resnet18_small(*, num_classes: int = 10, in_channels: int = 1, input_size: int = 28,
                   zero_init_residual: bool = False) -> ResNet:
    """ResNet-18 with a 3×3 stride-1 stem and no max-pool, for 28–32 px images."""
    return _resnet(18, num_classes, in_channels, input_size, zero_init_residual, small_input=True)


# ---- CIFAR-10 (section 4.2): option A shortcuts, and the plain nets without them -----------------


@register_model
def resnet20(*, num_classes: int = 10, in_channels: int = 3, input_size: int = 32) -> CifarResNet:
    """CIFAR ResNet-20: 3 stages of 3 basic blocks at 16-32-64 maps, option A shortcuts."""
    return _cifar_resnet(20, num_classes, in_channels, input_size, residual=True)


@register_model
def resnet32(*, num_classes: int = 10, in_channels: int = 3, input_size: int = 32) -> CifarResNet:
    """CIFAR ResNet-32: 3 stages of 5 basic blocks at 16-32-64 maps, option A shortcuts."""
    return _cifar_resnet(32, num_classes, in_channels, input_size, residual=True)


@register_model
def resnet44(*, num_classes: int = 10, in_channels: int = 3, input_size: int = 32) -> CifarResNet:
    """CIFAR ResNet-44: 3 stages of 7 basic blocks at 16-32-64 maps, option A shortcuts."""
    return _cifar_resnet(44, num_classes, in_channels, input_size, residual=True)


@register_model
def resnet56(*, num_classes: int = 10, in_channels: int = 3, input_size: int = 32) -> CifarResNet:
    """CIFAR ResNet-56: 3 stages of 9 basic blocks at 16-32-64 maps, option A shortcuts."""
    return _cifar_resnet(56, num_classes, in_channels, input_size, residual=True)


@register_model
def resnet110(*, num_classes: int = 10, in_channels: int = 3, input_size: int = 32) -> CifarResNet:
    """CIFAR ResNet-110: 3 stages of 18 basic blocks at 16-32-64 maps, option A shortcuts."""
    return _cifar_resnet(110, num_classes, in_channels, input_size, residual=True)


@register_model
def plain20(*, num_classes: int = 10, in_channels: int = 3, input_size: int = 32) -> CifarResNet:
    """CIFAR plain net, depth 20: ResNet-20 without its shortcuts."""
    return _cifar_resnet(20, num_classes, in_channels, input_size, residual=False)


@register_model
def plain32(*, num_classes: int = 10, in_channels: int = 3, input_size: int = 32) -> CifarResNet:
    """CIFAR plain net, depth 32: ResNet-32 without its shortcuts."""
    return _cifar_resnet(32, num_classes, in_channels, input_size, residual=False)


@register_model
def plain44(*, num_classes: int = 10, in_channels: int = 3, input_size: int = 32) -> CifarResNet:
    """CIFAR plain net, depth 44: ResNet-44 without its shortcuts."""
    return _cifar_resnet(44, num_classes, in_channels, input_size, residual=False)


@register_model
def plain56(*, num_classes: int = 10, in_channels: int = 3, input_size: int = 32) -> CifarResNet:
    """CIFAR plain net, depth 56: ResNet-56 without its shortcuts."""
    return _cifar_resnet(56, num_classes, in_channels, input_size, residual=False)


@register_model
def plain110(*, num_classes: int = 10, in_channels: int = 3, input_size: int = 32) -> CifarResNet:
    """CIFAR plain net, depth 110: ResNet-110 without its shortcuts."""
    return _cifar_resnet(110, num_classes, in_channels, input_size, residual=False)
