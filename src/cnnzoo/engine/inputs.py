"""Getting a dataset's images to the size, channels and scale a model expects.

``choose_input_side`` decides the side a model sees. Where the model wants slightly larger images
than the data has (LeNet-1998's 32×32 from Fashion-MNIST's 28×28) the dataset's ``pad_to`` zero-pads
them, as LeCun et al. padded MNIST, so no pixel is interpolated. Larger changes of size (28 → 224
for the d2l AlexNet) are left to the per-batch ``resize`` of the augmentation pipeline, which keeps
the stored dataset small. ``InputSpec`` is what a checkpoint records of it: side, normalisation and
crop padding.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from cnnzoo.data.augment import TrainAugment
from cnnzoo.data.views import EvalViews
from cnnzoo.errors import ConfigError, InputShapeError
from cnnzoo.models.base import ModelConfig


def choose_input_side(limits: ModelConfig, data_side: int, requested: int | None = None) -> int:
    """The image side a model is trained and run at, from its declared ``limits``, the data's own
    side and the user's ``requested`` side (``--input-size``; None: decide).

    Undecided, the data's side is kept when the model can be built for it (no interpolation, the
    head sized to the data); a network fixed to one size (LeNet-1998's 32, AlexNet-2012's 227), or
    one that needs larger images than the data has, gets its own default side, and the images are
    padded or resized to it.
    """
    default = limits.input_size[1]
    fixed = limits.fixed_size and not limits.resizable
    if requested is None:
        return default if fixed or data_side < limits.min_size else data_side
    if (fixed and requested != default) or requested < limits.min_size:
        need = f"exactly {default}" if fixed else f"at least {limits.min_size}"
        alternative = f", or use {limits.small_variant}" if limits.small_variant else ""
        raise InputShapeError(
            f"{limits.name} cannot take {requested}×{requested} images (it needs {need}); choose "
            f"--input-size accordingly{alternative}"
        )
    return requested


def check_cutout(size: int, side: int) -> None:
    """Refuse ``--cutout size`` in one ``ConfigError`` line unless it is smaller than the run's
    input ``side`` (a square that large would blank most images whole)."""
    if size >= side:
        raise ConfigError(f"--cutout {size} must be smaller than the {side}×{side} images the "
                          f"model is trained at; give a smaller square (e.g. {max(1, side // 4)}) "
                          "or leave it out")


def check_progressive_resize(model: torch.nn.Module, start: int | None, side: int,
                             channels: int, device: torch.device | str = "cpu") -> None:
    """Refuse ``--progressive-resize start`` in one ``ConfigError`` line unless it is smaller than
    the run's input ``side`` and ``model`` runs on ``start``×``start`` images, tried once on a zero
    batch (a head sized for the full side, or pooling that shrinks the image to nothing, fails
    there rather than at the first step). None (the option left out) passes."""
    if start is None:
        return
    if start >= side:
        raise ConfigError(f"--progressive-resize {start} must be smaller than the {side}×{side} "
                          "images the model is trained at; give a smaller side or leave it out")
    was_training = model.training
    model.eval()  # BatchNorm in training mode refuses a 1×1 map of one image; its statistics stay
    try:
        with torch.no_grad():
            model(torch.zeros(2, channels, start, start, device=device))
    except (RuntimeError, ValueError) as error:
        # its first sentence, on one line
        reason = (str(error).strip().splitlines() or [type(error).__name__])[0].split(". ")[0]
        reason = reason if len(reason) <= 160 else reason[:157] + "..."
        name = getattr(getattr(model, "cfg", None), "name", type(model).__name__)
        if not reason.startswith(name):  # a model's own refusal names it; PyTorch's does not
            reason = f"{name} cannot take {start}×{start} images ({reason})"
        raise ConfigError(f"--progressive-resize {start}: {reason}; leave --progressive-resize "
                          "out or pick a model that pools globally, e.g. budgetnet_s or "
                          "resnet20") from None
    finally:
        model.train(was_training)


def channel_statistics(images: torch.Tensor) -> tuple[list[float], list[float]]:
    """Per-channel mean and standard deviation of uint8 images on the [0, 1] scale."""
    sample = images.to(torch.float32) / 255.0
    mean = sample.mean(dim=(0, 2, 3))
    std = sample.std(dim=(0, 2, 3)).clamp_min(1e-3)
    return [round(v, 4) for v in mean.tolist()], [round(v, 4) for v in std.tolist()]


@dataclass
class PaddedTenCrop:
    """Ten-crop views of images zero-padded as training padded them, so the corner crops are real
    crops."""

    views_of: EvalViews
    padding: int
    views: str = "ten-crop"
    num_views: int = 10

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        return self.views_of(F.pad(batch, (self.padding,) * 4))


@dataclass
class InputSpec:
    """What the model gets: ``size``×``size`` images normalised by ``mean``/``std``;
    ``crop_padding`` is the zero padding its random training crops were cut from (0 when it was
    trained without crops)."""

    size: int
    mean: list[float]
    std: list[float]
    crop_padding: int = 0

    def train_pipeline(self, *, flip: bool, pca_std: float, eigvals: torch.Tensor | None = None,
                       eigvecs: torch.Tensor | None = None, cutout: int = 0) -> TrainAugment:
        return TrainAugment(out_size=self.size, crop_padding=self.crop_padding, flip=flip,
                            pca_std=pca_std, mean=self.mean, std=self.std, eigvals=eigvals,
                            eigvecs=eigvecs, cutout=cutout)

    def eval_pipeline(self, views: str = "center") -> EvalViews | PaddedTenCrop:
        base = EvalViews(out_size=self.size, views=views, mean=self.mean, std=self.std)
        if views != "ten-crop":
            return base
        if self.crop_padding == 0:
            raise ConfigError("ten-crop views are crops of a larger image, but this model was "
                              "trained on whole images (no --crop-padding), so all ten would be "
                              "the same; use --test-views flip, or train with --crop-padding N")
        return PaddedTenCrop(base, self.crop_padding)

    def to_dict(self) -> dict:
        return {"size": self.size, "mean": self.mean, "std": self.std,
                "crop_padding": self.crop_padding}
