"""A classifier slid over a larger image in one pass: its fully connected layers rewritten as
convolutions.

The first FC layer reads the whole last feature map (C×h×w), so it is a h×w convolution with the
same weights reshaped; later FC layers read a vector, so they are 1×1 convolutions (BatchNorm1d
becomes BatchNorm2d with the same statistics). Run on a larger image, the network then returns a
C×H′×W′ map of class scores: cell (i, j) is the network's output for the window at (i·s, j·s), s the
features' total stride — the trick OverFeat and the VGG paper use for dense evaluation (Sermanet et
al., 2014; Simonyan & Zisserman, 2015, section 3.2).

Exactly equal to the original network on that crop when the convolutions have no padding (``lenet5``
at 32 px); with padding, a crop's border sees its neighbours instead of zeros, so cells agree in
class but not to the last digit. Networks ending in global average pooling (NiN, GoogLeNet, ResNet,
DenseNet, ``vgg16_bn_small``) are fully convolutional already; ``fully_convolutional`` says so with
a ``ConfigError``.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn

from cnnzoo.errors import ConfigError
from cnnzoo.visualize.drawing import CLASS_CMAP, HEAT_CMAP, show_image

ELEMENTWISE = (nn.ReLU, nn.Tanh, nn.Sigmoid, nn.ELU, nn.LeakyReLU, nn.GELU)
SKIPPED = (nn.Flatten, nn.Dropout, nn.Identity)


def _head_layers(model: nn.Module) -> list[nn.Module]:
    """The modules of an FC head in order, or a ConfigError that says why there is none."""
    name = model.cfg.name
    # an imported model (engine/imported.py) has no split into features and head
    if not hasattr(model, "forward_features"):
        raise ConfigError(f"{name} is an imported model, not a cnnzoo architecture: cnnzoo cannot "
                          "tell its features from its head to rewrite the head as convolutions, "
                          "so as imported it is not fully convolutional and has no score map")
    classifier = getattr(model, "classifier", None)
    if name == "lenet5_1998":
        raise ConfigError("lenet5_1998 ends in Euclidean RBF units, not a linear layer, so its "
                          "head has no convolutional form here; use lenet5")
    if not isinstance(classifier, nn.Sequential) or not any(
        isinstance(m, nn.Linear) for m in classifier
    ):
        raise ConfigError(
            f"{name} has no fully connected head: it ends in global average pooling, so it is "
            "fully convolutional already (run it on the larger image and drop the pool)"
        )
    layers = list(classifier)
    if (
        any(isinstance(m, (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)) for m in layers)
        or name == "vgg16_bn_small"
    ):
        raise ConfigError(
            f"{name} pools its last feature map globally before the FC layers, so it is fully "
            "convolutional already: those FC layers are 1×1 convolutions on the pooled map"
        )
    return layers


def _feature_shape(model: nn.Module) -> tuple[int, int, int]:
    c, h, w = model.cfg.input_size
    with torch.no_grad():
        return tuple(model.forward_features(torch.zeros(1, c, h, w,
                                                        device=_device(model))).shape[1:])


def _device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def _first_conv(linear: nn.Linear, shape: tuple[int, int, int], pooled_to: int | None) -> nn.Conv2d:
    """The first FC layer as a conv over the whole map; VGG's adaptive pool of a 1×1 map to 7×7 only
    copies it, so its 49 weights per channel add up."""
    c, h, w = shape
    if pooled_to is not None and (h, w) != (pooled_to, pooled_to):
        if (h, w) != (1, 1):
            raise ConfigError(f"the adaptive pool before the head turns a {h}×{w} map into "
                              f"{pooled_to}×{pooled_to}, which no single convolution reproduces; "
                              "build the model at its default size")
        weight = linear.weight.view(linear.out_features, c, pooled_to, pooled_to).sum(
            (2, 3), keepdim=True
        )
    else:
        weight = linear.weight.view(linear.out_features, c, h, w)
    conv = nn.Conv2d(c, linear.out_features, tuple(weight.shape[-2:]), bias=linear.bias is not None)
    with torch.no_grad():
        conv.weight.copy_(weight)
        if linear.bias is not None:
            conv.bias.copy_(linear.bias)
    return conv


def _pointwise(linear: nn.Linear) -> nn.Conv2d:
    conv = nn.Conv2d(linear.in_features, linear.out_features, 1, bias=linear.bias is not None)
    with torch.no_grad():
        conv.weight.copy_(linear.weight[:, :, None, None])
        if linear.bias is not None:
            conv.bias.copy_(linear.bias)
    return conv


def _batch_norm_2d(norm: nn.BatchNorm1d) -> nn.BatchNorm2d:
    converted = nn.BatchNorm2d(norm.num_features, eps=norm.eps, affine=norm.affine)
    converted.load_state_dict(norm.state_dict())
    return converted


def convolutional_head(model: nn.Module) -> nn.Sequential:
    """The model's FC head as convolutions over its last feature map (see the module docstring)."""
    layers = _head_layers(model)
    shape = _feature_shape(model)
    pool = getattr(model, "pool", None)
    pooled_to = pool.output_size if isinstance(pool, nn.AdaptiveAvgPool2d) else None
    converted, first = [], True
    for module in layers:
        if isinstance(module, SKIPPED):
            continue
        if isinstance(module, nn.Linear):
            converted.append(_first_conv(module, shape, pooled_to) if first else _pointwise(module))
            first = False
        elif isinstance(module, nn.BatchNorm1d):
            converted.append(_batch_norm_2d(module))
        elif isinstance(module, ELEMENTWISE):
            converted.append(copy.deepcopy(module))
        else:
            raise ConfigError(f"{model.cfg.name}'s head has a {type(module).__name__}, which has "
                              "no convolutional form here")
    return nn.Sequential(*converted).to(_device(model)).eval()


def feature_stride(model: nn.Module) -> int:
    """How far apart (in input pixels) two neighbouring cells of the score map are: input side / map
    side for a side that divides evenly (the product of the strides)."""
    c, side, _ = model.cfg.input_size
    big = side * 4
    with torch.no_grad():
        small_map = model.forward_features(torch.zeros(1, c, side, side,
                                                       device=_device(model))).shape[-1]
        large_map = model.forward_features(torch.zeros(1, c, big, big,
                                                       device=_device(model))).shape[-1]
    return round((big - side) / (large_map - small_map))


@torch.no_grad()
def score_map(model: nn.Module, x: torch.Tensor, head: nn.Sequential | None = None) -> dict:
    """Class scores for every window of a (1, C, H, W) image larger than the model's input, in one
    pass: {"scores": (classes, H′, W′), "stride": s, "window": side}."""
    head = head or convolutional_head(model)
    scores = head(model.forward_features(x))[0]
    return {"scores": scores, "stride": feature_stride(model), "window": model.cfg.input_size[1]}


def draw_score_map(image: np.ndarray, result: dict, *, classes: list[str], title: str,
                   per_class: int = 10):
    """The canvas, the argmax map (one colour per class) and each class's probability map (one
    inferno scale)."""
    from cnnzoo.figures import new_figure

    probabilities = result["scores"].float().softmax(0).cpu().numpy()
    shown = min(per_class, len(classes))
    figure, _ = new_figure(1, width=13.0, height=6.2)
    figure.clear()
    top, bottom = figure.subfigures(2, 1, height_ratios=[1.25, 1])
    axes = top.subplots(1, 2)
    extent = _extent(image, result, probabilities.shape[1:])
    show_image(axes[0], image, title=f"input ({image.shape[0]}×{image.shape[1]})")
    best = probabilities.argmax(0)
    cmap = CLASS_CMAP if len(classes) <= 10 else "tab20"
    show_image(axes[1], image, title=f"argmax class per {result['window']}-px window, stride "
                                     f"{result['stride']} px ({best.shape[0]}×{best.shape[1]} "
                                     "cells)")
    axes[1].imshow(best, cmap=cmap, vmin=-0.5, vmax=(10 if len(classes) <= 10 else 20) - 0.5,
                   alpha=0.6, extent=extent, interpolation="nearest")
    axes[1].set_xlim(-0.5, image.shape[1] - 0.5)
    axes[1].set_ylim(image.shape[0] - 0.5, -0.5)
    from matplotlib import colormaps
    from matplotlib.patches import Patch

    handles = [
        Patch(color=colormaps[cmap](i), label=classes[i])
        for i in sorted(set(best.ravel().tolist()))
    ]
    axes[1].legend(handles=handles, loc="center left", bbox_to_anchor=(1.02, 0.5), fontsize=8,
                   frameon=False)
    maps = bottom.subplots(1, shown)
    for index, ax in enumerate(np.atleast_1d(maps)):
        last = ax.imshow(probabilities[index], cmap=HEAT_CMAP, vmin=0, vmax=1,
                         interpolation="nearest")
        show_image(ax, probabilities[index], cmap=HEAT_CMAP, vmin=0, vmax=1, title=classes[index],
                   fontsize=8)
    bottom.colorbar(last, ax=maps, shrink=0.8, label="P(class)")
    figure.suptitle(title, fontsize=11)
    return figure


def _extent(
    image: np.ndarray, result: dict, cells: tuple[int, int]
) -> tuple[float, float, float, float]:
    """Where the cells go over the image: each cell drawn at its window's centre, ``stride`` px
    wide."""
    stride, window = result["stride"], result["window"]
    start = window / 2 - stride / 2 - 0.5
    return (start, start + cells[1] * stride, start + cells[0] * stride, start)
