"""Data sets held in memory as one uint8 tensor: ``ImageTensors``, an ``ImageDataset``.

Why not ``torch.utils.data.DataLoader`` for these: Fashion-MNIST is 47 MB and CIFAR-10 150 MB as
uint8, so the whole set sits in one tensor and a batch is one indexing operation; a DataLoader would
call ``__getitem__`` 60,000 times an epoch and collate the pieces back, which on a laptop CPU costs
more than the small models' forward pass. Images stay uint8 (4× smaller than float) until
``augment`` turns a batch into floats, so the same batch-wise augmentation serves in-memory sets and
streamed image folders alike.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch

from cnnzoo.data.dataset import (
    Batch,
    DatasetSplits,
    ImageDataset,
    IndexedBatch,
    Shard,
    batch_plan,
    check_batch_size,
    pad_images,
)
from cnnzoo.errors import ConfigError

# ITU-R BT.601 luma weights, the ones Pillow's convert("L") uses too, so in-memory and folder data
# agree.
LUMA_WEIGHTS = (0.299, 0.587, 0.114)
_CONVERT_CHUNK = 4096  # images converted at a time, to bound the float temporary


@dataclass
class ImageTensors(ImageDataset):
    """Images (N, C, H, W) uint8 and their labels (N,) int64, on one device."""

    images: torch.Tensor
    labels: torch.Tensor

    def __post_init__(self) -> None:
        if self.images.dim() != 4 or self.images.dtype != torch.uint8:
            raise ValueError(
                "ImageTensors.images must be an (N, C, H, W) uint8 tensor; got "
                f"{self.images.dtype} of shape {tuple(self.images.shape)}. Keep images as uint8 "
                "and convert batches with augment.to_float."
            )
        if self.labels.dim() != 1 or self.labels.dtype != torch.int64:
            raise ValueError(
                f"ImageTensors.labels must be an (N,) int64 tensor; got {self.labels.dtype} of "
                f"shape {tuple(self.labels.shape)}. Use labels.long()."
            )
        if len(self.images) != len(self.labels):
            raise ValueError(f"{len(self.images)} images but {len(self.labels)} labels; they must "
                             "pair up")

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def num_channels(self) -> int:
        return self.images.shape[1]

    @property
    def image_size(self) -> tuple[int, int]:
        return tuple(self.images.shape[2:])  # type: ignore[return-value]

    @property
    def device(self) -> torch.device:
        return self.images.device

    def to(self, device: torch.device | str) -> ImageTensors:
        """A copy on ``device`` (the same object when already there). Moving the uint8 set once to
        the GPU is cheaper than moving every float batch."""
        if torch.device(device) == self.images.device:
            return self
        return ImageTensors(self.images.to(device), self.labels.to(device))

    def subset(self, indices: Sequence[int] | torch.Tensor | slice) -> ImageTensors:
        """The images at ``indices`` (a slice gives views, indices give copies)."""
        if not isinstance(indices, slice):
            indices = torch.as_tensor(indices, dtype=torch.long, device=self.images.device)
        return ImageTensors(self.images[indices], self.labels[indices])

    def pad_to(self, side: int) -> ImageTensors:
        """The images zero-padded once as ``dataset.pad_images`` does (``self`` when nothing
        changes)."""
        padded = pad_images(self.images, side)
        return self if padded is self.images else ImageTensors(padded, self.labels)

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
        """Batches by ``dataset.batch_plan``: in order they are slices (views, no copy); shuffled,
        each is one indexing operation with a slice of the permutation (moved to the images' device
        once). With ``indices``, each also carries its images' positions (on the images'
        device)."""
        check_batch_size(batch_size)
        return self._batches(batch_size, shuffle, generator, drop_last, shard, indices)

    def _batches(self, batch_size: int, shuffle: bool, generator: torch.Generator | None,
                 drop_last: bool, shard: Shard, indices: bool) -> Iterator[Batch | IndexedBatch]:
        order, slices = batch_plan(len(self), batch_size, shuffle=shuffle, generator=generator,
                                   drop_last=drop_last, shard=shard)
        if order is None:
            for part in slices:
                batch = self.images[part], self.labels[part]
                if indices:
                    span = range(len(self))[part]
                    batch += (torch.arange(span.start, span.stop, device=self.device),)
                yield batch
            return
        order = order.to(self.device)
        for part in slices:
            chosen = order[part]
            yield (self.images[chosen], self.labels[chosen]) + ((chosen,) if indices else ())


def convert_channels(images: torch.Tensor, in_channels: int | None) -> torch.Tensor:
    """Grey ↔ RGB for a uint8 (N, C, H, W) batch; ``None`` or the same count returns ``images`` as
    is.

    Grey → RGB repeats the channel (so an RGB model sees a grey image). RGB → grey takes the ITU-R
    601 luma ``0.299 R + 0.587 G + 0.114 B``, rounded, as Pillow's ``convert("L")`` does.
    """
    channels = images.shape[1]
    if in_channels is None or in_channels == channels:
        return images
    if channels == 1 and in_channels == 3:
        return images.repeat(1, 3, 1, 1)
    if channels == 3 and in_channels == 1:
        weights = torch.tensor(LUMA_WEIGHTS, device=images.device).view(1, 3, 1, 1)
        parts = [
            (chunk.float() * weights).sum(1, keepdim=True).round_().clamp_(0, 255).to(torch.uint8)
            for chunk in images.split(_CONVERT_CHUNK)
        ]
        return torch.cat(parts) if parts else images[:, :1]
    raise ConfigError(
        f"cannot convert {channels}-channel images to {in_channels} channels: only grey (1) ↔ RGB "
        "(3) is supported. Build the model with in_channels equal to the data's channels."
    )


# Moved to cnnzoo.data.loading. Importing them from here still works, through the package's lazy
# table, until the callers outside data/ import them from cnnzoo.data (or cnnzoo.data.loading); then
# delete this. It is a run-time back-reference only: importing this module never imports loading or
# folder.
__all__ = [
    "DatasetSplits",
    "ImageTensors",
    "LUMA_WEIGHTS",
    "convert_channels",
]
