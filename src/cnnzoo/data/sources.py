"""Data sets by name: find, fetch, check and parse the built-in ones. NumPy and the standard library
only.

Each data set's files, URLs and checksums are in ``catalogue``; the search order for its files,
downloading and checksum checks are in ``dataset_files``. This module is the way in by name
(``get_source``, ``find_dataset_files``, ``verify_dataset``, ``load_arrays``), and it holds
``DATASETS``, the table every lookup by name reads (tests swap it), so it re-exports the names of
both for its callers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cnnzoo.data import cifar
from cnnzoo.data.catalogue import DATASETS, DEBIAN_DATASETS, DatasetSource, SourceFile
from cnnzoo.data.dataset_files import (
    ENV_DATA_DIR,
    SearchLocation,
    best_missing,
    complete_folder,
    dataset_cache_dir,
    find_files,
    locations_for,
    missing_files,
    resolve_file,
    user_cache_dir,
    verify_file,
)
from cnnzoo.data.download import Fetch
from cnnzoo.data.idx import read_idx_pair
from cnnzoo.errors import DataFilesMissing, DataFormatError, UnknownNameError, suggest


class UnknownDatasetError(UnknownNameError):
    """A data set name that is not one of ours; the message lists the known ones."""


def dataset_names() -> list[str]:
    return list(DATASETS)


def get_source(name: str) -> DatasetSource:
    """The ``DatasetSource`` called ``name``; ``UnknownDatasetError`` with suggestions otherwise."""
    try:
        return DATASETS[name]
    except KeyError:
        hint = suggest(name, DATASETS, count=2)
        raise UnknownDatasetError(
            f"unknown dataset {name!r}.{hint} Known: {', '.join(DATASETS)}, or folder:PATH for a "
            "folder of images with one sub-folder per class."
        ) from None


def search_locations(name: str, data_dir: str | Path | None = None) -> list[SearchLocation]:
    """The folders looked in for ``name``, in order (see ``dataset_files``), without duplicates."""
    return locations_for(get_source(name), data_dir)


def find_dataset_files(
    name: str, data_dir: str | Path | None = None, *, download: bool = False,
                       fetch: Fetch | None = None
) -> Path:
    """The folder holding every file of data set ``name`` (``dataset_files.find_files``: the search
    order, downloading into the user cache when ``download``, ``DataFilesMissing`` saying what to do
    otherwise)."""
    return find_files(get_source(name), data_dir, download=download, fetch=fetch)


# ------------------------------------------------------------------------------------------ reports


def describe_sources(data_dir: str | Path | None = None) -> list[dict]:
    """One entry per data set for ``cnnzoo data list``: where it was found (or None) and which files
    are present or missing there (in the most complete folder when none is complete)."""
    report = []
    for name, spec in DATASETS.items():
        locations = locations_for(spec, data_dir)
        found = complete_folder(spec, locations)
        missing = [] if found is not None else best_missing(spec, locations)
        report.append({
            "name": name,
            "title": spec.title,
            "found": str(found) if found is not None else None,
            "files_present": [f for f in spec.file_names if f not in missing],
            "files_missing": missing,
            "searched": [str(loc.folder) for loc in locations],
            "urls": list(spec.urls),
            "apt_package": spec.apt_package,
            "homepage": spec.homepage,
        })
    return report


def verify_dataset(name: str, data_dir: str | Path | None = None) -> dict:
    """Check the files of ``name`` against the published checksums and parse them.

    Each file gets a status: ``"ok"`` (the published file), ``"ok-content"`` (a re-compressed or
    gunzipped copy whose content matches the known content hash), ``"unchecked"`` (no reference
    checksum applies, e.g. a gunzipped MNIST file), ``"mismatch"`` or ``"missing"``. ``"ok"`` in the
    result is true when no file is missing or mismatched and the files parse.
    """
    spec = get_source(name)
    try:
        folder: Path | None = find_dataset_files(name, data_dir)
    except DataFilesMissing:
        folder = None
    files = [verify_file(folder, file) for file in spec.files]
    parse: dict = {"ok": False, "error": "files missing"}
    if folder is not None:
        try:
            arrays = load_arrays(name, folder)
            parse = {
                "ok": True, "error": None, "train": len(arrays.train_labels),
                     "test": len(arrays.test_labels),
                "classes": len(arrays.classes), "image_shape": list(arrays.train_images.shape[1:]),
            }
        except DataFormatError as err:
            parse = {"ok": False, "error": str(err)}
    good = {"ok", "ok-content", "unchecked"}
    return {
        "name": name,
        "folder": str(folder) if folder is not None else None,
        "files": files,
        "parse": parse,
        "ok": folder is not None and parse["ok"] and all(f["status"] in good for f in files),
    }


# ------------------------------------------------------------------------------------------- arrays


@dataclass
class ArraySplits:
    """A data set as NumPy arrays: images (N, C, H, W) uint8, labels (N,) int64, class names."""

    name: str
    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    classes: list[str] = field(default_factory=list)


def load_arrays(
    name: str, data_dir: str | Path | None = None, *, download: bool = False,
                fetch: Fetch | None = None
) -> ArraySplits:
    """Find (and with ``download``, fetch) data set ``name`` and parse it into NumPy arrays, no
    torch."""
    spec = get_source(name)
    folder = find_dataset_files(name, data_dir, download=download, fetch=fetch)
    if spec.kind == "idx":
        paths = [resolve_file(folder, f) for f in spec.files]
        train_images, train_labels = read_idx_pair(paths[0], paths[1])
        test_images, test_labels = read_idx_pair(paths[2], paths[3])
        classes = list(spec.classes)
        for labels, path in ((train_labels, paths[1]), (test_labels, paths[3])):
            _check_label_range(labels, len(classes), path, spec)
        train_images, test_images = train_images[:, None], test_images[:, None]
    else:
        layout = cifar.CIFAR10 if spec.kind == "cifar10" else cifar.CIFAR100
        train_images, train_labels, test_images, test_labels, classes = cifar.read_cifar(
            folder, layout
        )
    return ArraySplits(name, train_images, train_labels, test_images, test_labels, classes)


def _check_label_range(labels: np.ndarray, num_classes: int, labels_path: Path,
                       spec: DatasetSource) -> None:
    if labels.size and labels.max() >= num_classes:
        raise DataFormatError(
            f"{labels_path}: labels must lie in 0..{num_classes - 1} for {spec.name}; found "
            f"{labels.max()}. Is this another data set's file?"
        )


__all__ = [
    "ArraySplits",
    "DATASETS",
    "DEBIAN_DATASETS",
    "ENV_DATA_DIR",
    "DatasetSource",
    "SearchLocation",
    "SourceFile",
    "UnknownDatasetError",
    "dataset_cache_dir",
    "dataset_names",
    "describe_sources",
    "find_dataset_files",
    "get_source",
    "load_arrays",
    "missing_files",
    "resolve_file",
    "search_locations",
    "user_cache_dir",
    "verify_dataset",
]
