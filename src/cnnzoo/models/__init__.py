"""The model families, one module each, and the registry their builders are listed in.

Importing this package imports every family, which registers its builders (``@register_model``), so
``cnnzoo.models.create_model("resnet18")`` and ``cnnzoo.models.list_models("vgg*")`` see all of
them. Each family module's docstring names its paper and every deviation from it.
"""

from cnnzoo.models import (  # noqa: F401 - registers the builders
    alexnet,
    budgetnet,
    convnet,
    densenet,
    googlenet,
    lenet,
    mlp,
    nin,
    resnet,
    vgg,
)
from cnnzoo.models.registry import create_model, get_builder, list_models, model_limits

__all__ = ["create_model", "get_builder", "list_models", "model_limits"]
