"""The two ways data can fail to load, as exception types the command line can report cleanly.

Both carry a message written for the person at the terminal: it names the file, says what is wrong
with it and what to do about it, so the CLI prints ``str(error)`` and nothing else.
"""

from __future__ import annotations

from pathlib import Path


class DataFormatError(ValueError):
    """A file exists but is not what it should be: truncated, wrong format, inconsistent or unsafe."""


class ChecksumMismatch(DataFormatError):
    """A downloaded (or verified) file whose checksum differs from the published one."""


class DataFilesMissing(FileNotFoundError):
    """A data set's files were found nowhere; the message lists what is missing, where we looked and the fixes.

    ``missing`` holds the file names that are missing and ``searched`` the folders looked in, so a caller
    (``cnnzoo data list``) can present them itself.
    """

    def __init__(self, message: str, *, missing: list[str] | None = None, searched: list[Path] | None = None):
        super().__init__(message)
        self.missing = list(missing or [])
        self.searched = list(searched or [])

    def __str__(self) -> str:  # FileNotFoundError would print "[Errno ...]"-style text for other arg shapes
        return str(self.args[0])
