"""Every error a user can fix, under one base class: ``CnnzooError``.

The command line prints an error of this family as one line (``cnnzoo COMMAND: error: MESSAGE``) and
exits with status 2; anything else is a bug and keeps its traceback. So each message is written for
the person at the terminal: it names the option or file, the value that was wrong and what to do
instead.

Each class also derives from the built-in exception a Python caller would expect (``ValueError`` for
a bad value, ``FileNotFoundError`` for missing files, ``KeyError`` for an unknown name), so ``except
ValueError`` in user code keeps working. This module imports nothing beyond the standard library:
the NumPy-only ``scratch`` demos and the CLI's error handling use it without torch.
"""

from __future__ import annotations

import signal
from pathlib import Path


def in_one_line(error: BaseException, limit: int = 200) -> str:
    """``error`` as its type and the first line of its message (past any blank ones), at most
    ``limit`` characters of it: how a message quotes a library's failure that it turns into one of
    these errors."""
    return f"{type(error).__name__}: {(str(error).strip().splitlines() or [''])[0][:limit]}"


class CnnzooError(Exception):
    """Base of every error whose message tells the user what to change."""


class ConfigError(CnnzooError, ValueError):
    """A setting or command-line option with a value that cannot work."""


class UnknownNameError(CnnzooError, KeyError, ValueError):
    """A model, dataset, recipe or experiment name that does not exist; the message suggests close
    names."""

    def __str__(self) -> str:  # KeyError quotes its message; show it as written
        return str(self.args[0])


class UnknownModelError(UnknownNameError):
    """A model name that is not in the registry."""


class InputShapeError(CnnzooError, ValueError):
    """An input the model cannot take; the message says what it expects and how to fix it."""


class DataError(CnnzooError):
    """Base of the errors about data sets and image files."""


class DataFormatError(DataError, ValueError):
    """A file exists but is not what it should be: truncated, wrong format, inconsistent or
    unsafe."""


class ChecksumMismatch(DataFormatError):
    """A downloaded (or verified) file whose checksum differs from the published one."""


class DataFilesMissing(DataError, FileNotFoundError):
    """A data set's files were found nowhere; the message lists what is missing, where we looked and
    the fixes.

    ``missing`` holds the file names that are missing and ``searched`` the folders looked in, so a
    caller (``cnnzoo data list``) can present them itself.
    """

    def __init__(self, message: str, *, missing: list[str] | None = None,
                 searched: list[Path] | None = None):
        super().__init__(message)
        self.missing = list(missing or [])
        self.searched = list(searched or [])

    # FileNotFoundError would print "[Errno ...]"-style text for other arg shapes
    def __str__(self) -> str:
        return str(self.args[0])


class CheckpointError(CnnzooError, ValueError):
    """A checkpoint or run directory that cannot be read or does not fit; the message names the
    file."""


class RunDirectoryError(CnnzooError, OSError):
    """The run directory cannot be created or written."""


class TrainingError(CnnzooError, RuntimeError):
    """A run that cannot go on as configured (e.g. nothing left to resume)."""


class NonFiniteLossError(TrainingError):
    """The loss became NaN or infinite; the run stopped and its best checkpoint was left as it
    was."""


class NonFiniteOutputError(CnnzooError, ArithmeticError):
    """A model gave NaN or infinite outputs: shown as an error, never as a class with "nan%"."""


class Stopped(KeyboardInterrupt):
    """Work stopped by a signal: Ctrl-C (SIGINT), or SIGTERM from a scheduler, ``kill`` or torchrun.
    The command line prints its message and exits with 128 + the signal's number, as a shell
    does."""

    def __init__(self, message: str = "", signal_number: int = signal.SIGINT) -> None:
        super().__init__(message)
        self.signal_number = int(signal_number)


def suggest(name: str, choices, *, count: int = 3) -> str:
    """`` Did you mean a, b?`` for the choices closest to ``name``, case aside (empty when none is
    close)."""
    import difflib

    by_folded = {choice.casefold(): choice for choice in choices}
    close = difflib.get_close_matches(name.casefold(), list(by_folded), n=count, cutoff=0.5)
    return f" Did you mean {', '.join(by_folded[c] for c in close)}?" if close else ""
