"""Finding, fetching and checking one data set's files, given its ``catalogue.DatasetSource``. No
torch.

Lookup order, first folder holding every file wins (``locations_for`` lists it):

1. the ``data_dir`` argument (``--data-dir``), as ``<dir>`` and ``<dir>/<name>``;
2. ``$CNNZOO_DATA`` (several folders may be joined with ``os.pathsep``), the same two ways;
3. the system copy a Debian package installs (``apt-get install dataset-fashion-mnist`` puts
   Fashion-MNIST in ``/usr/share/datasets/fashion-mnist``);
4. the user cache, ``$XDG_CACHE_HOME/cnnzoo/<name>`` or ``~/.cache/cnnzoo/<name>``, where downloads
   go.

For CIFAR each of those folders may also hold the archive's own folder (``cifar-10-batches-py``), so
an archive unpacked anywhere on the list is found as it is.

Everything here takes the ``DatasetSource`` itself; ``sources`` offers the same by data set name.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from cnnzoo.data.catalogue import DatasetSource, SourceFile
from cnnzoo.data.download import Fetch, download_first_working, extract_tar_members, file_digest
from cnnzoo.data.idx import is_gzip
from cnnzoo.errors import ChecksumMismatch, DataFilesMissing, DataFormatError

ENV_DATA_DIR = "CNNZOO_DATA"


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


def locations_for(spec: DatasetSource, data_dir: str | Path | None = None) -> list[SearchLocation]:
    """The folders looked in for ``spec``, in order (see the module docstring), without
    duplicates."""
    name = spec.name
    bases: list[tuple[Path, str, bool]] = []  # folder, why, whether <folder>/<name> is also tried
    if data_dir is not None:
        bases.append((Path(data_dir).expanduser(), "--data-dir", True))
    for entry in os.environ.get(ENV_DATA_DIR, "").split(os.pathsep):
        if entry:
            bases.append((Path(entry).expanduser(), f"${ENV_DATA_DIR}", True))
    for system_dir in spec.system_dirs:
        bases.append((system_dir,
                      f"Debian package {spec.apt_package}" if spec.apt_package else "system",
                      False))
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
    """The path of ``file`` in ``folder``, accepting ``name.gz`` gunzipped to ``name``; None if
    absent."""
    name = file.name if isinstance(file, SourceFile) else file
    for candidate in (name, name.removesuffix(".gz")):
        path = folder / candidate
        if path.is_file():
            return path
    return None


def missing_files(spec: DatasetSource, folder: Path) -> list[str]:
    return [f.name for f in spec.files if resolve_file(folder, f) is None]


def complete_folder(spec: DatasetSource, locations: list[SearchLocation]) -> Path | None:
    """The first of ``locations`` that holds every file of ``spec``; None when none does."""
    return next(
        (
            loc.folder
            for loc in locations
            if loc.folder.is_dir() and not missing_files(spec, loc.folder)
        ),
        None,
    )


def find_files(
    spec: DatasetSource, data_dir: str | Path | None = None, *, download: bool = False,
               fetch: Fetch | None = None
) -> Path:
    """The folder holding every file of ``spec``, searched in the documented order.

    When none has them and ``download`` is true, they are downloaded from the official URLs into the
    user cache, checksums verified (``fetch(url, path)`` does the transfer; tests pass their own).
    Raises ``DataFilesMissing`` (which files, where we looked, how to provide them) when they cannot
    be had, and ``ChecksumMismatch`` when a download arrived but was not the published file.
    """
    if data_dir is not None and not Path(data_dir).expanduser().is_dir():
        raise DataFilesMissing(
            f"data files not found: --data-dir {data_dir} is not a folder; give the folder that "
            f"holds {spec.name}'s files, or leave --data-dir out to search the usual places",
            missing=spec.file_names,
            searched=[Path(data_dir)],
        )
    locations = locations_for(spec, data_dir)
    found = complete_folder(spec, locations)
    if found is not None:
        return found
    failures: list[str] = []
    if download:
        folder, failures = _download(spec, fetch)
        if folder is not None:
            return folder
    raise DataFilesMissing(
        _missing_message(spec, locations, failures, tried_download=download),
        missing=best_missing(spec, locations),
        searched=[location.folder for location in locations],
    )


def best_missing(spec: DatasetSource, locations: list[SearchLocation]) -> list[str]:
    """The missing files of the most complete folder found (all files when no folder had any)."""
    best = spec.file_names
    for location in locations:
        if location.folder.is_dir():
            missing = missing_files(spec, location.folder)
            if len(missing) < len(best):
                best = missing
    return best


def _missing_message(
    spec: DatasetSource, locations: list[SearchLocation], failures: list[str], *,
                     tried_download: bool
) -> str:
    missing = best_missing(spec, locations)
    lines = [f"{spec.name}: data files not found. Missing: {', '.join(missing)}.",
             "Looked in, in order:"]
    for location in locations:
        if not location.folder.is_dir():
            state = "no such folder"
        else:
            absent = missing_files(spec, location.folder)
            state = (
                "no data files"
                if len(absent) == len(spec.files)
                else f"missing {', '.join(absent)}"
            )
        lines.append(f"  {location.folder}  ({location.why}: {state})")
    if failures:
        lines.append("The download failed:")
        lines.extend(f"  {failure}" for failure in failures)
    lines.append("Provide them in one of these ways:")
    layouts = [f"DIR/{spec.name}/"] + (
        [f"DIR/{spec.archive_folder}/"] if spec.archive_folder else []
    )
    lines.append("  - pass --data-dir DIR, a folder holding these files (or holding them in "
                 f"{' or '.join(layouts)})")
    lines.append(f"  - set {ENV_DATA_DIR}=DIR in the environment (same layout)")
    if spec.apt_package:
        lines.append(f"  - sudo apt-get install {spec.apt_package}  (installs them to "
                     f"{spec.system_dirs[0]})")
    sources = spec.urls if spec.archive else [url + spec.file_names[0] for url in spec.urls[:1]]
    what = (
        f"the archive {sources[0]} and unpack it"
        if spec.archive
        else f"the files from {spec.urls[0]} (e.g. {sources[0]})"
    )
    lines.append(f"  - download {what} into {dataset_cache_dir(spec.name)}")
    if not tried_download:
        lines.append("  - or allow downloading (download=True), which fetches them there and "
                     "checks their MD5s")
    return "\n".join(lines)


def _download(spec: DatasetSource, fetch: Fetch | None) -> tuple[Path | None, list[str]]:
    target = dataset_cache_dir(spec.name)
    if spec.archive is not None:
        return _download_archive(spec, target, fetch)
    failures: list[str] = []
    for file in spec.files:
        if resolve_file(target, file) is not None:
            continue
        path, attempts = download_first_working((url + file.name for url in spec.urls),
                                                target / file.name, file.md5, fetch)
        failures.extend(attempts)
        if path is None:
            return None, failures
    return target, failures


def _download_archive(
    spec: DatasetSource, target: Path, fetch: Fetch | None
) -> tuple[Path | None, list[str]]:
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
                raise DataFormatError(f"{archive_path}: the archive has no "
                                      f"{spec.archive_folder}/{file.name}; download it again")
            if file.md5 is not None and (digest := file_digest(found)) != file.md5:
                raise ChecksumMismatch(f"{found}: MD5 {digest}, expected {file.md5}; the archive "
                                       "is not the official one")
    except DataFormatError:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    finally:
        archive_path.unlink(missing_ok=True)  # unpacked (or useless): no need to keep 170 MB around
    return folder, failures


# ----------------------------------------------------------------------------------------- checking


def verify_file(folder: Path | None, file: SourceFile) -> dict:
    """One entry of ``sources.verify_dataset``'s report: ``file``'s path in ``folder``, its MD5 and
    status."""
    path = resolve_file(folder, file) if folder is not None else None
    entry = {"file": file.name, "path": str(path) if path else None, "expected_md5": file.md5,
             "md5": None}
    if path is None:
        return {**entry, "status": "missing", "detail": "not found"}
    entry["md5"] = file_digest(path)
    if file.md5 is not None and entry["md5"] == file.md5:
        return {**entry, "status": "ok", "detail": "matches the published MD5"}
    if file.content_sha256 is not None:
        content = _content_sha256(path)
        if content == file.content_sha256:
            return {**entry, "status": "ok-content", "detail": "re-compressed copy; its content "
                                                               "matches the official"}
        return {**entry, "status": "mismatch", "detail": f"content SHA-256 {content}, expected "
                                                         f"{file.content_sha256}"}
    if path.name != file.name:  # gunzipped copy: the published MD5 is of the .gz
        return {**entry, "status": "unchecked", "detail": "uncompressed copy; the published MD5 "
                                                          "is of the .gz file"}
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


__all__ = [
    "ENV_DATA_DIR",
    "SearchLocation",
    "best_missing",
    "complete_folder",
    "dataset_cache_dir",
    "find_files",
    "locations_for",
    "missing_files",
    "resolve_file",
    "user_cache_dir",
    "verify_file",
]
