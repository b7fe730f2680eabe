"""Getting a dataset's images to the size, channels and scale a model expects.

Images are kept as uint8 tensors. ``fit_images`` runs once per dataset: where the model wants slightly larger
images than the data has (LeNet-1998's 32×32 from Fashion-MNIST's 28×28) it zero-pads them, as LeCun et al.
padded MNIST, so no pixel is interpolated. Larger changes of size (28 → 224 for the d2l AlexNet) are left to
the per-batch ``resize`` of the augmentation pipeline, which keeps the stored dataset small.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from cnnzoo.data.augment import EvalViews, TrainAugment

MAX_PAD = 8  # pad (rather than resize) when the model's side exceeds the images' by at most this much


def fit_images(images: torch.Tensor, size: int) -> torch.Tensor:
    """Zero-pad (centred) uint8 images up to ``size`` when they are at most MAX_PAD smaller; else unchanged."""
    side = images.shape[-1]
    extra = size - side
    if 0 < extra <= MAX_PAD:
        before = extra // 2
        return F.pad(images, (before, extra - before, before, extra - before))
    return images


def channel_statistics(images: torch.Tensor, max_images: int = 10_000) -> tuple[list[float], list[float]]:
    """Per-channel mean and standard deviation of uint8 images on the [0, 1] scale."""
    sample = images[:max_images].to(torch.float32) / 255.0
    mean = sample.mean(dim=(0, 2, 3))
    std = sample.std(dim=(0, 2, 3)).clamp_min(1e-3)
    return [round(v, 4) for v in mean.tolist()], [round(v, 4) for v in std.tolist()]


@dataclass
class InputSpec:
    """What the model gets: ``size``×``size`` images normalised by ``mean``/``std``."""

    size: int
    mean: list[float]
    std: list[float]

    def train_pipeline(self, *, crop_padding: int, flip: bool, pca_std: float,
                       eigvals: torch.Tensor | None = None, eigvecs: torch.Tensor | None = None) -> TrainAugment:
        return TrainAugment(out_size=self.size, crop_padding=crop_padding, flip=flip, pca_std=pca_std,
                            mean=self.mean, std=self.std, eigvals=eigvals, eigvecs=eigvecs)

    def eval_pipeline(self, views: str = "center") -> EvalViews:
        return EvalViews(out_size=self.size, views=views, mean=self.mean, std=self.std)

    def to_dict(self) -> dict:
        return {"size": self.size, "mean": self.mean, "std": self.std}
