"""What the views show a ``Run`` (``engine.run.open_run``: a trained run, or a fresh model by name): image files
decoded, resized and normalised as the model saw its test images, and its data set."""

from __future__ import annotations

from pathlib import Path

import torch

from cnnzoo.data.dataset import DatasetSplits, pad_images
from cnnzoo.data.folder import load_image, open_image
from cnnzoo.engine.run import Run
from cnnzoo.errors import ConfigError


def model_input(run: Run, images: torch.Tensor) -> torch.Tensor:
    """uint8 images (N, C, h, w) as the model sees them: padded as in training, resized, normalised."""
    images = pad_images(images, run.input.size)
    return run.input.eval_pipeline("center")(images)[0]


def load_input(run: Run, image: str | Path) -> tuple[torch.Tensor, torch.Tensor]:
    """An image file as (uint8 (C, s, s) at the training images' size, float (1, C, S, S) model input)."""
    channels = run.model.cfg.input_size[0]
    raw = load_image(Path(image), channels=channels, size=run.data_size)
    return raw, model_input(run, raw[None])


def load_data(run: Run, data_dir: str | Path | None = None, *, download: bool = True) -> DatasetSplits:
    """The data set the run was trained on (train and test parts, uint8 at the training images' size); a
    missing one is downloaded only when ``download`` (never for the explorer's clients)."""
    from cnnzoo.data.loading import load_dataset

    if run.dataset is None:
        raise ConfigError(f"{run.name} is not a trained run, so it has no data set; give a run directory")
    return load_dataset(run.dataset, data_dir, download=download, in_channels=run.model.cfg.input_size[0],
                        image_size=run.data_size)


def display_image(x: torch.Tensor, run: Run) -> torch.Tensor:
    """A normalised model input (C, H, W) back to [0, 1] for drawing (H, W) or (H, W, 3)."""
    mean = torch.tensor(run.input.mean).view(-1, 1, 1)
    std = torch.tensor(run.input.std).view(-1, 1, 1)
    image = (x.detach().cpu() * std + mean).clamp(0, 1)
    return image[0] if image.shape[0] == 1 else image.permute(1, 2, 0)


def load_canvas(run: Run, image: str | Path) -> tuple[torch.Tensor, torch.Tensor]:
    """An image file at its own size (for score maps): (uint8 (C, H, W), normalised float (1, C, H, W)). Read with
    ``predict``'s checks: a FIFO, a directory or a decompression bomb is one clear error, never a hang."""
    import numpy as np

    channels = run.model.cfg.input_size[0]
    array = np.asarray(open_image(image, channels))
    raw = torch.from_numpy(array.copy()).reshape(array.shape[0], array.shape[1], channels).permute(2, 0, 1)
    return raw, normalise(run, raw[None])


def normalise(run: Run, images: torch.Tensor) -> torch.Tensor:
    """uint8 images (N, C, H, W) to the model's input statistics, at their own size."""
    mean = torch.tensor(run.input.mean).view(1, -1, 1, 1)
    std = torch.tensor(run.input.std).view(1, -1, 1, 1)
    return (images.float() / 255 - mean) / std


def tile_canvas(images: torch.Tensor, per_side: int = 3) -> torch.Tensor:
    """``per_side``² uint8 images (N, C, s, s) side by side: one (C, per_side·s, per_side·s) canvas."""
    rows = [torch.cat(list(images[r * per_side:(r + 1) * per_side]), dim=-1) for r in range(per_side)]
    return torch.cat(rows, dim=-2)


def prepared_input(run: Run, image: str | Path, *,
                   raw: bool = False) -> tuple[torch.Tensor, torch.Tensor, dict]:
    """An image file prepared exactly as ``cnnzoo predict`` prepares it (``engine.predict.prepare_image``:
    a photo made to look like MNIST's images for a model trained on them, unless ``raw``): (uint8
    (C, s, s), float (1, C, S, S) model input, what was done to it)."""
    from cnnzoo.engine.predict import prepare_image

    decoded = open_image(Path(image), run.model.cfg.input_size[0])
    tensor, note = prepare_image(run, decoded, not raw)
    return tensor, model_input(run, tensor[None]), note
