"""What every view draws with: one colour map per kind of quantity, mosaics of small images, saving.

Grids of many small images are drawn as one mosaic (one ``imshow``), not hundreds of axes: quick to
draw and sharp at any size. Colour maps are fixed per kind so figures read alike: signed quantities
(weights) on a diverging map centred on zero, non-negative ones (activations) on viridis,
attributions on inferno.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from cnnzoo.figures import new_figure

SIGNED_CMAP = "RdBu_r"  # kernels: red positive, blue negative, white zero
MAGNITUDE_CMAP = "viridis"  # feature maps
HEAT_CMAP = "inferno"  # Grad-CAM, saliency, occlusion, score maps
CLASS_CMAP = "tab10"  # one colour per class (20 classes at most: tab20)
DPI = 150


def colourise(values: np.ndarray, cmap: str, *, signed: bool = False) -> np.ndarray:
    """(N, h, w) values to (N, h, w, 3) RGB, each of the N scaled on its own: to [−max|v|, max|v|]
    when ``signed``, else to [min, max] (a constant image comes out as the map's low end)."""
    from matplotlib import colormaps

    values = np.asarray(values, dtype=np.float64)
    flat = values.reshape(len(values), -1)
    if signed:
        scale = np.abs(flat).max(1, keepdims=True)
        unit = (flat / np.where(scale > 0, scale, 1) + 1) / 2
    else:
        low, span = flat.min(1, keepdims=True), np.ptp(flat, 1, keepdims=True)
        unit = (flat - low) / np.where(span > 0, span, 1)
    return colormaps[cmap](unit.reshape(values.shape))[..., :3]


def rescale_rgb(values: np.ndarray) -> np.ndarray:
    """(N, h, w, 3) to [0, 1], each of the N by its own minimum and maximum (AlexNet's Figure 3 does
    this)."""
    flat = values.reshape(len(values), -1)
    low, span = flat.min(1, keepdims=True), np.ptp(flat, 1, keepdims=True)
    return ((flat - low) / np.where(span > 0, span, 1)).reshape(values.shape)


def mosaic(
    tiles: np.ndarray, columns: int | None = None, *, gap: int = 1, background: float = 1.0
) -> np.ndarray:
    """(N, h, w, 3) tiles laid out in rows of ``columns`` (default: as square as possible), ``gap``
    px apart."""
    count, h, w = tiles.shape[:3]
    columns = columns or math.ceil(math.sqrt(count))
    rows = math.ceil(count / columns)
    sheet = np.full((rows * (h + gap) - gap, columns * (w + gap) - gap, 3), background)
    for index, tile in enumerate(tiles):
        r, c = divmod(index, columns)
        sheet[r * (h + gap): r * (h + gap) + h, c * (w + gap): c * (w + gap) + w] = tile
    return sheet


def show_image(ax, image, *, title: str = "", cmap: str | None = None, fontsize: float = 9,
               **kwargs) -> None:
    """An image without ticks or frame; (H, W) arrays in grey unless ``cmap`` says otherwise."""
    image = np.asarray(image)
    ax.imshow(image, cmap=cmap or ("gray" if image.ndim == 2 else None), interpolation="nearest",
              **kwargs)
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)
    if title:
        ax.set_title(title, fontsize=fontsize)


def grid_figure(rows: int, columns: int, *, cell: float = 1.6, extra_height: float = 0.7):
    """A figure of ``rows``×``columns`` axes, ``cell`` inches each, room for a title; returns
    (figure, axes 2-D)."""
    figure, _ = new_figure(1, width=max(columns * cell, 4.0), height=rows * cell + extra_height)
    figure.clear()
    axes = figure.subplots(rows, columns, squeeze=False)
    return figure, axes


def hide_unused(axes, used: int) -> None:
    for ax in list(np.ravel(axes))[used:]:
        ax.set_visible(False)


def save(figure, path: Path) -> Path:
    """Write ``figure`` as a PNG (creating the folder) and return its path. Its title wraps at the
    figure's edges (a variant's name, ``budgetnet_l variant (depths=[2,1,1], ...)``, is long)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    title = getattr(figure, "_suptitle", None)  # matplotlib keeps no public handle on it
    if title is not None:
        title.set_wrap(True)
    figure.savefig(path, dpi=DPI)
    return path
