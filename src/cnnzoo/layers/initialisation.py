"""He initialisation for ReLU networks with BatchNorm, shared by the VGG, ResNet and DenseNet families.

He, Zhang, Ren & Sun (2015), "Delving deep into rectifiers": weights of N(0, 2 / fan) keep the variance of the
signal from layer to layer through ReLUs; ``fan_out`` mode does so for the gradients of the backward pass.
BatchNorm starts as the identity (scale 1, shift 0).
"""

from __future__ import annotations

from torch import nn


def he_init_(model: nn.Module) -> None:
    """He-normal (fan-out) convolutions with zero biases, identity BatchNorm; other layers are left as they are."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
