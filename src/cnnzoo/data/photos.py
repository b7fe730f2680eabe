"""A photo prepared the way MNIST and Fashion-MNIST prepared theirs, so a model trained on them can read it.

Those datasets hold light objects on a black background, centred, filling a 28×28 frame (the Fashion-MNIST
paper, section 2: trim the edges close to the corner colour, resize the longest edge, extend the shortest edge
to a square with the object centred, negate the intensities, 8-bit grey). A garment photographed on a white
table is the opposite on every count, and a model trained on the dataset reads it confidently wrong. So:

1. grey; 2. invert when the background (the median of the image's border) is light; 3. trim the rows and
columns that stay close to the background; 4. resize the longest side to the side, keeping the aspect ratio;
5. pad the shorter side with black, centred. Each step that changed something is reported.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

BACKGROUND_TOLERANCE = 30  # grey levels from the background colour that still count as background


def _border(array: np.ndarray) -> np.ndarray:
    return np.concatenate([array[0], array[-1], array[:, 0], array[:, -1]])


def prepare_like_mnist(image: Image.Image, side: int = 28, object_side: int | None = None
                       ) -> tuple[np.ndarray, list[str]]:
    """``image`` as a uint8 ``side``×``side`` grey array, light object on black, and the steps taken.

    The object's longest side becomes ``object_side`` (default ``side``: Fashion-MNIST fills its frame; MNIST
    fits its digits in a 20-pixel box). An image already in the datasets' form — ``side``×``side`` on a dark
    background — is returned as it is.
    """
    array = np.asarray(image.convert("L"), dtype=np.uint8)
    steps: list[str] = []
    height, width = array.shape
    if (height, width) == (side, side) and np.median(_border(array)) <= 127:
        return array.copy(), steps
    if np.median(_border(array)) > 127:  # the datasets' backgrounds are black
        array = 255 - array
        steps.append("inverted (light background)")
    background = np.median(_border(array))
    content = np.abs(array.astype(np.int16) - background) > BACKGROUND_TOLERANCE
    rows, cols = np.flatnonzero(content.any(1)), np.flatnonzero(content.any(0))
    if rows.size and cols.size and (rows.size < height or cols.size < width):
        array = array[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
        steps.append(f"trimmed to the object ({array.shape[1]}×{array.shape[0]} of {width}×{height})")
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


def unlike_training(image: np.ndarray, mean: float, tolerance: float = 0.25) -> str | None:
    """Why a prepared image looks unlike the training images, or None: its mean grey level (on the [0, 1]
    scale) is more than ``tolerance`` from ``mean``, the training images' (Fashion-MNIST's 0.29: images whose
    own means lie mostly within 0.1 of it)."""
    brightness = image.mean() / 255.0
    if abs(brightness - mean) > tolerance:
        return (f"it looks unlike the training images (mean brightness {brightness:.2f} against their {mean:.2f}); "
                f"the prediction may mean little")
    return None
