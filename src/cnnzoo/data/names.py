"""A data set's name: a built-in set's (``fashion-mnist``) or ``folder:PATH`` for a folder of one's
own images. Standard library only, so a configuration can settle its name without torch."""

from __future__ import annotations

import os
from pathlib import Path

FOLDER_PREFIX = "folder:"


def absolute(name: str) -> str:
    """``folder:PATH`` with PATH made absolute (from the working directory, without touching the
    file system), so that a run records which folder it learned from wherever it is used later;
    any other name as it is."""
    path = name.removeprefix(FOLDER_PREFIX)
    if not name.startswith(FOLDER_PREFIX) or not path or "\0" in path:
        return name  # not a folder, or none: loading it says what is wrong
    return FOLDER_PREFIX + os.path.abspath(os.path.expanduser(path))


def same_dataset(name: str, other: str | None) -> bool:
    """Whether two data set names are one data set: ``folder:`` paths compared resolved, so
    ``folder:./shapes`` is ``folder:/home/me/shapes`` from /home/me."""
    if other is None or not (name.startswith(FOLDER_PREFIX) and other.startswith(FOLDER_PREFIX)):
        return name == other
    return (Path(name.removeprefix(FOLDER_PREFIX)).expanduser().resolve()
            == Path(other.removeprefix(FOLDER_PREFIX)).expanduser().resolve())


__all__ = ["FOLDER_PREFIX", "absolute", "same_dataset"]
