"""The fully connected baseline: flatten the image, then hidden layers of ReLU units.

Not from one paper: the multilayer perceptron every CNN is measured against (Rumelhart, Hinton &
Williams, 1986, for backpropagation). It ignores that neighbouring pixels belong together, which is
the point of the comparison with the convolutional families.
"""

from __future__ import annotations

import torch
from torch import nn

from cnnzoo.models.base import ModelConfig, ZooModel, check_min_side
from cnnzoo.models.registry import register_model


class MLP(ZooModel):
    def __init__(self, *, num_classes: int, in_channels: int, input_size: int,
                 hidden: tuple[int, ...], dropout: float) -> None:
        super().__init__()
        check_min_side("mlp", input_size, 1)
        self.cfg = ModelConfig("mlp", (in_channels, input_size, input_size), num_classes,
                               min_size=1,
                               fixed_size=True, paper="Rumelhart, Hinton & Williams, 1986")
        layers: list[nn.Module] = [nn.Flatten()]
        width = in_channels * input_size * input_size
        for units in tuple(hidden):
            layers += [nn.Linear(width, units), nn.ReLU(inplace=True), nn.Dropout(dropout)]
            width = units
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(width, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)  # (N, C, H, W) -> (N, hidden[-1])


@register_model
def mlp(*, num_classes: int = 10, in_channels: int = 1, input_size: int = 28,
        hidden: tuple[int, ...] = (512, 256), dropout: float = 0.2) -> MLP:
    """Fully connected baseline: 784-512-256-10 with ReLU and dropout for 28×28 grey images."""
    return MLP(num_classes=num_classes, in_channels=in_channels, input_size=input_size,
               hidden=hidden, dropout=dropout)
