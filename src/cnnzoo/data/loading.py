"""``load_dataset``: a data set's name to its ``DatasetSplits``, whichever kind of ``ImageDataset``
it becomes.

The built-in sets (``sources``) are parsed into NumPy arrays and wrapped as ``ImageTensors``; a
``folder:PATH`` goes to ``folder.load_image_folder``, which decodes it into ``ImageTensors`` or,
when too big for memory, streams it as a ``StreamingImageFolder``. This is the one module that knows
both kinds, so neither of them needs to import the other's loader.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import torch

from cnnzoo.data.dataset import DatasetSplits
from cnnzoo.data.folder import load_image_folder
from cnnzoo.data.names import FOLDER_PREFIX
from cnnzoo.data.sources import ArraySplits, get_source, load_arrays
from cnnzoo.data.tensors import ImageTensors, convert_channels

if TYPE_CHECKING:
    from cnnzoo.data.download import Fetch


def load_dataset(
    name: str,
    data_dir: str | Path | None = None,
    download: bool = True,
    in_channels: int | None = None,
    *,
    fetch: Fetch | None = None,
    image_size: int | None = None,
    holdout_fraction: float = 0.2,
    split_seed: int = 0,
    memory_budget_bytes: int | None = None,
    num_workers: int | None = None,
) -> DatasetSplits:
    """Load ``fashion-mnist``, ``mnist``, ``cifar10``, ``cifar100`` or ``folder:PATH``.

    The built-in sets are found as ``sources.find_dataset_files`` describes (and downloaded into the
    user cache when ``download``). ``in_channels`` converts grey ↔ RGB (see
    ``tensors.convert_channels``). The keyword arguments after ``*`` apply to image folders only
    (see ``folder.load_image_folder``): ``image_size`` (default 224), the held-out split of a folder
    without train/val sub-folders, the memory budget above which the folder is streamed rather than
    loaded (default ``folder.DEFAULT_MEMORY_BUDGET``; 0 always streams), and the decoding worker
    count.
    """
    if name.startswith(FOLDER_PREFIX):
        return load_image_folder(
            name.removeprefix(FOLDER_PREFIX),
            channels=in_channels,
            image_size=image_size,
            holdout_fraction=holdout_fraction,
            seed=split_seed,
            memory_budget_bytes=memory_budget_bytes,
            num_workers=num_workers,
        )
    get_source(name)  # unknown names fail here, with suggestions, before any file is touched
    arrays = load_arrays(name, data_dir, download=download, fetch=fetch)
    return splits_from_arrays(arrays, in_channels)


def splits_from_arrays(arrays: ArraySplits, in_channels: int | None = None) -> DatasetSplits:
    """Wrap NumPy splits as ``ImageTensors`` (sharing their memory where no conversion is
    needed)."""

    def tensors(images, labels) -> ImageTensors:
        images = convert_channels(torch.from_numpy(images).contiguous(), in_channels)
        return ImageTensors(images, torch.from_numpy(labels).long())

    return DatasetSplits(
        name=arrays.name,
        train=tensors(arrays.train_images, arrays.train_labels),
        test=tensors(arrays.test_images, arrays.test_labels),
        classes=list(arrays.classes),
    )


__all__ = ["FOLDER_PREFIX", "load_dataset", "splits_from_arrays"]
