"""Where each data set's files come from, where we look for them, and how we check them. NumPy/stdlib only.

Lookup order, first folder holding every file wins (``search_locations`` lists it):

1. the ``data_dir`` argument (``--data-dir``), as ``<dir>`` and ``<dir>/<name>``;
2. ``$CNNZOO_DATA`` (several folders may be joined with ``os.pathsep``), the same two ways;
3. the system copy a Debian package installs (``apt-get install dataset-fashion-mnist`` puts
   Fashion-MNIST in ``/usr/share/datasets/fashion-mnist``);
4. the user cache, ``$XDG_CACHE_HOME/cnnzoo/<name>`` or ``~/.cache/cnnzoo/<name>``, where downloads go.

For CIFAR each of those folders may also hold the archive's own folder (``cifar-10-batches-py``), so an
archive unpacked anywhere on the list is found as it is.

Checksums. The MD5s are those the data sets publish for their files (the Fashion-MNIST README, the CIFAR
page) and that torchvision's dataset classes check, for MNIST the same. Fashion-MNIST also carries the
SHA-256 of each *decompressed* IDX file: Debian's package re-gzips the upstream files (its .gz lack the
stored file name, so their MD5 differs from the published one) while the content is the upstream content;
those SHA-256s were computed from the package ``dataset-fashion-mnist 0.0~git20200523.55506a9-1``, and let
``verify_dataset`` accept a re-compressed or gunzipped copy.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cnnzoo.data import cifar
from cnnzoo.data.download import Fetch, download_first_working, extract_tar_members, file_digest
from cnnzoo.errors import ChecksumMismatch, DataFilesMissing, DataFormatError, UnknownNameError, suggest
from cnnzoo.data.idx import is_gzip, read_idx_pair

ENV_DATA_DIR = "CNNZOO_DATA"
DEBIAN_DATASETS = Path("/usr/share/datasets")


class UnknownDatasetError(UnknownNameError):
    """A data set name that is not one of ours; the message lists the known ones."""


@dataclass(frozen=True)
class SourceFile:
    """One published file: its name and checksums (``None`` when none is published)."""

    name: str
    md5: str | None
    content_sha256: str | None = None  # of the decompressed content, for .gz files


@dataclass(frozen=True)
class DatasetSource:
    """Everything needed to find, fetch and check one data set's files."""

    name: str
    title: str
    kind: str  # "idx" (MNIST family: four IDX files) or "cifar10" / "cifar100" (pickle batches)
    files: tuple[SourceFile, ...]  # the files the loader reads, all in one folder
    urls: tuple[str, ...]  # idx: base URLs, a file name is appended; cifar: the archive's URLs; in order
    classes: tuple[str, ...] = ()  # idx only: CIFAR's names are in its meta file
    archive: SourceFile | None = None  # cifar: the .tar.gz the files come in
    archive_folder: str | None = None  # cifar: the folder the archive unpacks to
    system_dirs: tuple[Path, ...] = ()
    apt_package: str | None = None
    homepage: str = ""
    image_shape: tuple[int, int, int] = (1, 28, 28)

    @property
    def file_names(self) -> list[str]:
        return [f.name for f in self.files]


def _idx_files(md5s: dict[str, str], content_sha256: dict[str, str] | None = None) -> tuple[SourceFile, ...]:
    content_sha256 = content_sha256 or {}
    return tuple(SourceFile(name, md5, content_sha256.get(name)) for name, md5 in md5s.items())


# Order matters: train images, train labels, test images, test labels.
_FASHION_MNIST_MD5 = {
    "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
    "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
    "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
    "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
}
_FASHION_MNIST_CONTENT_SHA256 = {
    "train-images-idx3-ubyte.gz": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
    "train-labels-idx1-ubyte.gz": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
    "t10k-images-idx3-ubyte.gz": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
    "t10k-labels-idx1-ubyte.gz": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
}
_MNIST_MD5 = {
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}

DATASETS: dict[str, DatasetSource] = {
    "fashion-mnist": DatasetSource(
        name="fashion-mnist",
        title="Fashion-MNIST (Zalando, 2017): 28×28 grey clothing images, 10 classes",
        kind="idx",
        files=_idx_files(_FASHION_MNIST_MD5, _FASHION_MNIST_CONTENT_SHA256),
        urls=(
            "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
            "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
        ),
        classes=("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                 "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
        system_dirs=(DEBIAN_DATASETS / "fashion-mnist",),
        apt_package="dataset-fashion-mnist",
        homepage="https://github.com/zalandoresearch/fashion-mnist",
    ),
    "mnist": DatasetSource(
        name="mnist",
        title="MNIST (LeCun, Cortes & Burges, 1998): 28×28 grey handwritten digits, 10 classes",
        kind="idx",
        files=_idx_files(_MNIST_MD5),
        urls=("http://yann.lecun.com/exdb/mnist/", "https://ossci-datasets.s3.amazonaws.com/mnist/"),
        classes=tuple(str(digit) for digit in range(10)),
        homepage="http://yann.lecun.com/exdb/mnist/",
    ),
    "cifar10": DatasetSource(
        name="cifar10",
        title="CIFAR-10 (Krizhevsky, 2009): 32×32 colour images, 10 classes",
        kind="cifar10",
        files=(
            SourceFile("data_batch_1", "c99cafc152244af753f735de768cd75f"),
            SourceFile("data_batch_2", "d4bba439e000b95fd0a9bffe97cbabec"),
            SourceFile("data_batch_3", "54ebc095f3ab1f0389bbae665268c751"),
            SourceFile("data_batch_4", "634d18415352ddfa80567beed471001a"),
            SourceFile("data_batch_5", "482c414d41f54cd18b22e5b47cb7c3cb"),
            SourceFile("test_batch", "40351d587109b95175f43aff81a1287e"),
            SourceFile("batches.meta", "5ff9c542aee3614f3951f8cda6e48888"),
        ),
        urls=("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",),
        archive=SourceFile("cifar-10-python.tar.gz", "c58f30108f718f92721af3b95e74349a"),
        archive_folder="cifar-10-batches-py",
        homepage="https://www.cs.toronto.edu/~kriz/cifar.html",
        image_shape=(3, 32, 32),
    ),
    "cifar100": DatasetSource(
        name="cifar100",
        title="CIFAR-100 (Krizhevsky, 2009): 32×32 colour images, 100 fine classes",
        kind="cifar100",
        files=(
            SourceFile("train", "16019d7e3df5f24257cddd939b257f8d"),
            SourceFile("test", "f0ef6b0ae62326f3e7ffdfab6717acfc"),
            SourceFile("meta", "7973b15100ade9c7d40fb424638fde48"),
        ),
        urls=("https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",),
        archive=SourceFile("cifar-100-python.tar.gz", "eb9058c3a382ffc7106e4002c42a8d85"),
        archive_folder="cifar-100-python",
        homepage="https://www.cs.toronto.edu/~kriz/cifar.html",
        image_shape=(3, 32, 32),
    ),
}


def dataset_names() -> list[str]:
    return list(DATASETS)


def get_source(name: str) -> DatasetSource:
    """The ``DatasetSource`` called ``name``; ``UnknownDatasetError`` with suggestions otherwise."""
    try:
        return DATASETS[name]
    except KeyError:
        hint = suggest(name, DATASETS, count=2)
        raise UnknownDatasetError(
            f"unknown dataset {name!r}.{hint} Known: {', '.join(DATASETS)}, or folder:PATH for a folder of images "
            "with one sub-folder per class."
        ) from None


def user_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/cnnzoo`` (when set to an absolute path), else ``~/.cache/cnnzoo``."""
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    base = Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".cache"
    return base / "cnnzoo"


def dataset_cache_dir(name: str) -> Path:
    return user_cache_dir() / name


@dataclass(frozen=True)
class SearchLocation:
    folder: Path
    why: str  # which rule put it on the list, for the "where we looked" message


def search_locations(name: str, data_dir: str | Path | None = None) -> list[SearchLocation]:
    """The folders looked in for ``name``, in order (see the module docstring), without duplicates."""
    spec = get_source(name)
    bases: list[tuple[Path, str, bool]] = []  # folder, why, whether <folder>/<name> is also tried
    if data_dir is not None:
        bases.append((Path(data_dir).expanduser(), "--data-dir", True))
    for entry in os.environ.get(ENV_DATA_DIR, "").split(os.pathsep):
        if entry:
            bases.append((Path(entry).expanduser(), f"${ENV_DATA_DIR}", True))
    for system_dir in spec.system_dirs:
        bases.append((system_dir, f"Debian package {spec.apt_package}" if spec.apt_package else "system", False))
    bases.append((dataset_cache_dir(name), "user cache", False))

    locations: list[SearchLocation] = []
    seen: set[Path] = set()
    for base, why, with_name in bases:
        folders = [base, base / name] if with_name else [base]
        if spec.archive_folder:
            folders = [f for folder in folders for f in (folder, folder / spec.archive_folder)]
        for folder in folders:
            if folder not in seen:
                seen.add(folder)
                locations.append(SearchLocation(folder, why))
    return locations


def resolve_file(folder: Path, file: SourceFile | str) -> Path | None:
    """The path of ``file`` in ``folder``, accepting ``name.gz`` gunzipped to ``name``; None if absent."""
    name = file.name if isinstance(file, SourceFile) else file
    for candidate in (name, name.removesuffix(".gz")):
        path = folder / candidate
        if path.is_file():
            return path
    return None


def missing_files(spec: DatasetSource, folder: Path) -> list[str]:
    return [f.name for f in spec.files if resolve_file(folder, f) is None]


def find_dataset_files(
    name: str, data_dir: str | Path | None = None, *, download: bool = False, fetch: Fetch | None = None
) -> Path:
    """The folder holding every file of data set ``name``, searched in the documented order.

    When none has them and ``download`` is true, they are downloaded from the official URLs into the
    user cache, checksums verified (``fetch(url, path)`` does the transfer; tests pass their own). Raises
    ``DataFilesMissing`` (which files, where we looked, how to provide them) when they cannot be had, and
    ``ChecksumMismatch`` when a download arrived but was not the published file.
    """
    spec = get_source(name)
    locations = search_locations(name, data_dir)
    for location in locations:
        if location.folder.is_dir() and not missing_files(spec, location.folder):
            return location.folder
    failures: list[str] = []
    if download:
        folder, failures = _download(spec, fetch)
        if folder is not None:
            return folder
    raise DataFilesMissing(
        _missing_message(spec, locations, failures, tried_download=download),
        missing=_best_missing(spec, locations),
        searched=[location.folder for location in locations],
    )


def _best_missing(spec: DatasetSource, locations: list[SearchLocation]) -> list[str]:
    """The missing files of the most complete folder found (all files when no folder had any)."""
    best = spec.file_names
    for location in locations:
        if location.folder.is_dir():
            missing = missing_files(spec, location.folder)
            if len(missing) < len(best):
                best = missing
    return best


def _missing_message(
    spec: DatasetSource, locations: list[SearchLocation], failures: list[str], *, tried_download: bool
) -> str:
    missing = _best_missing(spec, locations)
    lines = [f"{spec.name}: data files not found. Missing: {', '.join(missing)}.", "Looked in, in order:"]
    for location in locations:
        if not location.folder.is_dir():
            state = "no such folder"
        else:
            absent = missing_files(spec, location.folder)
            state = "no data files" if len(absent) == len(spec.files) else f"missing {', '.join(absent)}"
        lines.append(f"  {location.folder}  ({location.why}: {state})")
    if failures:
        lines.append("The download failed:")
        lines.extend(f"  {failure}" for failure in failures)
    lines.append("Provide them in one of these ways:")
    layouts = [f"DIR/{spec.name}/"] + ([f"DIR/{spec.archive_folder}/"] if spec.archive_folder else [])
    lines.append(f"  - pass --data-dir DIR, a folder holding these files (or holding them in {' or '.join(layouts)})")
    lines.append(f"  - set {ENV_DATA_DIR}=DIR in the environment (same layout)")
    if spec.apt_package:
        lines.append(f"  - sudo apt-get install {spec.apt_package}  (installs them to {spec.system_dirs[0]})")
    sources = spec.urls if spec.archive else [url + spec.file_names[0] for url in spec.urls[:1]]
    what = f"the archive {sources[0]} and unpack it" if spec.archive else f"the files from {spec.urls[0]} (e.g. {sources[0]})"
    lines.append(f"  - download {what} into {dataset_cache_dir(spec.name)}")
    if not tried_download:
        lines.append("  - or allow downloading (download=True), which fetches them there and checks their MD5s")
    return "\n".join(lines)


def _download(spec: DatasetSource, fetch: Fetch | None) -> tuple[Path | None, list[str]]:
    target = dataset_cache_dir(spec.name)
    if spec.archive is not None:
        return _download_archive(spec, target, fetch)
    failures: list[str] = []
    for file in spec.files:
        if resolve_file(target, file) is not None:
            continue
        path, attempts = download_first_working((url + file.name for url in spec.urls), target / file.name, file.md5, fetch)
        failures.extend(attempts)
        if path is None:
            return None, failures
    return target, failures


def _download_archive(spec: DatasetSource, target: Path, fetch: Fetch | None) -> tuple[Path | None, list[str]]:
    assert spec.archive is not None and spec.archive_folder is not None
    archive_path = target / spec.archive.name
    path, failures = download_first_working(spec.urls, archive_path, spec.archive.md5, fetch)
    if path is None:
        return None, failures
    folder = target / spec.archive_folder
    try:
        extract_tar_members(archive_path, spec.archive_folder, target)
        for file in spec.files:
            found = resolve_file(folder, file)
            if found is None:
                raise DataFormatError(f"{archive_path}: the archive has no {spec.archive_folder}/{file.name}; download it again")
            if file.md5 is not None and (digest := file_digest(found)) != file.md5:
                raise ChecksumMismatch(f"{found}: MD5 {digest}, expected {file.md5}; the archive is not the official one")
    except DataFormatError:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    finally:
        archive_path.unlink(missing_ok=True)  # unpacked (or useless): no need to keep 170 MB around
    return folder, failures


# ------------------------------------------------------------------------------------------------ reports


def describe_sources(data_dir: str | Path | None = None) -> list[dict]:
    """One entry per data set for ``cnnzoo data list``: where it was found (or None) and which files are
    present or missing there (in the most complete folder when none is complete)."""
    report = []
    for name, spec in DATASETS.items():
        locations = search_locations(name, data_dir)
        found = next(
            (loc.folder for loc in locations if loc.folder.is_dir() and not missing_files(spec, loc.folder)), None
        )
        missing = [] if found is not None else _best_missing(spec, locations)
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

    Each file gets a status: ``"ok"`` (the published file), ``"ok-content"`` (a re-compressed or gunzipped
    copy whose content matches the known content hash), ``"unchecked"`` (no reference checksum applies,
    e.g. a gunzipped MNIST file), ``"mismatch"`` or ``"missing"``. ``"ok"`` in the result is true when no
    file is missing or mismatched and the files parse.
    """
    spec = get_source(name)
    try:
        folder: Path | None = find_dataset_files(name, data_dir)
    except DataFilesMissing:
        folder = None
    files = [_verify_file(folder, file) for file in spec.files]
    parse: dict = {"ok": False, "error": "files missing"}
    if folder is not None:
        try:
            arrays = load_arrays(name, folder)
            parse = {
                "ok": True, "error": None, "train": len(arrays.train_labels), "test": len(arrays.test_labels),
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


def _verify_file(folder: Path | None, file: SourceFile) -> dict:
    path = resolve_file(folder, file) if folder is not None else None
    entry = {"file": file.name, "path": str(path) if path else None, "expected_md5": file.md5, "md5": None}
    if path is None:
        return {**entry, "status": "missing", "detail": "not found"}
    entry["md5"] = file_digest(path)
    if file.md5 is not None and entry["md5"] == file.md5:
        return {**entry, "status": "ok", "detail": "matches the published MD5"}
    if file.content_sha256 is not None:
        content = _content_sha256(path)
        if content == file.content_sha256:
            return {**entry, "status": "ok-content", "detail": "re-compressed copy; its content matches the official"}
        return {**entry, "status": "mismatch", "detail": f"content SHA-256 {content}, expected {file.content_sha256}"}
    if path.name != file.name:  # gunzipped copy: the published MD5 is of the .gz
        return {**entry, "status": "unchecked", "detail": "uncompressed copy; the published MD5 is of the .gz file"}
    return {**entry, "status": "mismatch", "detail": f"MD5 {entry['md5']}, expected {file.md5}"}


def _content_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    try:
        with (gzip.open(path, "rb") if is_gzip(path) else open(path, "rb")) as stream:
            for chunk in iter(lambda: stream.read(1 << 20), b""):
                digest.update(chunk)
    except (EOFError, OSError):
        return "unreadable (damaged gzip data)"
    return digest.hexdigest()


# ------------------------------------------------------------------------------------------------ arrays


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
    name: str, data_dir: str | Path | None = None, *, download: bool = False, fetch: Fetch | None = None
) -> ArraySplits:
    """Find (and with ``download``, fetch) data set ``name`` and parse it into NumPy arrays, no torch."""
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
        train_images, train_labels, test_images, test_labels, classes = cifar.read_cifar(folder, layout)
    return ArraySplits(name, train_images, train_labels, test_images, test_labels, classes)


def _check_label_range(labels: np.ndarray, num_classes: int, labels_path: Path, spec: DatasetSource) -> None:
    if labels.size and labels.max() >= num_classes:
        raise DataFormatError(
            f"{labels_path}: labels must lie in 0..{num_classes - 1} for {spec.name}; found {labels.max()}. "
            "Is this another data set's file?"
        )


__all__ = [
    "ArraySplits",
    "DATASETS",
    "DatasetSource",
    "SearchLocation",
    "SourceFile",
    "UnknownDatasetError",
    "dataset_names",
    "describe_sources",
    "find_dataset_files",
    "get_source",
    "load_arrays",
    "resolve_file",
    "search_locations",
    "user_cache_dir",
    "verify_dataset",
]
