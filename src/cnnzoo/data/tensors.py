"""Data sets held in memory as uint8 tensors, and the batch iterator the engine trains with.

Why not ``torch.utils.data.DataLoader`` for these: Fashion-MNIST is 47 MB and CIFAR-10 150 MB as uint8, so
the whole set sits in one tensor and a batch is one indexing operation; a DataLoader would call
``__getitem__`` 60,000 times an epoch and collate the pieces back, which on a laptop CPU costs more than
the small models' forward pass. Images stay uint8 (4× smaller than float) until ``augment`` turns a batch
into floats, so the same batch-wise augmentation serves in-memory sets and streamed image folders alike.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Union

import torch

from cnnzoo.errors import ConfigError
from cnnzoo.data.sources import ArraySplits, get_source, load_arrays

if TYPE_CHECKING:
    from cnnzoo.data.download import Fetch
    from cnnzoo.data.folder import StreamingImageFolder

# ITU-R BT.601 luma weights, the ones Pillow's convert("L") uses too, so in-memory and folder data agree.
LUMA_WEIGHTS = (0.299, 0.587, 0.114)
FOLDER_PREFIX = "folder:"
_CONVERT_CHUNK = 4096  # images converted at a time, to bound the float temporary


@dataclass
class ImageTensors:
    """Images (N, C, H, W) uint8 and their labels (N,) int64, on one device."""

    images: torch.Tensor
    labels: torch.Tensor

    def __post_init__(self) -> None:
        if self.images.dim() != 4 or self.images.dtype != torch.uint8:
            raise ValueError(
                f"ImageTensors.images must be an (N, C, H, W) uint8 tensor; got {self.images.dtype} of shape "
                f"{tuple(self.images.shape)}. Keep images as uint8 and convert batches with augment.to_float."
            )
        if self.labels.dim() != 1 or self.labels.dtype != torch.int64:
            raise ValueError(
                f"ImageTensors.labels must be an (N,) int64 tensor; got {self.labels.dtype} of shape "
                f"{tuple(self.labels.shape)}. Use labels.long()."
            )
        if len(self.images) != len(self.labels):
            raise ValueError(f"{len(self.images)} images but {len(self.labels)} labels; they must pair up")

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

    def to(self, device: torch.device | str) -> "ImageTensors":
        """A copy on ``device`` (the same object when already there). Moving the uint8 set once to the
        GPU is cheaper than moving every float batch."""
        if torch.device(device) == self.images.device:
            return self
        return ImageTensors(self.images.to(device), self.labels.to(device))

    def subset(self, indices: Sequence[int] | torch.Tensor | slice) -> "ImageTensors":
        """The images at ``indices`` (a slice gives views, indices give copies)."""
        if not isinstance(indices, slice):
            indices = torch.as_tensor(indices, dtype=torch.long, device=self.images.device)
        return ImageTensors(self.images[indices], self.labels[indices])


Batches = Union[ImageTensors, "StreamingImageFolder"]


@dataclass
class DatasetSplits:
    """A data set's train and test parts and its class names (``classes[label]``)."""

    name: str
    train: Batches
    test: Batches
    classes: list[str]

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def in_channels(self) -> int:
        return self.train.num_channels

    @property
    def image_size(self) -> tuple[int, int]:
        return self.train.image_size


def iterate_batches(
    data: Batches,
    batch_size: int,
    *,
    shuffle: bool,
    generator: torch.Generator | None = None,
    drop_last: bool = False,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Yield ``(images_uint8, labels)`` batches of ``data``.

    In order, the batches are slices (views, no copy); shuffled, the order is one permutation drawn from
    ``generator``, so a seeded generator gives the same epoch every run. A streamed image folder is
    iterated by its own ``iterate_batches`` with the same arguments and the same order.
    """
    if batch_size < 1:
        raise ConfigError(f"batch_size must be at least 1; got {batch_size}")
    if not isinstance(data, ImageTensors):
        yield from data.iterate_batches(batch_size, shuffle=shuffle, generator=generator, drop_last=drop_last)
        return
    count = len(data)
    order = torch.randperm(count, generator=generator).to(data.device) if shuffle else None
    stop = count - count % batch_size if drop_last else count
    for start in range(0, stop, batch_size):
        if order is None:
            yield data.images[start : start + batch_size], data.labels[start : start + batch_size]
        else:
            chosen = order[start : start + batch_size]
            yield data.images[chosen], data.labels[chosen]


def convert_channels(images: torch.Tensor, in_channels: int | None) -> torch.Tensor:
    """Grey ↔ RGB for a uint8 (N, C, H, W) batch; ``None`` or the same count returns ``images`` as is.

    Grey → RGB repeats the channel (so an RGB model sees a grey image). RGB → grey takes the ITU-R 601
    luma ``0.299 R + 0.587 G + 0.114 B``, rounded, as Pillow's ``convert("L")`` does.
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
        f"cannot convert {channels}-channel images to {in_channels} channels: only grey (1) ↔ RGB (3) is "
        "supported. Build the model with in_channels equal to the data's channels."
    )


def load_dataset(
    name: str,
    data_dir: str | Path | None = None,
    download: bool = True,
    in_channels: int | None = None,
    *,
    fetch: "Fetch | None" = None,
    image_size: int | None = None,
    holdout_fraction: float = 0.2,
    split_seed: int = 0,
    memory_budget_bytes: int | None = None,
    num_workers: int | None = None,
) -> DatasetSplits:
    """Load ``fashion-mnist``, ``mnist``, ``cifar10``, ``cifar100`` or ``folder:PATH``.

    The built-in sets are found as ``sources.find_dataset_files`` describes (and downloaded into the user
    cache when ``download``). ``in_channels`` converts grey ↔ RGB (see ``convert_channels``). The keyword
    arguments after ``*`` apply to image folders only (see ``folder.load_image_folder``): ``image_size``
    (default 224), the held-out split of a folder without train/val sub-folders, the memory budget above
    which the folder is streamed rather than loaded, and the decoding worker count.
    """
    if name.startswith(FOLDER_PREFIX):
        from cnnzoo.data.folder import DEFAULT_MEMORY_BUDGET, load_image_folder

        return load_image_folder(
            name.removeprefix(FOLDER_PREFIX),
            channels=in_channels,
            image_size=image_size,
            holdout_fraction=holdout_fraction,
            seed=split_seed,
            memory_budget_bytes=DEFAULT_MEMORY_BUDGET if memory_budget_bytes is None else memory_budget_bytes,
            num_workers=num_workers,
        )
    get_source(name)  # unknown names fail here, with suggestions, before any file is touched
    arrays = load_arrays(name, data_dir, download=download, fetch=fetch)
    return splits_from_arrays(arrays, in_channels)


def splits_from_arrays(arrays: ArraySplits, in_channels: int | None = None) -> DatasetSplits:
    """Wrap NumPy splits as tensors (sharing their memory where no conversion is needed)."""

    def tensors(images, labels) -> ImageTensors:
        images = convert_channels(torch.from_numpy(images).contiguous(), in_channels)
        return ImageTensors(images, torch.from_numpy(labels).long())

    return DatasetSplits(
        name=arrays.name,
        train=tensors(arrays.train_images, arrays.train_labels),
        test=tensors(arrays.test_images, arrays.test_labels),
        classes=list(arrays.classes),
    )


__all__ = [
    "DatasetSplits",
    "ImageTensors",
    "LUMA_WEIGHTS",
    "convert_channels",
    "iterate_batches",
    "load_dataset",
    "splits_from_arrays",
]
