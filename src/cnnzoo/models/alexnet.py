"""AlexNet: Krizhevsky, Sutskever & Hinton, "ImageNet classification with deep convolutional neural
networks", NeurIPS 2012.

``alexnet_2012`` is the paper's network: 227×227×3 input (the paper writes 224, but 11×11/4
convolutions only give its 55×55 maps from 227), conv1 96@11×11/4, local response normalisation (k =
2, n = 5, α = 1e-4, β = 0.75), overlapping max-pooling 3×3/2, conv2 256@5×5, LRN, pool, conv3
384@3×3, conv4 384@3×3, conv5 256@3×3, pool, then fc6 4096 and fc7 4096, each followed by dropout
0.5 (section 4.2 drops the outputs of the hidden neurons of these two layers; torchvision puts the
dropouts before fc6 and fc7 instead), and fc8. The two GPU towers are kept as convolution groups:
conv2, conv4 and conv5 see only their own tower's maps (groups=2), conv3 sees both. Initialisation
as in section 5: weights N(0, 0.01), biases 1 in conv2, conv4, conv5 and the hidden FC layers (to
give ReLUs positive inputs early), 0 elsewhere. Deviations:
- conv1 and the FC layers are single layers; the paper splits them across the two GPUs, but every
  one of their units sees the full input, so the function and the 60,965,224 parameters are the
  same.

``alexnet`` is the simplified single-tower version of the d2l book that our notes follow
(96-256-384-384-256, no LRN, 224×224 input); with 1 channel and 10 classes it has 46,764,746
parameters.

``alexnet_small`` keeps the paper's topology — five convolutions, three FC layers, ReLU, LRN after
the first two convolutions, overlapping 3×3/2 pooling, dropout on the outputs of fc6 and fc7 — at
widths and kernel sizes that suit 28–32 px images. Deviations: 3×3/5×5 kernels and stride 1 in place
of 11×11/4, narrower layers, and He-normal convolutions with zero biases (He et al., 2015) in place
of N(0, 0.01) and unit biases. Its ``lrn=False`` and ``overlapping_pool=False`` (2×2/2 pools) switch
off two of the paper's choices, for the experiments that re-check what each contributed.

The heads of all three flatten a feature map into an FC layer. ``alexnet`` and ``alexnet_small``
size that layer for ``input_size``; ``alexnet_2012`` is the paper's network and takes 227 only.
"""

from __future__ import annotations

import torch
from torch import nn

from cnnzoo.layers.initialisation import he_init_, on_meta
from cnnzoo.layers.lrn import LocalResponseNorm2d
from cnnzoo.layers.output_size import conv_input_size_needed, conv_output_size
from cnnzoo.models.base import ModelConfig, ZooModel, check_fixed_side, check_min_side
from cnnzoo.models.registry import register_model

PAPER = "Krizhevsky, Sutskever & Hinton, 2012"


def _flat_classifier(
    in_features: int, hidden: int, num_classes: int, dropout: float
) -> nn.Sequential:
    # fc6 and fc7, each output dropped with probability `dropout` during training, then fc8
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(in_features, hidden), nn.ReLU(inplace=True), nn.Dropout(dropout),
        nn.Linear(hidden, hidden), nn.ReLU(inplace=True), nn.Dropout(dropout),
        nn.Linear(hidden, num_classes),
    )


class AlexNet2012(ZooModel):
    def __init__(self, *, num_classes: int, in_channels: int, input_size: int = 227) -> None:
        super().__init__()
        check_fixed_side("alexnet_2012", input_size, 227, "alexnet_small")
        self.cfg = ModelConfig("alexnet_2012", (in_channels, 227, 227), num_classes, min_size=227,
                               fixed_size=True,
                               resizable=False, small_variant="alexnet_small", paper=PAPER)
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 96, 11, stride=4), nn.ReLU(inplace=True),       # conv1
            LocalResponseNorm2d(size=5, alpha=1e-4, beta=0.75, k=2.0),
            nn.MaxPool2d(3, stride=2),
            nn.Conv2d(96, 256, 5, padding=2, groups=2), nn.ReLU(inplace=True),    # conv2
            LocalResponseNorm2d(size=5, alpha=1e-4, beta=0.75, k=2.0),
            nn.MaxPool2d(3, stride=2),
            nn.Conv2d(256, 384, 3, padding=1), nn.ReLU(inplace=True),             # conv3
            nn.Conv2d(384, 384, 3, padding=1, groups=2), nn.ReLU(inplace=True),   # conv4
            nn.Conv2d(384, 256, 3, padding=1, groups=2), nn.ReLU(inplace=True),   # conv5
            nn.MaxPool2d(3, stride=2),
        )
        self.classifier = _flat_classifier(256 * 6 * 6, 4096, num_classes, dropout=0.5)
        self._init_as_paper()

    def _init_as_paper(self) -> None:
        # shapes only: 60M draws from PyTorch's meta normal_ would cost seconds for nothing
        if on_meta(self):
            return
        layers = [m for m in self.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
        # conv2, conv4, conv5, fc6, fc7 (0-based among the 8 weight layers)
        bias_one = {1, 3, 4, 5, 6}
        for index, layer in enumerate(layers):
            nn.init.normal_(layer.weight, mean=0.0, std=0.01)
            nn.init.constant_(layer.bias, 1.0 if index in bias_one else 0.0)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        # conv1 (N, 96, 55, 55) -> pool1 27×27 -> conv2 (N, 256, 27, 27) -> pool2 13×13
        # -> conv3/conv4 (N, 384, 13, 13) -> conv5 (N, 256, 13, 13) -> pool5 (N, 256, 6, 6)
        return self.features(x)


def _simplified_side(input_size: int) -> int:
    """Side of the d2l AlexNet's last feature map: conv1 11×11/4 pad 1, then three 3×3/2
    max-pools."""
    side = conv_output_size(input_size, 11, stride=4, padding=1)
    for _ in range(3):  # the convolutions between the pools keep the size
        side = conv_output_size(side, 3, 2)
    return side


def _simplified_min_side() -> int:
    """The smallest input side that leaves the d2l AlexNet's last feature map at least 1×1 (65
    px)."""
    side = 1
    for _ in range(3):
        side = conv_input_size_needed(side, 3, 2)
    return conv_input_size_needed(side, 11, stride=4, padding=1)


class AlexNetSimplified(ZooModel):
    """The d2l book's single-tower AlexNet (no LRN, no groups)."""

    def __init__(self, *, num_classes: int, in_channels: int, input_size: int) -> None:
        super().__init__()
        check_min_side("alexnet", input_size, _simplified_min_side(), "alexnet_small")
        side = _simplified_side(input_size)
        self.cfg = ModelConfig("alexnet", (in_channels, input_size, input_size), num_classes,
                               min_size=_simplified_min_side(), fixed_size=True,
                               small_variant="alexnet_small", paper=PAPER)
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 96, 11, stride=4, padding=1), nn.ReLU(inplace=True),
                                      nn.MaxPool2d(3, 2),
            nn.Conv2d(96, 256, 5, padding=2), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2),
            nn.Conv2d(256, 384, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(384, 384, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(384, 256, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2),
        )
        self.classifier = _flat_classifier(256 * side * side, 4096, num_classes, dropout=0.5)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)  # (N, C, 224, 224) -> (N, 256, 5, 5)


class AlexNetSmall(ZooModel):
    """AlexNet's topology for 28–32 px images: 5 conv, LRN, overlapping pooling, 3 FC with
    dropout."""

    def __init__(self, *, num_classes: int, in_channels: int, input_size: int,
                 widths: tuple[int, int, int, int, int], hidden: int, dropout: float, lrn: bool,
                 overlapping_pool: bool) -> None:
        super().__init__()
        pool_kernel = 3 if overlapping_pool else 2
        # three 3×3/2 pools need 15 px to leave 1 (15 -> 7 -> 3 -> 1), three 2×2/2 pools 8
        smallest = 15 if overlapping_pool else 8
        check_min_side("alexnet_small", input_size, smallest,
                       reason=f" with {pool_kernel}×{pool_kernel}/2 pools")
        side = input_size
        for _ in range(3):  # the convolutions keep the size
            side = conv_output_size(side, pool_kernel, 2)
        self.cfg = ModelConfig("alexnet_small", (in_channels, input_size, input_size), num_classes,
                               min_size=smallest, fixed_size=True, paper=PAPER)
        c1, c2, c3, c4, c5 = tuple(widths)

        def norm() -> nn.Module:
            return (
                LocalResponseNorm2d(size=5, alpha=1e-4, beta=0.75, k=2.0) if lrn else nn.Identity()
            )

        self.features = nn.Sequential(
            nn.Conv2d(in_channels, c1, 5, padding=2), nn.ReLU(inplace=True), norm(),
                                      nn.MaxPool2d(pool_kernel, 2),
            nn.Conv2d(c1, c2, 5, padding=2), nn.ReLU(inplace=True), norm(),
                                      nn.MaxPool2d(pool_kernel, 2),
            nn.Conv2d(c2, c3, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(c3, c4, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(c4, c5, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(pool_kernel, 2),
        )
        self.classifier = _flat_classifier(c5 * side * side, hidden, num_classes, dropout)
        he_init_(self)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        # (N, C, 28, 28) -> conv1 28×28 -> pool 13×13 -> conv2 -> pool 6×6 -> conv3-5 -> pool (N,
        # c5, 2, 2)
        return self.features(x)


@register_model
def alexnet_2012(
    *, num_classes: int = 1000, in_channels: int = 3, input_size: int = 227
) -> AlexNet2012:
    """AlexNet as published: two grouped towers, LRN, overlapping pooling, dropout, 227 px."""
    return AlexNet2012(num_classes=num_classes, in_channels=in_channels, input_size=input_size)


@register_model
def alexnet(
    *, num_classes: int = 1000, in_channels: int = 3, input_size: int = 224
) -> AlexNetSimplified:
    """The simplified single-tower AlexNet of the d2l book (96-256-384-384-256, no LRN)."""
    return AlexNetSimplified(num_classes=num_classes, in_channels=in_channels,
                             input_size=input_size)


@register_model
def alexnet_small(
    *,
    num_classes: int = 10,
    in_channels: int = 1,
    input_size: int = 28,
    widths: tuple[int, int, int, int, int] = (48, 128, 192, 192, 128),
    hidden: int = 1024,
    dropout: float = 0.5,
    lrn: bool = True,
    overlapping_pool: bool = True,
) -> AlexNetSmall:
    """AlexNet's topology (5 conv + LRN + overlapping pools + 3 FC + dropout) for 28–32 px."""
    return AlexNetSmall(num_classes=num_classes, in_channels=in_channels, input_size=input_size,
                        widths=widths, hidden=hidden, dropout=dropout, lrn=lrn,
                        overlapping_pool=overlapping_pool)
