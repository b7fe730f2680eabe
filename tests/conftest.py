"""Shared fixtures: small datasets written in the real file formats, so no test needs the network."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cnnzoo.errors import DataFilesMissing
from cnnzoo.data.idx import write_idx
from cnnzoo.data.sources import find_dataset_files


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


def find_fashion_mnist() -> Path | None:
    """Where cnnzoo finds the real Fashion-MNIST (`make test` installs Debian's copy), without downloading."""
    try:
        return find_dataset_files("fashion-mnist")
    except DataFilesMissing:
        return None


SKIP_REASON = "the real Fashion-MNIST is not installed (apt-get install dataset-fashion-mnist)"


@pytest.fixture(scope="session")
def fashion_mnist_dir() -> Path:
    """The directory of the real Fashion-MNIST; the test is skipped without it."""
    found = find_fashion_mnist()
    if found is None:
        pytest.skip(SKIP_REASON)
    return found


def pytest_runtest_setup(item: pytest.Item) -> None:
    """`@pytest.mark.needs_fashion_mnist` skips a test when the real data set is absent."""
    if item.get_closest_marker("needs_fashion_mnist") and find_fashion_mnist() is None:
        pytest.skip(SKIP_REASON)


@pytest.fixture(autouse=True, scope="session")
def tuning_cache_in_a_temporary_directory(tmp_path_factory):
    """The autotuner's cache goes to a temporary directory, never the user's (child processes inherit it)."""
    import os

    from cnnzoo.engine.tuning_cache import CACHE_ENV

    previous = os.environ.get(CACHE_ENV)
    os.environ[CACHE_ENV] = str(tmp_path_factory.mktemp("tuning-cache"))
    yield
    if previous is None:
        os.environ.pop(CACHE_ENV, None)
    else:
        os.environ[CACHE_ENV] = previous
