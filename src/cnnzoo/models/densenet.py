"""DenseNet: Huang, Liu, van der Maaten & Weinberger (2017), "Densely Connected Convolutional
Networks".

DenseNet-BC throughout: dense blocks of bottleneck layers (BN-ReLU-conv 1×1 to 4k, BN-ReLU-conv 3×3
to k) joined by compressing transitions (θ = 0.5: BN-ReLU-conv 1×1, 2×2 average pool), then BN,
ReLU, global average pooling and one FC layer. The ImageNet networks (the paper's Table 1) start
with a 7×7/2 conv, BN, ReLU and a 3×3/2 max-pool; the CIFAR network DenseNet-BC (L=100, k=12) starts
with a single 3×3 conv of 2k maps and has three blocks of 16 layers.

Deviations:
- DenseNet-161 (k=48, 96 initial maps) is not among the paper's Table 1 architectures; its
  configuration is the one of the authors' released ImageNet models.
- Initialisation: He-normal (fan-out) conv weights as the paper cites He et al. (2015); BN weight 1
  and bias 0, FC bias 0.
- The global average pool is adaptive, where the paper's is 7×7 (ImageNet) or 8×8 (CIFAR): the same
  at the design input, and it lets other sizes through: ``input_size`` sets the side a network
  declares as its default, at least its ``min_size``.
- ``drop_rate`` (default 0, as in the paper's runs with data augmentation) puts dropout after every
  convolution of the dense layers and transitions, as the paper does for its runs without
  augmentation.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import torch
from torch import nn

from cnnzoo.layers.dense import DenseBlock, Transition
from cnnzoo.layers.initialisation import he_init_, on_meta
from cnnzoo.models.base import ModelConfig, ZooModel, check_min_side
from cnnzoo.models.registry import register_model

PAPER = 'Huang, Liu, van der Maaten & Weinberger, 2017, "Densely Connected Convolutional Networks"'


@dataclass(frozen=True)
class DenseNetSpec:
    growth_rate: int  # k
    block_config: tuple[int, ...]  # bottleneck layers per dense block
    num_init_features: int  # maps out of the stem
    cifar_stem: bool = False  # one 3×3 conv instead of 7×7/2 conv + BN + ReLU + 3×3/2 max-pool
    bn_size: int = 4  # the bottleneck is bn_size·k wide
    compression: float = 0.5  # θ
    # Smallest side: three 2×2/2 transitions need a 8-px map after the stem, so the 3×3/2 max-pool
    # needs 15 px and the 7×7/2 conv 29 px. The CIFAR stem keeps the size and two transitions need 4
    # px.
    min_size: int = 29


#                       growth  block config       initial maps
DENSENET_TABLE: dict[str, DenseNetSpec] = {
    "densenet121": DenseNetSpec(32, (6, 12, 24, 16), 64),
    "densenet161": DenseNetSpec(48, (6, 12, 36, 24), 96),
    "densenet169": DenseNetSpec(32, (6, 12, 32, 32), 64),
    "densenet201": DenseNetSpec(32, (6, 12, 48, 32), 64),
    # L = 100 = 3 blocks · 16 layers · 2 convs + stem conv + 2 transition convs + FC; 2k initial
    # maps.
    "densenet_bc_100_k12": DenseNetSpec(12, (16, 16, 16), 24, cifar_stem=True, min_size=4),
    # Not in the paper's tables: the bottleneck-compression form of its smallest depth (L = 40, 6
    # layers per block), a DenseNet-BC that trains on a CPU in minutes.
    "densenet_bc_40_k12": DenseNetSpec(12, (6, 6, 6), 24, cifar_stem=True, min_size=4),
}


def build_stem(spec: DenseNetSpec, in_channels: int) -> OrderedDict[str, nn.Module]:
    init = spec.num_init_features
    if spec.cifar_stem:
        # Pre-activation: the first dense layer's own BN-ReLU follows, so the paper has none here.
        return OrderedDict(conv0=nn.Conv2d(in_channels, init, 3, padding=1, bias=False))
    return OrderedDict(
        conv0=nn.Conv2d(in_channels, init, 7, stride=2, padding=3, bias=False),
        norm0=nn.BatchNorm2d(init),
        relu0=nn.ReLU(inplace=True),
        pool0=nn.MaxPool2d(3, stride=2, padding=1),
    )


class DenseNet(ZooModel):
    """Stem, dense blocks with transitions between them, final BN-ReLU; head: pool, flatten, FC."""

    def __init__(self, *, cfg: ModelConfig, spec: DenseNetSpec, drop_rate: float = 0.0) -> None:
        super().__init__()
        self.cfg = cfg
        layers = build_stem(spec, cfg.input_size[0])
        channels = spec.num_init_features
        for i, num_layers in enumerate(spec.block_config, start=1):
            block = DenseBlock(num_layers, channels, spec.growth_rate, spec.bn_size, drop_rate)
            layers[f"denseblock{i}"] = block
            channels = block.out_channels
            if i < len(spec.block_config):
                transition = Transition(channels, int(channels * spec.compression), drop_rate)
                layers[f"transition{i}"] = transition
                channels = transition.out_channels
        # The blocks end on a conv (pre-activation), so the map is normalised and rectified once
        # more.
        layers["norm_final"] = nn.BatchNorm2d(channels)
        layers["relu_final"] = nn.ReLU(inplace=True)
        self.features = nn.Sequential(layers)
        self.classifier = nn.Sequential(OrderedDict(
            pool=nn.AdaptiveAvgPool2d(1),
            flatten=nn.Flatten(),
            fc=nn.Linear(channels, cfg.num_classes),
        ))
        self._init_weights()

    def _init_weights(self) -> None:
        if on_meta(self):
            return
        he_init_(self)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.zeros_(m.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        # densenet121 at 224: stem (N, 64, 56, 56); block1 (N, 256, 56, 56), transition1 (N, 128,
        # 28, 28); block2 (N, 512, 28, 28), transition2 (N, 256, 14, 14); block3 (N, 1024, 14, 14),
        # transition3 (N, 512, 7, 7); block4 (N, 1024, 7, 7). densenet_bc_100_k12 at 32: stem (N,
        # 24, 32, 32); block1 (N, 216, 32, 32), transition1 (N, 108, 16, 16); block2 (N, 300, 16,
        # 16), transition2 (N, 150, 8, 8); block3 (N, 342, 8, 8).
        return self.features(x)


def _densenet(name: str, num_classes: int, in_channels: int, input_size: int,
              drop_rate: float) -> DenseNet:
    spec = DENSENET_TABLE[name]
    small_variant = None if spec.cifar_stem else "densenet_bc_100_k12"
    check_min_side(name, input_size, spec.min_size, small_variant)
    cfg = ModelConfig(name, (in_channels, input_size, input_size), num_classes,
                      min_size=spec.min_size, small_variant=small_variant, paper=PAPER)
    return DenseNet(cfg=cfg, spec=spec, drop_rate=drop_rate)


@register_model
def densenet121(*, num_classes: int = 1000, in_channels: int = 3, input_size: int = 224,
                drop_rate: float = 0.0) -> DenseNet:
    """DenseNet-BC-121 (k=32, blocks 6-12-24-16) for 224 px images."""
    return _densenet("densenet121", num_classes, in_channels, input_size, drop_rate)


@register_model
def densenet161(*, num_classes: int = 1000, in_channels: int = 3, input_size: int = 224,
                drop_rate: float = 0.0) -> DenseNet:
    """DenseNet-BC-161 (k=48, blocks 6-12-36-24, 96 initial maps) for 224 px images."""
    return _densenet("densenet161", num_classes, in_channels, input_size, drop_rate)


@register_model
def densenet169(*, num_classes: int = 1000, in_channels: int = 3, input_size: int = 224,
                drop_rate: float = 0.0) -> DenseNet:
    """DenseNet-BC-169 (k=32, blocks 6-12-32-32) for 224 px images."""
    return _densenet("densenet169", num_classes, in_channels, input_size, drop_rate)


@register_model
def densenet201(*, num_classes: int = 1000, in_channels: int = 3, input_size: int = 224,
                drop_rate: float = 0.0) -> DenseNet:
    """DenseNet-BC-201 (k=32, blocks 6-12-48-32) for 224 px images."""
    return _densenet("densenet201", num_classes, in_channels, input_size, drop_rate)


@register_model
def densenet_bc_40_k12(*, num_classes: int = 10, in_channels: int = 3, input_size: int = 32,
                       drop_rate: float = 0.0) -> DenseNet:
    """DenseNet-BC, L=40, k=12 (three blocks of 6 layers), 32 px: CPU-sized, not the paper's."""
    return _densenet("densenet_bc_40_k12", num_classes, in_channels, input_size, drop_rate)


@register_model
def densenet_bc_100_k12(*, num_classes: int = 10, in_channels: int = 3, input_size: int = 32,
                        drop_rate: float = 0.0) -> DenseNet:
    """CIFAR DenseNet-BC, L=100, k=12: a 3×3 stem of 24 maps, three blocks of 16 layers, 32 px."""
    return _densenet("densenet_bc_100_k12", num_classes, in_channels, input_size, drop_rate)
