"""The model registry: every builder is registered under its own name.

The name a builder is registered under is the name used everywhere: ``create_model("resnet18")``,
``cnnzoo train --model resnet18`` and the run directories ``runs/resnet18-...``.
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
    """Build the registered model ``name``; keyword arguments go to its builder
    (``num_classes``, ``in_channels`` and, where the head depends on it, ``input_size``)."""
    return get_builder(name)(**kwargs)


def accepts_input_size(name: str) -> bool:
    """Whether the builder of ``name`` can size the model for a given image side (``input_size=``)."""
    import inspect

    parameters = inspect.signature(get_builder(name)).parameters
    # builders with **options (NiN, GoogLeNet, DenseNet) pass input_size on to their model's configuration
    return "input_size" in parameters or any(p.kind is p.VAR_KEYWORD for p in parameters.values())


def build_for_size(name: str, side: int | None, **kwargs) -> "nn.Module":
    """``create_model(name, **kwargs)``, built for ``side``×``side`` images where the builder takes a size."""
    if side is not None and accepts_input_size(name):
        kwargs["input_size"] = side
    return create_model(name, **kwargs)


def model_limits(name: str, **options) -> "ModelConfig":
    """The declared configuration of ``name`` built with ``options`` (input size, smallest side, fixed head),
    found without allocating weights (built on the meta device)."""
    import torch

    with torch.device("meta"):
        return create_model(name, **options).cfg
