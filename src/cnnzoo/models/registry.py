"""The model registry: every builder is registered under its own name.

The name a builder is registered under is the name used everywhere: ``create_model("resnet18")``,
``cnnzoo train --model resnet18`` and the run directories ``runs/resnet18-...``. Each builder is
written out by name in its family's module (``grep "def resnet50"`` finds it) with one keyword-only
signature: ``num_classes``, ``in_channels``, ``input_size`` (the variant's defaults), then the
family's own options.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable
from typing import TYPE_CHECKING

from cnnzoo.errors import ConfigError, UnknownModelError, suggest

if TYPE_CHECKING:
    from torch import nn

    from cnnzoo.models.base import ModelConfig

_BUILDERS: dict[str, Callable[..., nn.Module]] = {}


def register_model(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    """Decorator: register ``builder`` under its function name."""
    name = builder.__name__
    if name in _BUILDERS:
        raise ValueError(f"model {name!r} is registered twice")
    _BUILDERS[name] = builder
    return builder


def natural_key(name: str) -> list:
    """Sort key that orders numbers by value: resnet18 < resnet34 < resnet101 (as timm's list_models
    does)."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def list_models(pattern: str = "*") -> list[str]:
    """Registered model names matching a shell-style ``pattern`` (``"resnet*"``), in natural
    order."""
    return sorted((name for name in _BUILDERS if fnmatch.fnmatchcase(name, pattern)),
                  key=natural_key)


def get_builder(name: str) -> Callable[..., nn.Module]:
    try:
        return _BUILDERS[name]
    except KeyError:
        raise UnknownModelError(
            f"unknown model {name!r}.{suggest(name, _BUILDERS)} `cnnzoo list` shows all "
            f"{len(_BUILDERS)} models."
        ) from None


def create_model(name: str, **kwargs) -> nn.Module:
    """Build the registered model ``name``; keyword arguments go to its builder: ``num_classes``,
    ``in_channels``, ``input_size`` (the square side; every builder takes it) and the family's own
    options."""
    if kwargs.pop("pretrained", False):
        raise ConfigError("cnnzoo ships no pretrained weights: its models are built from their "
                          f"papers and trained with cnnzoo (`cnnzoo train --model {name} ...`); no "
                          "ImageNet run of them is bundled. Load weights of your own with "
                          f"model.load_state_dict(...) or `cnnzoo eval FILE --model {name}`.")
    return get_builder(name)(**kwargs)


def model_limits(name: str, **options) -> ModelConfig:
    """The configuration ``name`` declares when built with ``options``: its default input size (C,
    H, W), ``min_size``, ``fixed_size``, ``small_variant``, ``num_classes``… Built on the meta
    device, so it costs the construction of the modules only: no memory for the weights (VGG's 140M
    included), no initialisation."""
    import torch

    with torch.device("meta"):
        return get_builder(name)(**options).cfg
