"""Where a folder's images are: ``PATH/train`` and ``PATH/val`` (or ``validation``, ``test``)
with one sub-folder per class, or ``PATH/<class>`` with a stratified, seeded hold-out; the files
and their labels in a fixed order (class, then path), before any image is opened."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cnnzoo.errors import ConfigError, DataFilesMissing, DataFormatError

DEFAULT_HOLDOUT_FRACTION = 0.2
IMAGE_EXTENSIONS = frozenset({".bmp", ".gif", ".jpeg", ".jpg", ".pgm", ".png", ".ppm", ".tif",
                              ".tiff", ".webp"})
HELD_OUT_FOLDER_NAMES = ("val", "validation", "test")


@dataclass(frozen=True)
class FileList:
    """Image files and their labels, in a fixed order (class, then path)."""

    files: tuple[Path, ...]
    labels: tuple[int, ...]

    def __len__(self) -> int:
        return len(self.files)


@dataclass(frozen=True)
class FolderLayout:
    root: Path
    classes: list[str]
    train: FileList
    test: FileList
    # "val", "test"…: the folder the test set came from; None: split by fraction
    held_out_from: str | None


def scan_image_folder(
    root: str | Path, holdout_fraction: float = DEFAULT_HOLDOUT_FRACTION, seed: int = 0
) -> FolderLayout:
    """Find classes and image files under ``root`` (layouts in the module docstring).

    Without train/val sub-folders, ``holdout_fraction`` of each class (rounded, at least one image
    of any class with two or more, never all of them) goes to the test set, chosen by a NumPy
    generator seeded with ``seed``: the same seed gives the same split on every machine. A fraction
    of 1 holds out everything (a folder to evaluate on, not to train on).
    """
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DataFilesMissing(
            f"{root}: no such folder. folder:PATH needs a folder with one sub-folder of images per "
            "class (PATH/<class>/*.png), or PATH/train/<class>/ and PATH/val/<class>/",
            missing=[str(root)],
        )
    if not 0 <= holdout_fraction <= 1:
        raise ConfigError(f"holdout_fraction must be in [0, 1]; got {holdout_fraction}")
    train_dir = root / "train"
    held_out_dir = next((root / n for n in HELD_OUT_FOLDER_NAMES if (root / n).is_dir()), None)
    if train_dir.is_dir() and held_out_dir is not None:
        classes = _class_folders(train_dir)
        train = _list_files(train_dir, classes, require_every_class=True)
        unknown = sorted(set(_class_folders(held_out_dir, allow_none=True)) - set(classes))
        if unknown:
            raise DataFormatError(
                f"{held_out_dir}: class folders {unknown} have no counterpart in {train_dir}; a "
                "model cannot learn a class it never trains on. Add them to train/ or remove them"
            )
        test = _list_files(held_out_dir, classes, require_every_class=False)
        return FolderLayout(root, classes, train, test, held_out_dir.name)
    classes = _class_folders(root)
    everything = _list_files(root, classes, require_every_class=True)
    train, test = _stratified_split(everything, len(classes), holdout_fraction, seed)
    return FolderLayout(root, classes, train, test, None)


def _class_folders(folder: Path, allow_none: bool = False) -> list[str]:
    names = sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not names and not allow_none:
        raise DataFormatError(
            f"{folder}: no class sub-folders. Put each class's images in its own sub-folder "
            f"({folder}/<class>/<image>.png); the folder names become the class names"
        )
    return names


def _list_files(folder: Path, classes: list[str], *, require_every_class: bool) -> FileList:
    files: list[Path] = []
    labels: list[int] = []
    for label, name in enumerate(classes):
        class_dir = folder / name
        found = sorted(
            p for p in class_dir.rglob("*")
            if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file() and not p.name.startswith(".")
        ) if class_dir.is_dir() else []
        if not found and require_every_class:
            raise DataFormatError(
                f"{class_dir}: no image files ({', '.join(sorted(IMAGE_EXTENSIONS))}); add images "
                f"of class {name!r} or remove the folder"
            )
        files.extend(found)
        labels.extend([label] * len(found))
    return FileList(tuple(files), tuple(labels))


def _stratified_split(
    everything: FileList, num_classes: int, fraction: float, seed: int
) -> tuple[FileList, FileList]:
    if fraction == 1:
        return FileList((), ()), everything
    rng = np.random.default_rng(seed)
    labels = np.asarray(everything.labels)
    held_out = np.zeros(len(labels), dtype=bool)
    for label in range(num_classes):
        members = np.flatnonzero(labels == label)
        count = int(round(len(members) * fraction))
        if fraction > 0 and len(members) >= 2:
            count = min(max(count, 1), len(members) - 1)
        held_out[rng.permutation(members)[:count]] = True

    def pick(mask: np.ndarray) -> FileList:
        chosen = np.flatnonzero(mask)
        return FileList(tuple(everything.files[i] for i in chosen),
                        tuple(everything.labels[i] for i in chosen))

    return pick(~held_out), pick(held_out)
