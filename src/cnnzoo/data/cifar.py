"""Reading the CIFAR-10 and CIFAR-100 "python version" batches, with NumPy only.

The files are Python pickles; ``safe_pickle.safe_load_pickle`` reads them without running
any code they name.

Layout (from https://www.cs.toronto.edu/~kriz/cifar.html): every batch is a dict with bytes keys;
``b'data'`` is an N×3072 uint8 array, each row the 1024 red, then green, then blue values of a 32×32
image in row-major order, so ``reshape(N, 3, 32, 32)`` gives images directly. CIFAR-10 batches hold
``b'labels'`` (10 classes, names in ``batches.meta`` under ``b'label_names'``); CIFAR-100's
``train`` and ``test`` hold ``b'fine_labels'`` (100 classes, names in ``meta`` under
``b'fine_label_names'``) and ``b'coarse_labels'`` (20 superclasses, which we do not use).
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cnnzoo.data.safe_pickle import safe_load_pickle
from cnnzoo.errors import DataFormatError

CIFAR_SIDE = 32
CIFAR_ROW_BYTES = 3 * CIFAR_SIDE * CIFAR_SIDE  # 3072


def read_cifar_batch(
    path: str | Path, label_key: str, num_classes: int
) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, 3, 32, 32) uint8 and labels (N,) int64 from one CIFAR batch file.

    ``label_key`` is ``"labels"`` (CIFAR-10) or ``"fine_labels"`` (CIFAR-100); every label must be
    below ``num_classes``.
    """
    path = Path(path)
    batch = _as_str_keyed_dict(safe_load_pickle(path), path)
    data = _require(batch, "data", path)
    labels = _require(batch, label_key, path)
    if (
        not isinstance(data, np.ndarray)
        or data.dtype != np.uint8
        or data.ndim != 2
        or data.shape[1] != CIFAR_ROW_BYTES
    ):
        shown = (
            f"{data.dtype} array of shape {data.shape}"
            if isinstance(data, np.ndarray)
            else type(data).__name__
        )
        raise DataFormatError(
            f"{path}: 'data' should be an N×{CIFAR_ROW_BYTES} uint8 array (32×32 RGB images); "
            f"found a {shown}. Download the official archive again"
        )
    try:
        labels = np.asarray(labels, dtype=np.int64)
    except (TypeError, ValueError, OverflowError):
        raise DataFormatError(f"{path}: {label_key!r} is not a list of integers; download the "
                              "archive again") from None
    if labels.shape != (len(data),):
        raise DataFormatError(
            f"{path}: {len(data):,} images but {labels.size:,} {label_key!r}; the file is damaged, "
            "download it again"
        )
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise DataFormatError(
            f"{path}: labels must lie in 0..{num_classes - 1}; found values from {labels.min()} to "
            f"{labels.max()}. Is this a CIFAR-100 file in a CIFAR-10 folder (or the other way "
            "round)?"
        )
    images = data.reshape(len(data), 3, CIFAR_SIDE, CIFAR_SIDE)
    return (images if images.flags.writeable else images.copy()), labels


def read_cifar_meta(path: str | Path, key: str) -> list[str]:
    """Class names from a CIFAR meta file: ``key`` is ``"label_names"`` or
    ``"fine_label_names"``."""
    path = Path(path)
    names = _require(_as_str_keyed_dict(safe_load_pickle(path), path), key, path)
    if not isinstance(names, (list, tuple)) or not all(isinstance(n, (bytes, str)) for n in names):
        raise DataFormatError(f"{path}: {key!r} should be a list of class names; download the "
                              "archive again")
    try:
        return [n.decode("utf-8") if isinstance(n, bytes) else n for n in names]
    except UnicodeDecodeError:
        raise DataFormatError(f"{path}: a class name in {key!r} is not UTF-8 text; download it "
                              "again") from None


@dataclass(frozen=True)
class CifarLayout:
    """Which files make up one CIFAR variant, and where its labels and class names live."""

    train_files: tuple[str, ...]
    test_files: tuple[str, ...]
    meta_file: str
    label_key: str
    names_key: str
    num_classes: int


CIFAR10 = CifarLayout(
    train_files=tuple(f"data_batch_{i}" for i in range(1, 6)),
    test_files=("test_batch",),
    meta_file="batches.meta",
    label_key="labels",
    names_key="label_names",
    num_classes=10,
)
CIFAR100 = CifarLayout(
    train_files=("train",),
    test_files=("test",),
    meta_file="meta",
    label_key="fine_labels",
    names_key="fine_label_names",
    num_classes=100,
)


def read_cifar(folder: str | Path, layout: CifarLayout):
    """Read a whole CIFAR folder: ``(train_images, train_labels, test_images, test_labels,
    class_names)``.

    Images are (N, 3, 32, 32) uint8, labels (N,) int64.
    """
    folder = Path(folder)
    classes = read_cifar_meta(folder / layout.meta_file, layout.names_key)
    if len(classes) != layout.num_classes:
        raise DataFormatError(
            f"{folder / layout.meta_file}: expected {layout.num_classes} class names, found "
            f"{len(classes)}; is this the other CIFAR variant's meta file?"
        )
    train = [
        read_cifar_batch(folder / f, layout.label_key, layout.num_classes)
        for f in layout.train_files
    ]
    test = [
        read_cifar_batch(folder / f, layout.label_key, layout.num_classes)
        for f in layout.test_files
    ]
    return (*_concatenate(train), *_concatenate(test), classes)


def write_cifar_batch(
    path: str | Path, images: np.ndarray, labels, label_key: str = "labels", *, protocol: int = 2,
                      **extra
) -> None:
    """Write a batch in the official layout (bytes keys), e.g. to make test data; ``images`` is (N,
    3, 32, 32).

    Protocol 2 is what the official (Python 2) files use; ``extra`` adds entries such as
    ``batch_label``.
    """
    batch = {b"data": np.ascontiguousarray(images, dtype=np.uint8).reshape(len(images), -1),
             label_key.encode(): [int(v) for v in labels]}
    batch.update({k.encode(): v for k, v in extra.items()})
    with open(path, "wb") as stream:
        pickle.dump(batch, stream, protocol=protocol)


def _concatenate(parts: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    if len(parts) == 1:
        return parts[0]
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def _as_str_keyed_dict(obj: object, path: Path) -> dict[str, object]:
    if not isinstance(obj, dict):
        raise DataFormatError(
            f"{path}: expected a pickled dict (the CIFAR batch layout), found "
            f"{type(obj).__name__}; download the official archive again"
        )
    # keys are bytes in the real files; a damaged one may be anything (str() of a huge int even
    # raises)
    return {
        k.decode("latin1")
        if isinstance(k, bytes)
        else k
        if isinstance(k, str)
        else f"<{type(k).__name__}>": v
        for k, v in obj.items()
    }


def _require(batch: dict[str, object], key: str, path: Path) -> object:
    if key not in batch:
        raise DataFormatError(
            f"{path}: no {key!r} entry (it has "
            f"{sorted(batch)[:8]}{'…' if len(batch) > 8 else ''}); this is not the CIFAR file "
            "expected here"
        )
    return batch[key]


__all__ = ["CIFAR10", "CIFAR100", "CifarLayout", "read_cifar", "read_cifar_batch",
           "read_cifar_meta", "write_cifar_batch"]
