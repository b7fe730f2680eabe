"""Shared fixtures: small datasets written in the real file formats, so no test needs the network."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cnnzoo.data.idx import write_idx

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


@pytest.fixture(scope="session")
def tiny_mnist_dir(tmp_path_factory) -> Path:
    """A learnable MNIST-format dataset: 10 classes, each a bright square at its own place on a dark image."""
    root = tmp_path_factory.mktemp("tiny-mnist")
    rng = np.random.default_rng(0)

    def make(count: int) -> tuple[np.ndarray, np.ndarray]:
        labels = rng.integers(0, 10, count).astype(np.uint8)
        images = rng.integers(0, 40, (count, 28, 28)).astype(np.uint8)
        for image, label in zip(images, labels):
            row, col = divmod(int(label), 5)
            image[4 + row * 12: 12 + row * 12, 2 + col * 5: 6 + col * 5] = 220
        return images, labels

    for prefix, count in (("train", 600), ("t10k", 200)):
        images, labels = make(count)
        write_idx(root / f"{prefix}-images-idx3-ubyte.gz", images, compress=True)
        write_idx(root / f"{prefix}-labels-idx1-ubyte.gz", labels, compress=True)
    return root


@pytest.fixture(scope="session")
def fashion_mnist_dir() -> Path:
    """The real Fashion-MNIST from Debian's dataset-fashion-mnist (`make test` installs it); skip without it."""
    if not all((FASHION_MNIST_DIR / f"{name}.gz").is_file() for name in FILES):
        pytest.skip("Debian's dataset-fashion-mnist is not installed (apt-get install dataset-fashion-mnist)")
    return FASHION_MNIST_DIR
