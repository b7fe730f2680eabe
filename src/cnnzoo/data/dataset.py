"""The one surface every image data set offers: ``ImageDataset``, and what is shared by all of them.

Two classes implement it: ``tensors.ImageTensors`` (decoded once, held as one uint8 tensor) and
``folder.StreamingImageFolder`` (an image folder too big for memory, decoded batch by batch).
Training and evaluation use only this surface, so they never need to know which one they were given;
in particular both draw an epoch's order with ``batch_plan``, so the same seeded generator gives the
same batches from either. Under several processes each asks for its ``Shard`` of the plan (batch i
goes to process i mod world), so a streamed folder decodes only the images of its own batches.

This module is the leaf of ``cnnzoo.data``: it imports torch, the standard library and
``cnnzoo.errors`` (itself standard-library only), and nothing from ``cnnzoo.data``.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import torch
import torch.nn.functional as F

from cnnzoo.errors import ConfigError

# Pad (rather than resize) when a model's side exceeds the images' by at most this much: LeNet-1998
# takes 32×32 and MNIST / Fashion-MNIST are 28×28, and LeCun et al. padded MNIST with a zero border,
# so no pixel is interpolated. Larger changes of size (28 → 224 for the d2l AlexNet) are left to the
# per-batch resize of the augmentation, which keeps the stored data set small.
MAX_PAD = 8

Batch = tuple[torch.Tensor, torch.Tensor]  # uint8 images (N, C, H, W), int64 labels (N,)
# a Batch and each image's index in the data set (N,) int64, for batches(..., indices=True)
IndexedBatch = tuple[torch.Tensor, torch.Tensor, torch.Tensor]


@dataclass(frozen=True)
class Shard:
    """One process's share of every epoch: batch ``i`` of the plan goes to process ``i mod world``.

    Every process draws the same permutation (their generators are seeded alike and advance alike),
    so the shares are disjoint and together cover the epoch without any index being exchanged.
    """

    rank: int = 0
    world: int = 1

    def __post_init__(self) -> None:
        if not 0 <= self.rank < self.world:
            raise ConfigError(f"shard {self.rank} of {self.world}: the rank must be in [0, world)")


@runtime_checkable
class ImageDataset(Protocol):
    """Labelled uint8 images of one size, delivered in batches on one device.

    ``labels`` holds every label as an (N,) int64 tensor (on the CPU or the data set's device), so
    class counts and subsets can be chosen without decoding an image.
    """

    labels: torch.Tensor

    @abstractmethod
    def __len__(self) -> int: ...

    @property
    @abstractmethod
    def num_channels(self) -> int: ...

    @property
    @abstractmethod
    def image_size(self) -> tuple[int, int]:
        """(H, W) of the images the batches hold, padding included."""

    @property
    @abstractmethod
    def device(self) -> torch.device:
        """Where the batches are delivered."""

    @abstractmethod
    def subset(self, indices: Sequence[int] | torch.Tensor) -> ImageDataset:
        """The images at ``indices``, in that order, with the same padding and device."""

    @abstractmethod
    def to(self, device: torch.device | str) -> ImageDataset:
        """The same images with batches delivered on ``device`` (``self`` when already there)."""

    @abstractmethod
    def pad_to(self, side: int) -> ImageDataset:
        """The data set whose batches are zero-padded as ``pad_images(batch, side)`` pads them
        (``self`` when that changes nothing); ``image_size`` reports the padded size."""

    @abstractmethod
    def batches(
        self,
        batch_size: int,
        *,
        shuffle: bool,
        generator: torch.Generator | None = None,
        drop_last: bool = False,
        shard: Shard = Shard(),
        indices: bool = False,
    ) -> Iterator[Batch] | Iterator[IndexedBatch]:
        """Yield ``(uint8 images (N, C, H, W), int64 labels (N,))`` on ``device``, in the order
        ``batch_plan`` gives, only ``shard``'s batches (only their images are read). ``batch_size <
        1`` raises ``ConfigError`` at the call; the permutation is drawn from ``generator`` when the
        first batch is asked for. With ``indices``, each batch comes with a third tensor: its
        images' (N,) int64 positions in the whole data set, whatever the shard (what per-image
        settings such as alternating flips are keyed on)."""




@dataclass
class DatasetSplits:
    """A data set's train and test parts and its class names (``classes[label]``)."""

    name: str
    train: ImageDataset
    test: ImageDataset
    classes: list[str]
    note: str | None = None  # how it was read where that was a choice (a folder's side, channels)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def in_channels(self) -> int:
        return self.train.num_channels

    @property
    def image_size(self) -> tuple[int, int]:
        return self.train.image_size


def check_batch_size(batch_size: int) -> None:
    if batch_size < 1:
        raise ConfigError(f"batch_size must be at least 1; got {batch_size}")


def batch_plan(
    count: int, batch_size: int, *, shuffle: bool, generator: torch.Generator | None = None,
               drop_last: bool = False,
    shard: Shard = Shard(),
) -> tuple[torch.Tensor | None, list[slice]]:
    """One epoch of ``count`` items: the order (a CPU permutation drawn from ``generator``, or
    ``None`` for the stored order) and the batches as consecutive slices of it, the last one short
    unless ``drop_last``; of those, ``shard``'s (every ``world``-th from its ``rank``). The whole
    permutation is drawn whatever the shard, so every process's generator advances alike.

    Every ``ImageDataset`` batches by this plan, which is why a seeded generator gives the same
    epoch from an in-memory set and from a streamed folder.
    """
    check_batch_size(batch_size)
    order = torch.randperm(count, generator=generator) if shuffle else None
    stop = count - count % batch_size if drop_last else count
    starts = range(0, stop, batch_size)[shard.rank::shard.world]
    return order, [slice(start, start + batch_size) for start in starts]


def pad_images(images: torch.Tensor, side: int) -> torch.Tensor:
    """Zero-pad (centred) uint8 images (…, H, W) up to ``side`` when they are at most ``MAX_PAD``
    smaller; otherwise return them unchanged (a larger change of size is the augmentation's
    resize)."""
    return pad_by(images, centred_padding(images.shape[-1], side))


def centred_padding(image_side: int, side: int) -> tuple[int, int]:
    """The zero rows (and columns) ``pad_images`` adds before and after an ``image_side`` image for
    ``side``: ``(0, 0)`` unless ``side`` exceeds it by 1..MAX_PAD; the odd pixel goes after."""
    extra = side - image_side
    if not 0 < extra <= MAX_PAD:
        return 0, 0
    return extra // 2, extra - extra // 2


def pad_by(images: torch.Tensor, padding: tuple[int, int]) -> torch.Tensor:
    """Zero-pad the last two dimensions by ``(before, after)`` on each; ``images`` itself when (0,
    0)."""
    before, after = padding
    if before == after == 0:
        return images
    return F.pad(images, (before, after, before, after))


__all__ = [
    "MAX_PAD",
    "Batch",
    "DatasetSplits",
    "ImageDataset",
    "IndexedBatch",
    "Shard",
    "batch_plan",
    "centred_padding",
    "pad_by",
    "pad_images",
]
