"""A minimal Fashion-MNIST reader for the scratch demos (NumPy only).

Temporary: to be replaced by ``cnnzoo.data.idx.read_idx`` once that exists.

The files are in IDX format, gzipped: a big-endian header (a magic number — 2051 for images, 2049 for
labels — then the counts and, for images, rows and columns) followed by unsigned bytes. Image files have a
16-byte header, label files an 8-byte one. We decompress only the prefix we need, so taking the first
few thousand images costs milliseconds rather than the second a full decompression takes.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

DEFAULT_DIR = "/usr/share/datasets/fashion-mnist"
CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
           "Ankle boot")


def _read_prefix(path: Path, header: int, count_items: int | None, item_bytes: int, magic: int
                 ) -> np.ndarray:
    if not path.exists():
        raise FileNotFoundError(f"Fashion-MNIST file not found: {path} (pass data_dir=... to the folder that "
                                "holds train-images-idx3-ubyte.gz and the other three files)")
    with gzip.open(path, "rb") as f:
        head = f.read(header)
        found_magic, total = int.from_bytes(head[0:4], "big"), int.from_bytes(head[4:8], "big")
        if found_magic != magic:
            raise ValueError(f"{path}: IDX magic number {found_magic}, expected {magic}")
        count = total if count_items is None else min(count_items, total)
        data = f.read(count * item_bytes)
    return np.frombuffer(data, np.uint8)


def load_fashion_mnist(split: str, limit: int | None = None, data_dir: str | Path | None = None
                       ) -> tuple[np.ndarray, np.ndarray]:
    """The first ``limit`` images (uint8, (N, 28, 28)) and labels (int64, (N,)) of ``split`` 'train' or 'test'."""
    prefix = {"train": "train", "test": "t10k"}[split]
    folder = Path(data_dir or DEFAULT_DIR)
    images = _read_prefix(folder / f"{prefix}-images-idx3-ubyte.gz", 16, limit, 28 * 28, 2051)
    labels = _read_prefix(folder / f"{prefix}-labels-idx1-ubyte.gz", 8, limit, 1, 2049)
    return images.reshape(-1, 28, 28), labels.astype(np.int64)
