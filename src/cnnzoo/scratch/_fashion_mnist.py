"""Fashion-MNIST for the scratch demos, as NumPy arrays, through the project's own readers.

``cnnzoo.data.sources.find_dataset_files`` finds the four files (``data_dir``, then
``$CNNZOO_DATA``, Debian's ``/usr/share/datasets/fashion-mnist``, the user cache) and
``cnnzoo.data.idx.read_idx_pair`` parses a pair, decompressing only the first ``limit`` images. Both
are NumPy-only, so this package still never imports torch.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cnnzoo.data.idx import read_idx_pair
from cnnzoo.data.sources import find_dataset_files, get_source, resolve_file
from cnnzoo.errors import ConfigError

DATASET = "fashion-mnist"
CLASSES = get_source(DATASET).classes


def load_fashion_mnist(split: str, limit: int | None = None, data_dir: str | Path | None = None
                       ) -> tuple[np.ndarray, np.ndarray]:
    """The first ``limit`` images (uint8, (N, 28, 28)) and labels (int64, (N,)) of ``split`` 'train'
    or 'test'.

    Raises ``cnnzoo.data.DataFilesMissing`` (saying where it looked and how to get the files) when
    no folder holds them.
    """
    if split not in ("train", "test"):
        raise ConfigError(f"split must be 'train' or 'test'; got {split!r}")
    folder = find_dataset_files(DATASET, data_dir)
    files = get_source(DATASET).files  # train images, train labels, test images, test labels
    images_file, labels_file = files[:2] if split == "train" else files[2:]
    return read_idx_pair(resolve_file(folder, images_file), resolve_file(folder, labels_file),
                         limit=limit)
