"""The small convolutional network of our notes: two 5×5 conv + ReLU + 2×2 max-pool stages and one
linear layer.

Not from one paper; it is the "2 conv + pooling" entry of Fashion-MNIST's benchmark table (91.6%).
``activation="tanh"`` swaps every ReLU for tanh, and ``hidden=N`` inserts a hidden fully connected
layer of N units (with the same activation) before the classifier: ``convnet(activation=...,
hidden=...)`` is then a 4-layer network (2 conv + 2 FC) like the one of the AlexNet paper's Fig. 1,
for its ReLU-vs-tanh experiment. ``stacked_3x3=True`` replaces each 5×5 convolution by two 3×3 ones
(the first changes the width, the second keeps it, with the activation between): the same 5×5
receptive field, VGG's argument (Simonyan & Zisserman, 2015, section 2.3), for the small-kernels
experiment. Each activation gets the initialisation derived for it — He et al. (2015) for ReLU,
Glorot & Bengio (2010) with tanh's gain for tanh — so that comparison is of the activations, not of
one default that suits neither.
"""

from __future__ import annotations

import torch
from torch import nn

from cnnzoo.errors import ConfigError
from cnnzoo.layers.initialisation import on_meta
from cnnzoo.layers.output_size import conv_output_size
from cnnzoo.models.base import ModelConfig, ZooModel, check_min_side
from cnnzoo.models.registry import register_model

ACTIVATIONS = {"relu": lambda: nn.ReLU(inplace=True), "tanh": nn.Tanh}


class ConvNet(ZooModel):
    def __init__(self, *, num_classes: int, in_channels: int, input_size: int,
                 widths: tuple[int, int],
                 activation: str, hidden: int | None = None, stacked_3x3: bool = False) -> None:
        super().__init__()
        check_min_side("convnet", input_size, 4, reason=" (two 2×2 poolings)")
        if activation not in ACTIVATIONS:
            raise ConfigError(f"activation must be one of {sorted(ACTIVATIONS)}; got "
                              f"{activation!r}")
        if hidden is not None and hidden < 1:
            raise ConfigError(f"hidden must be a positive number of units or None; got {hidden}")
        self.cfg = ModelConfig("convnet", (in_channels, input_size, input_size), num_classes,
                               min_size=4, fixed_size=True)
        c1, c2 = tuple(widths)
        act = ACTIVATIONS[activation]
        self.features = nn.Sequential(*_stage(in_channels, c1, act, stacked_3x3),
                                      *_stage(c1, c2, act, stacked_3x3))
        # the 'same' convolutions keep the size
        side = conv_output_size(conv_output_size(input_size, 2, 2), 2, 2)
        features = c2 * side * side
        if hidden is None:
            self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(features, num_classes))
        else:
            self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(features, hidden), act(),
                                            nn.Linear(hidden, num_classes))
        self._init_weights(activation)

    def _init_weights(self, activation: str) -> None:
        if on_meta(self):
            return
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                if activation == "relu":
                    nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                else:
                    nn.init.xavier_normal_(m.weight, gain=nn.init.calculate_gain("tanh"))
                nn.init.zeros_(m.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)  # (N, C, 28, 28) -> (N, 64, 7, 7)


def _stage(cin: int, cout: int, act, stacked_3x3: bool) -> list[nn.Module]:
    """A 5×5 'same' convolution (or two 3×3 ones), the activation and a 2×2 max-pool."""
    if stacked_3x3:
        return [nn.Conv2d(cin, cout, 3, padding=1), act(), nn.Conv2d(cout, cout, 3, padding=1),
        act(),
                nn.MaxPool2d(2)]
    return [nn.Conv2d(cin, cout, 5, padding=2), act(), nn.MaxPool2d(2)]


@register_model
def convnet(*, num_classes: int = 10, in_channels: int = 1, input_size: int = 28,
            widths: tuple[int, int] = (32, 64), activation: str = "relu", hidden: int | None = None,
            stacked_3x3: bool = False) -> ConvNet:
    """Two conv + pool stages (32 and 64 maps) and a linear classifier, for 28×28 grey images."""
    return ConvNet(num_classes=num_classes, in_channels=in_channels, input_size=input_size,
                   widths=widths, activation=activation, hidden=hidden, stacked_3x3=stacked_3x3)
