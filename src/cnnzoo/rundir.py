"""The run directory: its layout, what counts as a run, and reading and writing its files
(torch-free).

A run directory holds::

    config.json                  the settings and versions (written first)
    metrics.csv                  one row per finished epoch
    checkpoints/last.safetensors everything a resume needs; checkpoints/best.safetensors: the best
    weights per_class.csv, curves.png, confusion.png, tensorboard/   the end-of-run files
    summary.json                 written last: its presence means the run finished
    snapshots/epoch-NNNN.safetensors  the first layer's kernels and a probe batch's feature maps
                                 after epoch NNNN (0: as initialised), for ``show timeline``
    show/                        what the views wrote about it

Training, evaluation, prediction, the views, export and the explorer all find these files through
this module, so they agree on what a run is. Nothing is lost, whatever stops a run:

* every file is written whole (``files.atomic_write_bytes``), so a crash never leaves one
  half-written; the temporary files a killed write leaves behind are removed the next time that run
  starts, and only those;
* a run directory has one writer at a time (``writer_lock``);
* a directory that holds a run is never silently written over: ``--resume`` continues it,
  ``--overwrite`` replaces it, and the old run stays whole (moved aside) until the new one has saved
  its first checkpoint; a start that fails before that leaves the folder as it found it
  (``Provisional``);
* a write that fails (disk full, read-only file system) is a ``RunDirectoryError`` naming the file
  and the fix.
"""

from __future__ import annotations

import csv
import errno
import io
import json
import os
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

from cnnzoo.errors import CheckpointError, CnnzooError, DataFormatError, RunDirectoryError
from cnnzoo.files import TEMPORARY_SUFFIX, atomic_write_bytes, read_bytes, sync_directory

RUNS_ROOT = Path("runs")  # where a run goes when no --out is given
CONFIG = "config.json"
METRICS = "metrics.csv"
SUMMARY = "summary.json"
PER_CLASS = "per_class.csv"
CURVES = "curves.png"
CONFUSION = "confusion.png"
CHECKPOINTS = "checkpoints"
BEST = "checkpoints/best.safetensors"
LAST = "checkpoints/last.safetensors"
TENSORBOARD = "tensorboard"
SHOW = "show"
SNAPSHOTS = "snapshots"
FIGURES = (CURVES, CONFUSION)
# What a run writes besides its config.json, checkpoints first: --overwrite removes them in this
# order.
RUN_FILES = (BEST, LAST, METRICS, PER_CLASS, CURVES, CONFUSION, SUMMARY)
# config.json, summary.json, metrics.csv, per_class.csv are read whole: bounded
MAX_TEXT_BYTES = 4 * 1024**2
_SNAPSHOT = re.compile(r"epoch-(?P<epoch>\d{4,})\.safetensors")
_PROBE = ".write-test"
_TEMPORARY = re.compile(r"\.(?P<name>.+)\.[a-z0-9_]{8}" + re.escape(TEMPORARY_SUFFIX))


def timestamped_run_dir(name: str) -> Path:
    """``runs/<name>-<YYYYmmdd-HHMMSS>``, a ``folder:PATH`` in it by the folder's own name
    (``lenet5-folder-shapes``), with characters that would nest folders replaced."""
    head, prefix, path = name.partition("folder:")
    name = head + (f"folder-{Path(path).name}" if prefix else "")
    safe = name.replace("/", "_").replace("\\", "_").strip("_")
    return RUNS_ROOT / f"{safe}-{datetime.now():%Y%m%d-%H%M%S}"


def holds_run(folder: Path) -> bool:
    """True when ``folder`` holds a cnnzoo run: a config.json or a checkpoint."""
    folder = Path(folder)
    return (folder / CONFIG).is_file() or any((folder / CHECKPOINTS).glob("*.safetensors"))


def checkpoint_of(source: Path) -> Path:
    """The checkpoint a run directory is used through: its best (or its last, if no epoch improved
    on the first); a file is its own checkpoint."""
    source = Path(source)
    if not source.is_dir():
        return source
    for name in (BEST, LAST):
        if (source / name).is_file():
            return source / name
    raise CheckpointError(f"{source}: no {BEST} or {LAST} in this directory; is it a cnnzoo run "
                          "directory whose first epoch finished?")


def snapshot_path(run_dir: Path, epoch: int) -> Path:
    """Where the snapshot taken after ``epoch`` goes (``snapshots/epoch-0003.safetensors``)."""
    return Path(run_dir) / SNAPSHOTS / f"epoch-{epoch:04d}.safetensors"


def snapshot_epochs(run_dir: Path) -> dict[int, Path]:
    """The run's snapshots by epoch, in order ({} when it has none); temporary files are not
    snapshots."""
    folder = Path(run_dir) / SNAPSHOTS
    found = {}
    for path in folder.iterdir() if folder.is_dir() else []:
        match = _SNAPSHOT.fullmatch(path.name)
        if match and path.is_file():
            found[int(match["epoch"])] = path
    return dict(sorted(found.items()))


def drop_snapshots_after(run_dir: Path, epoch: int) -> list[int]:
    """Remove the snapshots of epochs after ``epoch``: a run that crashed after a snapshot but
    before that epoch's checkpoint trains the epoch again, so its series goes on from the
    checkpoint."""
    dropped = [e for e in snapshot_epochs(run_dir) if e > epoch]
    for number in dropped:
        with writing(snapshot_path(run_dir, number)):
            snapshot_path(run_dir, number).unlink(missing_ok=True)
    return dropped


# ------------------------------------------------------------------------------------------ reading


def read_json(path: Path, what: str = "JSON file") -> dict:
    """A JSON object from ``path``: one ``DataFormatError`` naming the file if it is not a regular
    file, is too large, or does not hold an object."""
    data = read_bytes(path, MAX_TEXT_BYTES, what)
    try:
        value = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as error:
        raise DataFormatError(f"{path}: not valid JSON ({error}); the file is damaged") from None
    if not isinstance(value, dict):
        raise DataFormatError(
            f"{path}: holds {type(value).__name__}, not the JSON object a {what} holds"
        )
    return value


def read_metrics(run_dir: Path) -> list[dict]:
    """metrics.csv as one dict per epoch (``epoch`` an int, the rest floats; a value that is no
    number stays text, an empty one is None: the test figures of an epoch ``--eval-every`` skipped);
    [] if absent. A row cut short (being written, or by a crash) is left out."""
    path = Path(run_dir) / METRICS
    if not path.exists():
        return []
    text = read_bytes(path, MAX_TEXT_BYTES, "metrics file").decode("utf-8", errors="replace")
    rows = []
    for row in csv.DictReader(text.splitlines()):
        values = list(row.values())
        if not row or None in row or None in values or values[-1] == "":
            continue
        rows.append({key: _number(key, value) for key, value in row.items()})
    return rows


def evaluated(history: list[dict]) -> list[dict]:
    """The rows of ``history`` (metrics.csv's) whose epoch was evaluated on the test set."""
    return [row for row in history if row.get("test_top1") is not None]


def _number(key: str, text: str) -> int | float | str | None:
    if text == "":
        return None
    try:
        return int(text) if key == "epoch" else float(text)
    except ValueError:
        return text


def finished_epochs(run_dir: Path) -> int | None:
    """The epochs that summary.json reports (None when it is missing or unreadable): a run whose
    last checkpoint is further on stopped before writing its end-of-run files."""
    try:
        epochs = read_json(Path(run_dir) / SUMMARY, "summary").get("epochs")
    except (OSError, CnnzooError):
        return None
    return epochs if isinstance(epochs, int) else None


# ------------------------------------------------------------------------------------------ writing


@contextmanager
def writing(path: Path) -> Iterator[None]:
    """Turn an ``OSError`` while writing ``path`` into a ``RunDirectoryError`` that names it and the
    fix."""
    try:
        yield
    except OSError as error:
        if isinstance(error, CnnzooError):
            raise
        raise RunDirectoryError(_write_failure(Path(path), error)) from None


def _write_failure(path: Path, error: OSError) -> str:
    run_dir = path.parent.parent if path.parent.name == CHECKPOINTS else path.parent
    reasons = {errno.ENOSPC: ("the disk is full", "free space on it"),
               errno.EDQUOT: ("the disk quota is exceeded", "free space on it"),
               errno.EROFS: ("the file system is read-only", "make it writable")}
    reason, fix = reasons.get(error.errno, (error.strerror or str(error), "fix that"))
    return (f"cannot write {path}: {reason}; the files written before are intact: {fix} and "
            f"continue with `cnnzoo train --resume {run_dir}`, or start again with another --out")


def write_bytes(path: Path, data: bytes) -> None:
    with writing(path):
        atomic_write_bytes(path, data)


def write_text(path: Path, text: str) -> None:
    write_bytes(path, text.encode())


def csv_text(header: list[str], rows: list[list]) -> str:
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer)
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue()


def write_metrics(run_dir: Path, history: list[dict]) -> None:
    header = list(history[0])
    write_text(run_dir / METRICS, csv_text(header,
                                           [[row[key] for key in header] for row in history]))


# --------------------------------------------------------------------------- starting and replacing


def make_run_dir(run_dir: Path) -> Path:
    """``run_dir`` created with its checkpoints/, checked writable, and cleared of the temporary
    files a killed write left there."""
    try:
        (run_dir / CHECKPOINTS).mkdir(parents=True, exist_ok=True)
        probe = run_dir / _PROBE
        probe.write_text("ok")
        probe.unlink()
        remove_stale_files(run_dir)
    except OSError as error:
        raise RunDirectoryError(f"cannot write the run directory {run_dir} "
                                f"({error.strerror or error}); "
                                f"choose another with --out DIR") from None
    return run_dir


def stale_files(run_dir: Path) -> list[Path]:
    """What killed writes of this run left behind: temporary copies of the run's own files and the
    write probe. Files cnnzoo did not write (other names, other patterns) are never listed."""
    own = {CONFIG, *RUN_FILES, TENSORBOARD}
    found = []
    for folder in (run_dir, run_dir / CHECKPOINTS, run_dir / SNAPSHOTS):
        for path in sorted(folder.iterdir()) if folder.is_dir() else []:
            match = _TEMPORARY.fullmatch(path.name)
            relative = path.relative_to(run_dir).parent / match["name"] if match else None
            snapshot = match and folder.name == SNAPSHOTS and _SNAPSHOT.fullmatch(match["name"])
            if (relative is not None and relative.as_posix() in own) or snapshot or \
                    (folder == run_dir and path.name == _PROBE):
                found.append(path)
    return found


def remove_stale_files(run_dir: Path) -> None:
    for path in stale_files(run_dir):
        shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink(
            missing_ok=True
        )


# ------------------------------------------------------------------------------------- one writer


def _lock_path(run_dir: Path) -> Path:
    return Path(run_dir).parent / f".{Path(run_dir).name}.lock"


@contextmanager
def writer_lock(run_dir: Path) -> Iterator[None]:
    """Hold the one-writer lock of ``run_dir`` for the ``with`` block, or refuse at once with a
    ``RunDirectoryError`` naming the process that holds it.

    The lock is an ``flock`` on ``.NAME.lock`` beside the run directory (beside it, not in it, so
    that it stays the same file while an --overwrite moves the old run aside); the kernel releases
    it when its holder ends, however it ends, so a killed run never leaves a stale lock.
    """
    import fcntl

    run_dir = Path(run_dir)
    try:
        run_dir.parent.mkdir(parents=True, exist_ok=True)
        handle = os.open(_lock_path(run_dir), os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as error:
        raise RunDirectoryError(f"cannot write beside {run_dir} ({error.strerror or error}); "
                                "choose another --out") from None
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(handle, 32, 0).decode(errors="replace").strip() or "unknown"
            raise RunDirectoryError(f"{run_dir} is being written by another cnnzoo process (PID "
                                    f"{holder}); wait for it to end or stop it, or choose another "
                                    "--out") from None
        os.ftruncate(handle, 0)
        os.pwrite(handle, str(os.getpid()).encode(), 0)
        yield
    finally:
        os.close(handle)


def writer_running(run_dir: Path) -> bool | None:
    """Whether a process holds ``run_dir``'s writer lock, read from the kernel's table, without
    taking it (a moment's hold could refuse a writer starting then); None where there is none."""
    try:
        table, found = Path("/proc/locks").read_text(), _lock_path(run_dir).stat()
    except FileNotFoundError:  # never locked, or no table
        return False if Path("/proc/locks").is_file() else None
    except OSError:
        return None
    device = f"{os.major(found.st_dev):02x}:{os.minor(found.st_dev):02x}:{found.st_ino}"
    return any(device in line.split() for line in table.splitlines() if " FLOCK " in line)


# ------------------------------------------------------------------- a start that is not yet kept


def _aside(run_dir: Path) -> Path:
    return run_dir.parent / f".{run_dir.name}.replaced"


class Provisional:
    """A new run's directory until its first checkpoint: ``keep()`` then makes it the run, and
    ``undo()`` before that puts the folder back as it was (the old run an --overwrite replaces, or
    nothing at all), so a start that fails, is interrupted or diverges in its first epoch loses
    nothing and leaves nothing that blocks the same command from running again.

    An --overwrite moves the old run aside (``.NAME.replaced`` beside it) rather than deleting it; a
    process killed before ``keep()`` or ``undo()`` leaves it there, and ``recover`` (run at the next
    start) puts it back.
    """

    def __init__(self, run_dir: Path, *, replacing: bool) -> None:
        self.run_dir, self.replacing, self.kept = Path(run_dir), replacing, False
        self.created = not self.run_dir.exists()
        if replacing:
            with writing(self.run_dir):
                os.replace(self.run_dir, _aside(self.run_dir))
                sync_directory(self.run_dir.parent)

    def keep(self) -> None:
        if not self.kept and self.replacing:
            shutil.rmtree(_aside(self.run_dir), ignore_errors=True)
        self.kept = True

    def undo(self) -> None:
        """Remove what this start wrote, and put back what it replaced (nothing, once kept)."""
        if self.kept:
            return
        if self.replacing or self.created:
            shutil.rmtree(self.run_dir, ignore_errors=True)
        else:  # a folder that was there before: only this run's own files go
            remove_stale_files(self.run_dir)
            for name in (CONFIG, *RUN_FILES):
                (self.run_dir / name).unlink(missing_ok=True)
            for path in snapshot_epochs(self.run_dir).values():
                path.unlink(missing_ok=True)
            for folder in (self.run_dir / CHECKPOINTS, self.run_dir / SNAPSHOTS):
                if folder.is_dir() and not any(folder.iterdir()):
                    folder.rmdir()
        if self.replacing:
            os.replace(_aside(self.run_dir), self.run_dir)
        sync_directory(self.run_dir.parent)


def recover(run_dir: Path) -> str | None:
    """Finish what a process killed between moving an old run aside and keeping or undoing its
    replacement left: the replacement is kept if it wrote its first checkpoint, else the old run is
    put back. Says what it did."""
    aside = _aside(Path(run_dir))
    if not aside.is_dir():
        return None
    if (run_dir / LAST).is_file():
        shutil.rmtree(aside, ignore_errors=True)
        return (
            f"removed the run that --overwrite replaced in {run_dir} (its replacement had saved a "
            "checkpoint)"
        )
    shutil.rmtree(run_dir, ignore_errors=True)
    os.replace(aside, run_dir)
    return (f"put back the run in {run_dir}: the --overwrite that replaced it stopped before its "
            "first checkpoint")
