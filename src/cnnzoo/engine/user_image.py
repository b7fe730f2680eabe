"""A user's image made into what a run's model reads: the one path that ``cnnzoo predict``, every
``show`` view that takes an image, ``scoremap`` and the explorer's upload and drawing canvas all
take, so that the same image gives the same class probabilities in each of them (a view that
prepared it otherwise once said "Pullover 38%" where ``predict`` said "Coat 70%").

For a run trained on MNIST or Fashion-MNIST (light objects centred on black, grey) a photo is
prepared as those datasets were (``cnnzoo.data.photos``: inverted if its background is light,
trimmed, resized by its longest side, padded to a square); any other image, and any image with
``prepare=False`` (the pixels as they are), is only resized by its shorter side and centre-cropped
to the training images' side. What was done comes back as ``{"prepared": [steps]}``, with a
``"warning"`` when the image's background is light where the training images' is black.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from cnnzoo.data.folder import image_tensor, open_image
from cnnzoo.data.photos import invert_light_background, light_background_warning, prepare_like_mnist
from cnnzoo.engine.run import Run

# Datasets of light objects centred on black, and the side of the box their objects fill: photos are
# prepared as these were (see cnnzoo.data.photos). MNIST's digits were fitted in 20×20,
# Fashion-MNIST's items fill 28×28.
MNIST_LIKE = {"mnist": 20, "fashion-mnist": None}


def read_image(run: Run, path: str | Path) -> Image.Image:
    """An image file decoded whole (no reduced-scale JPEG decoding: an upload is decoded whole too),
    upright, in the model's channels; a missing, irregular, damaged or oversized file is one clear
    error."""
    return open_image(Path(path), run.model.cfg.input_size[0])


def like_mnist(run: Run) -> bool:
    """Whether the run's images are prepared as MNIST's were: trained on one of those, in grey."""
    return run.dataset in MNIST_LIKE and run.model.cfg.input_size[0] == 1


def prepare_image(run: Run, image: Image.Image, prepare: bool = True, *,
                  keep_size: bool = False) -> tuple[torch.Tensor, dict]:
    """A decoded image (any mode) as uint8 (C, s, s) at the training images' side ``run.data_size``,
    before the padding and resizing that every input gets, and ``{"prepared": [steps], "warning":
    …}``.

    ``keep_size`` keeps the image's own size (a canvas for a score map): of the datasets'
    preparation only the inversion is done, since trimming and resizing would change the scale the
    map is read at.
    """
    mode = "L" if run.model.cfg.input_size[0] == 1 else "RGB"
    converted = image.convert(mode)
    note: dict = {}
    if like_mnist(run):
        grey = np.asarray(converted, dtype=np.uint8)
        warning = light_background_warning(grey, inverted=prepare)
        if warning:
            note["warning"] = warning
    if like_mnist(run) and prepare:
        if keep_size:
            array, steps = invert_light_background(grey)
        else:
            array, steps = prepare_like_mnist(converted, run.data_size, MNIST_LIKE[run.dataset])
        return torch.from_numpy(array).unsqueeze(0), {"prepared": steps, **note}
    if keep_size:
        array = np.array(converted, dtype=np.uint8).reshape(converted.height, converted.width, -1)
        return torch.from_numpy(array).permute(2, 0, 1).contiguous(), {"prepared": [], **note}
    side, (width, height) = run.data_size, converted.size
    steps = [] if (width, height) == (side, side) else [
        f"shorter side resized to {side} and the centre {side}×{side} kept (of {width}×{height})"]
    return image_tensor(converted, side), {"prepared": steps, **note}


def ranked(run: Run, probabilities: torch.Tensor, top_k: int = 5) -> list[dict]:
    """The ``top_k`` classes of one image's probabilities, most likely first, as every command
    reports them."""
    values, indices = probabilities.float().cpu().topk(min(top_k, len(probabilities)))
    return [{"class": run.classes[int(i)], "index": int(i), "probability": round(float(v), 6)}
            for v, i in zip(values, indices, strict=True)]
