"""A photo prepared the way MNIST and Fashion-MNIST prepared theirs, so a model trained on them can
read it.

Those datasets hold light objects on a black background, centred, filling a 28×28 frame (the
Fashion-MNIST paper, section 2: trim the edges close to the corner colour, resize the longest edge,
extend the shortest edge to a square with the object centred, negate the intensities, 8-bit grey). A
garment photographed on a white table is the opposite on every count, and a model trained on the
dataset reads it confidently wrong. So:

1. grey; 2. invert when the background (the median of the image's border) is light; 3. trim the rows
   and
columns that stay close to the background; 4. resize the longest side to the side, keeping the
aspect ratio;
5. pad the shorter side with black, centred. Each step that changed something is reported.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

BACKGROUND_TOLERANCE = 30  # grey levels from the background colour that still count as background


def _border(array: np.ndarray) -> np.ndarray:
    return np.concatenate([array[0], array[-1], array[:, 0], array[:, -1]])


def light_background(array: np.ndarray) -> bool:
    """Whether a grey uint8 image's background (the median of its border) is light, unlike the
    datasets' black."""
    return bool(np.median(_border(array)) > 127)


def invert_light_background(array: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """A grey uint8 image with a light background inverted (the datasets' backgrounds are black),
    and the step taken."""
    if light_background(array):
        return 255 - array, ["inverted (light background)"]
    return array.copy(), []


def prepare_like_mnist(image: Image.Image, side: int = 28, object_side: int | None = None
                       ) -> tuple[np.ndarray, list[str]]:
    """``image`` as a uint8 ``side``×``side`` grey array, light object on black, and the steps
    taken.

    The object's longest side becomes ``object_side`` (default ``side``: Fashion-MNIST fills its
    frame; MNIST fits its digits in a 20-pixel box). An image already in the datasets' form —
    ``side``×``side`` on a dark background — is returned as it is.
    """
    array = np.asarray(image.convert("L"), dtype=np.uint8)
    height, width = array.shape
    if (height, width) == (side, side) and not light_background(array):
        return array.copy(), []
    array, steps = invert_light_background(array)
    background = np.median(_border(array))
    content = np.abs(array.astype(np.int16) - background) > BACKGROUND_TOLERANCE
    rows, cols = np.flatnonzero(content.any(1)), np.flatnonzero(content.any(0))
    if rows.size and cols.size and (rows.size < height or cols.size < width):
        array = array[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
        steps.append(f"trimmed to the object ({array.shape[1]}×{array.shape[0]} of "
                     f"{width}×{height})")
    object_side = object_side or side
    scale = object_side / max(array.shape)
    size = (max(1, round(array.shape[1] * scale)), max(1, round(array.shape[0] * scale)))
    array = np.asarray(Image.fromarray(array).resize(size, Image.Resampling.LANCZOS))
    steps.append(f"longest side resized to {object_side}")
    canvas = np.zeros((side, side), dtype=np.uint8)
    top, left = (side - array.shape[0]) // 2, (side - array.shape[1]) // 2
    canvas[top:top + array.shape[0], left:left + array.shape[1]] = array
    if array.shape != (side, side):
        steps.append(f"padded with black to {side}×{side}, centred")
    return canvas, steps


def light_background_warning(array: np.ndarray, inverted: bool) -> str | None:
    """Why a grey image may read wrong, or None: its background is light, while the datasets' is
    black. Either it was ``inverted`` to match (right for a dark object on a light ground, wrong for
    a light one), or it was used as it is and the model sees a negative of everything it learnt."""
    if not light_background(array):
        return None
    grey = int(np.median(_border(array)))
    light = f"the image's background is light (grey {grey} of 255), the training images' black"
    if inverted:
        return f"{light}: it was inverted, right for a dark object on a light ground only"
    return f"{light}: it was not inverted (preparation off), so the prediction may mean little"
