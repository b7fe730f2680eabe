"""What a unit answers to in real data (Zeiler & Fergus, "Visualizing and understanding
convolutional networks", ECCV 2014, Figure 2's right-hand panels): for each channel of a stage, the
test images whose strongest response in that channel is the largest, each cropped to the receptive
field of the unit that gave it.

The window comes from the inspector (``inspect.summary``: field, jump and where the first unit's
field starts), so a unit at (i, j) sees rows start + i·jump … start + i·jump + field − 1 of the
model input and nothing else: pasting that window alone into a blank input gives the unit the same
value (tests/test_units.py). Parts of a window beyond the image (the convolutions' zero padding) are
drawn blank.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from cnnzoo.errors import ConfigError
from cnnzoo.inspect.summary import summary
from cnnzoo.visualize.activations import activations
from cnnzoo.visualize.layers import default_stages

TOP = 9  # patches per unit, a 3×3 block as in Zeiler & Fergus


def field_of(model: nn.Module, path: str) -> tuple[int, int, int]:
    """(field, jump, start) of the module at ``path`` (for a block: its last layer), from the
    inspector.
    """
    info = summary(model)
    inside = [
        layer for layer in info.layers if layer.name == path or layer.name.startswith(path + ".")
    ]
    if not inside or inside[-1].receptive_field is None:
        raise ConfigError(
            f"{path} of {model.cfg.name} is not a spatial map (it has no receptive field); choose "
            f"a convolutional stage: {', '.join(spatial_stages(model))}"
        )
    last = inside[-1]
    return last.receptive_field, last.jump, last.rf_start


def spatial_stages(model: nn.Module) -> list[str]:
    """The stages whose output is a spatial map (those with a receptive field): the layers
    ``show patches`` accepts by stage name."""
    rows = summary(model).layers
    spatial = []
    for name, path in default_stages(model).items():
        inside = [row for row in rows if row.name == path or row.name.startswith(path + ".")]
        if inside and inside[-1].receptive_field is not None:
            spatial.append(name)
    return spatial


def window(field: tuple[int, int, int], i: int, j: int) -> tuple[int, int]:
    """Top-left corner (row, column) in the model input of unit (i, j)'s receptive field."""
    size, jump, start = field
    return start + i * jump, start + j * jump


@torch.no_grad()
def top_patches(
    model: nn.Module, layer: str, path: str, batches, *, units: int | None = None, top: int = TOP
) -> dict:
    """For each of the first ``units`` channels of ``layer``: the ``top`` images (their best
    position) with the largest activation. {"field": (field, jump, start), "rows": [[{"image", "i",
    "j", "value"}]]} with image indices into the concatenated ``batches``.
    """
    best_values, best_places = [], []
    for x in batches:
        maps = activations(model, x, [path])[path]  # (N, C, h, w)
        if maps.dim() != 4:
            raise ConfigError(f"{layer} of {model.cfg.name} is not a spatial map; choose a "
                              f"convolutional stage: {', '.join(spatial_stages(model))}")
        values, places = maps.flatten(2).max(2)  # each image's strongest response per channel
        best_values.append(values)
        best_places.append(places)
    values, places = torch.cat(best_values), torch.cat(best_places)
    width = maps.shape[-1]
    count = values.shape[1] if units is None else min(units, values.shape[1])
    rows = []
    for unit in range(count):
        order = values[:, unit].argsort(descending=True)[:top]
        rows.append(
            [
                {
                    "image": int(n),
                    "i": int(places[n, unit]) // width,
                    "j": int(places[n, unit]) % width,
                    "value": float(values[n, unit]),
                }
                for n in order
            ]
        )
    return {"field": field_of(model, path), "rows": rows}


def crop(
    image: np.ndarray, field: tuple[int, int, int], i: int, j: int, blank: float = 1.0
) -> np.ndarray:
    """The receptive-field window of unit (i, j) from an (H, W, 3) image; what lies outside is
    ``blank``.
    """
    size = field[0]
    top, left = window(field, i, j)
    out = np.full((size, size, 3), blank)
    h, w = image.shape[:2]
    r0, c0 = max(top, 0), max(left, 0)
    r1, c1 = min(top + size, h), min(left + size, w)
    if r1 > r0 and c1 > c0:
        out[r0 - top : r1 - top, c0 - left : c1 - left] = image[r0:r1, c0:c1]
    return out


def draw_patches(images: np.ndarray, result: dict, *, title: str, top: int = TOP):
    """One 3×3 block per unit, each patch with its activation; ``images`` (N, H, W, 3) in [0, 1]."""
    from cnnzoo.visualize.drawing import grid_figure, hide_unused, mosaic, show_image

    rows, field = result["rows"], result["field"]
    columns = min(8, max(1, math.ceil(math.sqrt(len(rows) * 1.5))))
    figure, axes = grid_figure(math.ceil(len(rows) / columns), columns, cell=1.9, extra_height=1.0)
    side = math.ceil(math.sqrt(top))
    for unit, (ax, row) in enumerate(zip(np.ravel(axes), rows, strict=False)):
        tiles = np.stack([crop(images[p["image"]], field, p["i"], p["j"]) for p in row])
        values = " ".join(f"{p['value']:.2g}" for p in row[:3])
        show_image(
            ax,
            mosaic(tiles, columns=side, gap=max(1, field[0] // 10)),
            title=f"unit {unit}: {values} …",
            fontsize=6.5,
        )
    hide_unused(axes, len(rows))
    figure.suptitle(title, fontsize=10)
    return figure
