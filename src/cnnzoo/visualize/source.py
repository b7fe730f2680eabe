"""What the views show a ``Run`` (``engine.run.open_run``: a trained run, or a fresh model by name):
image files prepared as ``cnnzoo predict`` prepares them (``engine.user_image``) and normalised as
the model saw its test images, and its data set."""

from __future__ import annotations

from pathlib import Path

import torch

from cnnzoo.data.augment import normalize, resize, to_float
from cnnzoo.data.dataset import DatasetSplits, centred_padding, pad_images
from cnnzoo.engine.run import Run
from cnnzoo.engine.user_image import prepare_image, read_image
from cnnzoo.errors import ConfigError


def model_input(run: Run, images: torch.Tensor) -> torch.Tensor:
    """uint8 images (N, C, h, w) as the model sees them: padded as in training, resized,
    normalised."""
    images = pad_images(images, run.input.size)
    return run.input.eval_pipeline("center")(images)[0]


def model_input_pixels(run: Run, raw: torch.Tensor) -> torch.Tensor:
    """uint8 test images as the model sees them (padded, resized), back in uint8 for drawing."""
    mean = torch.tensor(run.input.mean).view(1, -1, 1, 1)
    std = torch.tensor(run.input.std).view(1, -1, 1, 1)
    pixels = (model_input(run, raw) * std + mean).clamp(0, 1)
    return (pixels * 255).round().to(torch.uint8)


def load_input(run: Run, image: str | Path,
               prepare: bool = True) -> tuple[torch.Tensor, torch.Tensor, dict]:
    """An image file as (uint8 (C, s, s) at the training images' size, float (1, C, S, S) model
    input, how it was prepared): ``cnnzoo predict``'s preparation, so a view sees what ``predict``
    classified."""
    raw, note = prepare_image(run, read_image(run, image), prepare)
    return raw, model_input(run, raw[None]), note


def load_data(
    run: Run, data_dir: str | Path | None = None, *, download: bool = True
) -> DatasetSplits:
    """The data set the run was trained on (train and test parts, uint8 at the training images'
    size); a missing one is downloaded only when ``download`` (never for the explorer's clients)."""
    from cnnzoo.engine.evaluate import own_data

    if run.dataset is None:
        raise ConfigError(f"{run.name} is not a trained run, so it has no data set; give a run "
                          "directory")
    return own_data(run, data_dir, download=download)


def display_image(x: torch.Tensor, run: Run) -> torch.Tensor:
    """A normalised model input (C, H, W) back to [0, 1] for drawing (H, W) or (H, W, 3)."""
    mean = torch.tensor(run.input.mean).view(-1, 1, 1)
    std = torch.tensor(run.input.std).view(-1, 1, 1)
    image = (x.detach().cpu() * std + mean).clamp(0, 1)
    return image[0] if image.shape[0] == 1 else image.permute(1, 2, 0)


def load_canvas(run: Run, image: str | Path,
                prepare: bool = True) -> tuple[torch.Tensor, torch.Tensor, dict]:
    """An image file at its own size (for score maps): (uint8 (C, H, W), normalised float (1, C, H′,
    W′) at the model's scale, how it was prepared). Read and prepared as ``predict`` does, but never
    trimmed or resized (see ``prepare_image``); a FIFO, a directory or a decompression bomb is one
    clear error, never a hang."""
    raw, note = prepare_image(run, read_image(run, image), prepare, keep_size=True)
    return raw, canvas_input(run, raw[None]), note


def canvas_input(run: Run, images: torch.Tensor) -> torch.Tensor:
    """uint8 canvases (N, C, H, W) as the model reads them, at their own size: scaled as the
    training images were when the run resizes them (a convnet at 48 px on 28-px data sees every
    object 48/28 times larger; padded runs such as LeNet-1998's are not scaled), normalised with the
    training statistics."""
    x = to_float(images)
    data, side = run.data_size, run.input.size
    if side != data and centred_padding(data, side) == (0, 0):
        height, width = images.shape[-2:]
        x = resize(x, (round(height * side / data), round(width * side / data)))
    return normalize(x, run.input.mean, run.input.std)


def tile_canvas(images: torch.Tensor, per_side: int = 3) -> torch.Tensor:
    """``per_side``² uint8 images (N, C, s, s) side by side: one (C, per_side·s, per_side·s)
    canvas."""
    rows = [
        torch.cat(list(images[r * per_side : (r + 1) * per_side]), dim=-1) for r in range(per_side)
    ]
    return torch.cat(rows, dim=-2)
