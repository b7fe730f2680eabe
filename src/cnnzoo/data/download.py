"""Downloading a file safely: into a temporary file, checksum verified, then renamed into place.

A file only ever appears under its real name once its checksum matches, so an interrupted or
tampered download can never be mistaken for data later. The network call itself is a plain function
``fetch(url, destination)`` that callers (and tests) can replace, so nothing here needs the network
to be tested: a ``file://`` URL or a fake ``fetch`` exercises every path.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import tempfile
import urllib.request
from collections.abc import Callable, Iterable
from pathlib import Path, PurePosixPath

from cnnzoo.errors import ChecksumMismatch, DataFormatError
from cnnzoo.files import publish

Fetch = Callable[[str, Path], None]

DOWNLOAD_TIMEOUT_S = 60
_CHUNK = 1 << 20


def urllib_fetch(url: str, destination: Path) -> None:
    """Copy ``url`` (http, https or file) into ``destination``, streaming; raises ``OSError`` on
    failure."""
    request = urllib.request.Request(url, headers={"User-Agent": "cnnzoo"})
    with (
        urllib.request.urlopen(request, timeout=DOWNLOAD_TIMEOUT_S) as response,
        open(destination, "wb") as out,
    ):
        shutil.copyfileobj(response, out, _CHUNK)


def file_digest(path: str | Path, algorithm: str = "md5") -> str:
    """Hex digest of a file's bytes (MD5 is what the data sets publish: integrity, not security)."""
    digest = (
        hashlib.new(algorithm, usedforsecurity=False)
        if algorithm == "md5"
        else hashlib.new(algorithm)
    )
    with open(path, "rb") as stream:
        for chunk in iter(lambda: stream.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def download_verified(url: str, destination: Path, md5: str | None,
                      fetch: Fetch | None = None) -> Path:
    """Download ``url`` to ``destination``, keeping it only if its MD5 is ``md5``.

    The bytes go to a temporary file beside ``destination``; on a checksum mismatch it is deleted
    and ``ChecksumMismatch`` raised, on any other failure it is deleted and the error passes
    through.
    """
    fetch = fetch or urllib_fetch
    destination.parent.mkdir(parents=True, exist_ok=True)
    handle, temp_name = tempfile.mkstemp(prefix=f".{destination.name}.", suffix=".part",
                                         dir=destination.parent)
    os.close(handle)
    temp = Path(temp_name)
    try:
        fetch(url, temp)
        if md5 is not None:
            found = file_digest(temp, "md5")
            if found != md5:
                raise ChecksumMismatch(
                    f"{url}: the downloaded file's MD5 is {found}, expected {md5}; it was not "
                    "kept. The download was damaged or the server sent another file: try again "
                    "later, or get the file another way"
                )
        publish(temp, destination)
    finally:
        temp.unlink(missing_ok=True)
    return destination


def download_first_working(
    urls: Iterable[str], destination: Path, md5: str | None, fetch: Fetch | None = None
) -> tuple[Path | None, list[str]]:
    """Try each mirror in turn; return the path (or None) and one line per failed attempt.

    A checksum mismatch is remembered and re-raised only when no mirror succeeds, so one bad mirror
    does not hide a good one but a bad file is never silently accepted.
    """
    failures: list[str] = []
    mismatch: ChecksumMismatch | None = None
    for url in urls:
        try:
            return download_verified(url, destination, md5, fetch), failures
        except ChecksumMismatch as err:
            mismatch = err
            failures.append(str(err))
        # URLError and HTTPError are OSErrors; ValueError: bad URL
        except (OSError, ValueError) as err:
            failures.append(f"{url}: {err}")
    if mismatch is not None:
        raise mismatch
    return None, failures


def extract_tar_members(archive: Path, folder: str, target: Path) -> list[Path]:
    """Extract the regular files under ``folder/`` from a tar archive into ``target/folder``.

    Written out member by member rather than with ``extractall`` so that nothing outside ``folder``
    (an absolute path, ``..``, a link or a device) can be created, whatever the archive holds.
    """
    written: list[Path] = []
    try:
        with tarfile.open(archive, "r:*") as tar:
            for member in tar:
                relative = PurePosixPath(member.name)
                if not member.isfile() or relative.is_absolute() or ".." in relative.parts:
                    continue
                if not relative.parts or relative.parts[0] != folder:
                    continue
                out = target.joinpath(*relative.parts)
                out.parent.mkdir(parents=True, exist_ok=True)
                source = tar.extractfile(member)
                if source is None:
                    continue
                with source, open(out, "wb") as stream:
                    shutil.copyfileobj(source, stream, _CHUNK)
                written.append(out)
    except (tarfile.TarError, EOFError, OSError) as err:
        raise DataFormatError(f"{archive}: cannot extract the archive ({err}); delete it and "
                              "download it again") from None
    return written


__all__ = [
    "Fetch",
    "download_first_working",
    "download_verified",
    "extract_tar_members",
    "file_digest",
    "urllib_fetch",
]
