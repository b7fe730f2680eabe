"""Files written whole or not at all, and read without hanging or swallowing a giant: torch-free.

Every writer in cnnzoo (checkpoints, run files, figures, the tuning cache, downloads) goes through
``atomic_write_bytes`` or ``publish``: the bytes go to a temporary file beside the target, are
flushed to disk, renamed over the target, and the directory is flushed too, so a crash at any moment
leaves the old file or the new one, never a mix, and a rename that a power cut would undo is not
reported as done.

Every reader of a file the user can point at goes through ``read_bytes``: a FIFO, a device or a
directory where a file is expected is refused at once (opening a FIFO for reading blocks until a
writer comes), and so is a file larger than the reader's limit.
"""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

from cnnzoo.errors import DataFilesMissing, DataFormatError

# ".NAME.<8 random characters>.tmp" beside NAME, while it is being written
TEMPORARY_SUFFIX = ".tmp"


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that a crash leaves either the old file or the new one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMPORARY_SUFFIX,
                                         dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    sync_directory(path.parent)


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def publish(temporary: Path, path: Path) -> None:
    """Put a finished ``temporary`` file (or folder) in ``path``'s place, durably: flushed, renamed
    (replacing what was there in one step), and the rename itself flushed with the directory."""
    if temporary.is_file():
        with open(temporary, "rb+") as file:
            os.fsync(file.fileno())
    os.replace(temporary, path)
    sync_directory(path.parent)


def sync_directory(folder: Path) -> None:
    """Flush a directory's entries (a rename or unlink in it) to disk, where the file system allows
    it."""
    try:
        handle = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(handle)
    # some file systems cannot fsync a directory; the rename is then as durable as it gets
    except OSError:
        pass
    finally:
        os.close(handle)


def check_regular_file(path: str | Path, give: str = "a regular file") -> Path:
    """``path`` if it is a regular file (links followed); else one error naming it, what it is, and
    what to ``give`` instead (a missing file is ``DataFilesMissing``, anything else
    ``DataFormatError``)."""
    path = Path(path)
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise DataFilesMissing(f"{path}: no such file") from None
    except OSError as error:
        raise DataFormatError(f"{path}: cannot read it ({error.strerror or error})") from None
    if stat.S_ISDIR(mode):
        raise DataFormatError(f"{path}: is a directory, give {give}")
    if not stat.S_ISREG(mode):  # a FIFO would block the reader until a writer came
        raise DataFormatError(f"{path}: not a regular file (a FIFO, socket or device), give {give}")
    return path


def read_bytes(path: str | Path, limit: int, what: str = "file") -> bytes:
    """The bytes of the regular file ``path``, refusing one over ``limit`` bytes with a
    ``DataFormatError``."""
    path = check_regular_file(path, f"a {what}")
    with open(path, "rb") as file:
        data = file.read(limit + 1)
    if len(data) > limit:
        raise DataFormatError(f"{path}: larger than the {limit:,} bytes a {what} may have; is it "
                              "the right file?")
    return data
