"""What the views look at: a trained run (``load_trained``) or a freshly initialised model by name, the image
files it is shown (decoded, resized and normalised as the model saw its test images) and its data set."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from cnnzoo.data.dataset import DatasetSplits, pad_images
from cnnzoo.data.folder import load_image
from cnnzoo.engine.inputs import InputSpec
from cnnzoo.engine.predict import load_trained
from cnnzoo.errors import ConfigError
from cnnzoo.models.registry import create_model, get_builder


@dataclass
class Subject:
    """A model to look inside, and what it takes: ``run`` is None for a fresh model (its weights are random)."""

    model: nn.Module
    name: str
    classes: list[str]
    input: InputSpec
    data_size: int
    dataset: str | None = None
    run: Path | None = None
    checkpoint: Path | None = None

    @property
    def label(self) -> str:
        """How figures name the model: ``lenet5 (trained on fashion-mnist)`` or ``lenet5 (untrained)``."""
        return f"{self.name} (trained on {self.dataset})" if self.run else f"{self.name} (random weights)"

    def default_out(self) -> Path:
        """``RUN/show`` for a run; ``show-NAME`` in the working directory for a bare model."""
        return self.run / "show" if self.run else Path(f"show-{self.name}")


def open_subject(source: str | Path, *, device: str = "cpu") -> Subject:
    """A run directory or checkpoint file (weights loaded) or a registered model name (fresh weights)."""
    path = Path(source)
    if path.exists():
        loaded = load_trained(path, device=device)
        run = path if path.is_dir() else loaded.checkpoint.parent.parent
        return Subject(loaded.model, loaded.name, loaded.classes, loaded.input, loaded.data_size, loaded.dataset,
                       run, loaded.checkpoint)
    get_builder(str(source))  # an unknown name: UnknownModelError with close names
    torch.manual_seed(0)
    model = create_model(str(source)).eval()
    cfg = model.cfg
    spec = InputSpec(size=cfg.input_size[1], mean=list(cfg.mean), std=list(cfg.std))
    return Subject(model, str(source), [str(i) for i in range(cfg.num_classes)], spec, cfg.input_size[1])


def model_input(subject: Subject, images: torch.Tensor) -> torch.Tensor:
    """uint8 images (N, C, h, w) as the model sees them: padded as in training, resized, normalised."""
    images = pad_images(images, subject.input.size)
    return subject.input.eval_pipeline("center")(images)[0]


def load_input(subject: Subject, image: str | Path) -> tuple[torch.Tensor, torch.Tensor]:
    """An image file as (uint8 (C, s, s) at the training images' size, float (1, C, S, S) model input)."""
    channels = subject.model.cfg.input_size[0]
    raw = load_image(Path(image), channels=channels, size=subject.data_size)
    return raw, model_input(subject, raw[None])


def load_data(subject: Subject, data_dir: str | Path | None = None) -> DatasetSplits:
    """The data set the run was trained on (train and test parts, uint8 at the training images' size)."""
    from cnnzoo.data.loading import load_dataset

    if subject.dataset is None:
        raise ConfigError(f"{subject.name} is not a trained run, so it has no data set; give a run directory")
    return load_dataset(subject.dataset, data_dir, in_channels=subject.model.cfg.input_size[0],
                        image_size=subject.data_size)


def display_image(x: torch.Tensor, subject: Subject) -> torch.Tensor:
    """A normalised model input (C, H, W) back to [0, 1] for drawing (H, W) or (H, W, 3)."""
    mean = torch.tensor(subject.input.mean).view(-1, 1, 1)
    std = torch.tensor(subject.input.std).view(-1, 1, 1)
    image = (x.detach().cpu() * std + mean).clamp(0, 1)
    return image[0] if image.shape[0] == 1 else image.permute(1, 2, 0)


def load_canvas(subject: Subject, image: str | Path) -> tuple[torch.Tensor, torch.Tensor]:
    """An image file at its own size (for score maps): (uint8 (C, H, W), normalised float (1, C, H, W))."""
    import numpy as np
    from PIL import Image

    from cnnzoo.errors import DataFormatError

    channels = subject.model.cfg.input_size[0]
    try:
        with Image.open(image) as opened:
            array = np.asarray(opened.convert("L" if channels == 1 else "RGB"))
    except (OSError, ValueError) as error:
        raise DataFormatError(f"{image}: cannot be read as an image ({error})") from None
    raw = torch.from_numpy(array.copy()).reshape(array.shape[0], array.shape[1], channels).permute(2, 0, 1)
    return raw, normalise(subject, raw[None])


def normalise(subject: Subject, images: torch.Tensor) -> torch.Tensor:
    """uint8 images (N, C, H, W) to the model's input statistics, at their own size."""
    mean = torch.tensor(subject.input.mean).view(1, -1, 1, 1)
    std = torch.tensor(subject.input.std).view(1, -1, 1, 1)
    return (images.float() / 255 - mean) / std


def tile_canvas(images: torch.Tensor, per_side: int = 3) -> torch.Tensor:
    """``per_side``² uint8 images (N, C, s, s) side by side: one (C, per_side·s, per_side·s) canvas."""
    rows = [torch.cat(list(images[r * per_side:(r + 1) * per_side]), dim=-1) for r in range(per_side)]
    return torch.cat(rows, dim=-2)
