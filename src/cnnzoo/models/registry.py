"""The model registry: every builder is registered under its own name.

The name a builder is registered under is the name used everywhere: ``create_model("resnet18")``,
``cnnzoo train --model resnet18`` and the run directories ``runs/resnet18-...``. Each builder is written out
by name in its family's module (``grep "def resnet50"`` finds it) with one keyword-only signature:
``num_classes``, ``in_channels``, ``input_size`` (the variant's defaults), then the family's own options.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from typing import TYPE_CHECKING

from cnnzoo.errors import UnknownModelError, suggest

if TYPE_CHECKING:
    from torch import nn

    from cnnzoo.models.base import ModelConfig

_BUILDERS: dict[str, Callable[..., "nn.Module"]] = {}


def register_model(builder: Callable[..., "nn.Module"]) -> Callable[..., "nn.Module"]:
    """Decorator: register ``builder`` under its function name."""
    name = builder.__name__
    if name in _BUILDERS:
        raise ValueError(f"model {name!r} is registered twice")
    _BUILDERS[name] = builder
    return builder


def list_models(pattern: str = "*") -> list[str]:
    """Registered model names matching a shell-style ``pattern`` (``"resnet*"``), sorted."""
    return sorted(name for name in _BUILDERS if fnmatch.fnmatchcase(name, pattern))


def get_builder(name: str) -> Callable[..., "nn.Module"]:
    try:
        return _BUILDERS[name]
    except KeyError:
        raise UnknownModelError(
            f"unknown model {name!r}.{suggest(name, _BUILDERS)} `cnnzoo list` shows all {len(_BUILDERS)} models."
        ) from None


def create_model(name: str, **kwargs) -> "nn.Module":
    """Build the registered model ``name``; keyword arguments go to its builder: ``num_classes``,
    ``in_channels``, ``input_size`` (the square side; every builder takes it) and the family's own options."""
    return get_builder(name)(**kwargs)


def model_limits(name: str, **options) -> "ModelConfig":
    """The configuration ``name`` declares when built with ``options``: its default input size (C, H, W),
    ``min_size``, ``fixed_size``, ``small_variant``, ``num_classes``… Built on the meta device, so it costs the
    construction of the modules only: no memory for the weights (VGG's 140M included), no initialisation."""
    import torch

    with torch.device("meta"):
        return get_builder(name)(**options).cfg
