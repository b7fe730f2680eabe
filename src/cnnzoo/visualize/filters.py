"""The kernels of a convolution, as images: what the first layer of a trained network has learnt to
look for (AlexNet's Figure 3: oriented edges and colour blobs, each GPU's 48 kernels apart)."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from cnnzoo.figures import new_figure
from cnnzoo.layers.lenet1998 import PartialConv2d
from cnnzoo.visualize.drawing import SIGNED_CMAP, mosaic, rescale_rgb, show_image
from cnnzoo.visualize.layers import find_conv

MAX_KERNELS = 128  # kernels drawn per group (one tile each: grey or RGB input)
# otherwise: kernels (rows) × input channels (columns) drawn per group
MAX_ROWS, MAX_INPUTS = 32, 16


def dense_weight(conv: nn.Module) -> torch.Tensor:
    """(out, in/groups, k, k) weights; LeNet-1998's partially connected C3 gets zeros where no
    connection is."""
    if isinstance(conv, PartialConv2d):
        k = conv.kernel_size
        dense = torch.zeros(conv.out_channels, conv.in_channels, k, k)
        out, inp = conv.connection_index.T
        dense[out, inp] = conv.weight.detach().float().cpu()
        return dense
    return conv.weight.detach().float().cpu()


def kernels(model: nn.Module, layer: str | None = None) -> dict:
    """A convolution's kernels by group: {"layer", "shape", "groups", "weights": [(out/groups,
    in/groups, k, k)]}."""
    name, conv = find_conv(model, layer)
    weight = dense_weight(conv)
    groups = getattr(conv, "groups", 1)
    return {"layer": name, "shape": list(conv.weight.shape), "groups": groups,
            "weights": list(weight.chunk(groups, dim=0))}


def kernel_tiles(weight: torch.Tensor) -> tuple[np.ndarray, int, str]:
    """Tiles for one group, their column count and how they were coloured.

    Three input channels: one RGB tile per kernel, scaled to [0, 1] by its own range. Otherwise one
    tile per (kernel, input channel) on a diverging map, each kernel scaled by its own max |w|; a
    row per kernel.
    """
    inputs = weight.shape[1]
    weight = weight[:MAX_KERNELS if inputs in (1, 3) else MAX_ROWS].numpy()
    out = weight.shape[0]
    if inputs == 3:
        return rescale_rgb(weight.transpose(0, 2, 3, 1)), math.ceil(math.sqrt(out * 1.5)), "rgb"
    shown = weight[:, :MAX_INPUTS]
    scale = np.abs(shown.reshape(out, -1)).max(1).reshape(out, 1, 1, 1)
    # each kernel on its own scale, its input channels alike
    unit = shown / np.where(scale > 0, scale, 1)
    if inputs == 1:
        return _signed_fixed(unit[:, 0]), math.ceil(math.sqrt(out * 1.5)), "signed"
    return _signed_fixed(unit.reshape(-1, *shown.shape[2:])), shown.shape[1], "signed"


def _signed_fixed(unit: np.ndarray) -> np.ndarray:
    """Values already in [−1, 1] to RGB on the diverging map, without rescaling each tile again."""
    from matplotlib import colormaps

    return colormaps[SIGNED_CMAP]((unit + 1) / 2)[..., :3]


def draw_filters(data: dict, *, title: str):
    """One panel per group, the layer's name and weight shape in the title, how kernels were scaled
    below it."""
    groups = data["weights"]
    drawn = [kernel_tiles(weight) for weight in groups]
    sheets = [mosaic(tiles, columns=columns, gap=max(1, tiles.shape[1] // 5)) for tiles, columns,
              _ in drawn]
    width = 5.0 if len(groups) > 1 else 6.0
    aspect = min(max(sheets[0].shape[0] / sheets[0].shape[1], 0.4), 2.0)
    figure, axes = new_figure(len(groups), width=width, height=width * aspect + 1.1)
    how = drawn[0][2]
    for index, (ax, weight, sheet) in enumerate(zip(axes, groups, sheets, strict=True)):
        inputs = weight.shape[1]
        shown = min(len(weight), MAX_KERNELS if inputs in (1, 3) else MAX_ROWS)
        label = (
            f"{shown} of {len(weight)} kernels" if shown < len(weight) else f"{len(weight)} kernels"
        )
        if how == "signed" and inputs > 1:
            label += f" (rows) × {min(inputs, MAX_INPUTS)} of {inputs} input channels (columns)"
        group = f"group {index + 1} of {len(groups)}: " if len(groups) > 1 else ""
        show_image(ax, sheet, title=group + label)
    scaling = ("each kernel scaled to its own range (RGB)" if how == "rgb"
               else "each kernel scaled by its own max |w|: red +, white 0, blue −")
    figure.suptitle(f"{title}: {data['layer']}, weight {tuple(data['shape'])}\n{scaling}",
                    fontsize=11)
    return figure
