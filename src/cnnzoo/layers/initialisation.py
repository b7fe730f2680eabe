"""He initialisation for ReLU networks with BatchNorm, shared by the VGG, ResNet and DenseNet
families.

He, Zhang, Ren & Sun (2015), "Delving deep into rectifiers": weights of N(0, 2 / fan) keep the
variance of the signal from layer to layer through ReLUs; ``fan_out`` mode does so for the gradients
of the backward pass. BatchNorm starts as the identity (scale 1, shift 0).

``on_meta`` tells the models' initialisers to do nothing for a model built under
``torch.device("meta")`` (shapes only, as ``cnnzoo.models.registry.model_limits`` builds them):
there are no values to set, and PyTorch's meta ``normal_`` runs a Python decomposition that costs
milliseconds per call (seconds for a whole network).
"""

from __future__ import annotations

from torch import nn


def on_meta(model: nn.Module) -> bool:
    """Whether ``model`` was built on the meta device: shapes without values, nothing to
    initialise."""
    return any(p.is_meta for p in model.parameters())


def he_init_(model: nn.Module) -> None:
    """He-normal (fan-out) convolutions with zero biases, identity BatchNorm; other layers are left
    as they are."""
    if on_meta(model):
        return
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
