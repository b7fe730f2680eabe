"""The run directory and what is written into it.

``config.json`` (the settings and versions), ``metrics.csv`` (one row per epoch), ``summary.json``,
``curves.png``, ``confusion.png``, ``per_class.csv``, ``checkpoints/{last,best}.safetensors`` and, when the
tensorboard package is installed, ``tensorboard/``.

Nothing is lost, whatever stops a run:

* every file is written whole to a temporary file and renamed, like the checkpoints (figures are rendered to
  bytes first), so a crash never leaves one half-written; the temporary files a killed write leaves behind
  (``.last.safetensors.<8 characters>.tmp``, ...) are removed the next time that run starts, and only those;
* a directory that holds a run is never silently written over: ``--resume`` continues it, ``--overwrite``
  replaces it, and then the old run's files go only once the new run's ``config.json`` is on disk, so a failing
  start leaves the old run whole and the directory never mixes one run's configuration with another's
  checkpoints;
* a write that fails (disk full, read-only file system) stops the run with a ``RunDirectoryError`` that names
  the file; the checkpoints already written are intact and ``--resume`` continues from them.
"""

from __future__ import annotations

import csv
import errno
import io
import json
import math
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch

import cnnzoo
from cnnzoo.engine.checkpoint import atomic_write_bytes
from cnnzoo.engine.config import TrainConfig
from cnnzoo.engine.evaluate import EvalResult
from cnnzoo.errors import CnnzooError, ConfigError, RunDirectoryError, TrainingError
from cnnzoo.runs import timestamped_run_dir

CONFIG = "config.json"
LAST = "checkpoints/last.safetensors"
# What a run writes besides its config.json, checkpoints first: --overwrite removes them in this order.
RUN_FILES = ("checkpoints/best.safetensors", LAST, "metrics.csv", "per_class.csv", "curves.png", "confusion.png",
             "summary.json")
TENSORBOARD = "tensorboard"
_STAGED_CONFIG = ".config.json.new"  # --overwrite: the new run's config, on disk before the old run goes
_PROBE = ".write-test"
# atomic_write_bytes's temporary files: "." + the file's name + mkstemp's 8 random characters + ".tmp"
_TEMPORARY = re.compile(r"\.(?P<name>.+)\.[a-z0-9_]{8}\.tmp")


def run_dir_of(config: TrainConfig) -> Path:
    """Where ``config`` writes: ``config.out``, or a new timestamped folder under runs/."""
    return Path(config.out) if config.out else timestamped_run_dir(f"{config.model}-{config.dataset}")


def holds_run(run_dir: Path) -> bool:
    """True when ``run_dir`` holds a cnnzoo run: a config.json or a checkpoint in checkpoints/."""
    return (run_dir / CONFIG).is_file() or any((run_dir / "checkpoints").glob("*.safetensors"))


def check_new_run(run_dir: Path, *, overwrite: bool) -> bool:
    """Refuse to start a new run in a directory that holds one, unless ``overwrite``; True when one is there."""
    if not holds_run(run_dir):
        return False
    if not overwrite:
        raise ConfigError(f"{run_dir} already holds a cnnzoo run (config.json or checkpoints); continue it with "
                          f"`cnnzoo train --resume {run_dir}`, replace it with --overwrite, or choose another --out")
    return True


def check_resumable(run_dir: Path) -> None:
    """Say clearly why ``run_dir`` cannot be resumed, before anything is loaded."""
    if not run_dir.is_dir():
        raise RunDirectoryError(f"{run_dir}: no such run directory to resume")
    if (run_dir / LAST).is_file():
        return
    if holds_run(run_dir) or (run_dir / "checkpoints").is_dir() or stale_files(run_dir):
        raise TrainingError(f"{run_dir}: nothing to resume: no epoch finished before the run stopped (there is no "
                            f"{LAST}); start it again from scratch, with the same options and "
                            f"--out {run_dir} --overwrite")
    raise RunDirectoryError(f"{run_dir} is not a cnnzoo run directory (no config.json, no checkpoints)")


def make_run_dir(run_dir: Path) -> Path:
    """``run_dir`` created with its checkpoints/, checked writable, and cleared of the temporary files a killed
    write left there."""
    try:
        (run_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
        probe = run_dir / _PROBE
        probe.write_text("ok")
        probe.unlink()
        remove_stale_files(run_dir)
    except OSError as error:
        raise RunDirectoryError(f"cannot write the run directory {run_dir} ({error.strerror or error}); "
                                f"choose another with --out DIR") from None
    return run_dir


def stale_files(run_dir: Path) -> list[Path]:
    """What killed writes of this run left behind: temporary copies of the run's own files, the staged config
    and the write probe. Files cnnzoo did not write (other names, other patterns) are never listed."""
    own = {CONFIG, *RUN_FILES, TENSORBOARD}
    found = []
    for folder in (run_dir, run_dir / "checkpoints"):
        for path in sorted(folder.iterdir()) if folder.is_dir() else []:
            match = _TEMPORARY.fullmatch(path.name)
            relative = path.relative_to(run_dir).parent / match["name"] if match else None
            if (relative is not None and relative.as_posix() in own) or \
                    (folder == run_dir and path.name in (_STAGED_CONFIG, _PROBE)):
                found.append(path)
    return found


def remove_stale_files(run_dir: Path) -> None:
    for path in stale_files(run_dir):
        shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink(missing_ok=True)


@contextmanager
def writing(path: Path) -> Iterator[None]:
    """Turn an ``OSError`` while writing ``path`` into a ``RunDirectoryError`` that names it and the fix."""
    try:
        yield
    except OSError as error:
        if isinstance(error, CnnzooError):
            raise
        raise RunDirectoryError(_write_failure(Path(path), error)) from None


def _write_failure(path: Path, error: OSError) -> str:
    run_dir = path.parent.parent if path.parent.name == "checkpoints" else path.parent
    reasons = {errno.ENOSPC: ("the disk is full", "free space on it"),
               errno.EDQUOT: ("the disk quota is exceeded", "free space on it"),
               errno.EROFS: ("the file system is read-only", "make it writable")}
    reason, fix = reasons.get(error.errno, (error.strerror or str(error), "fix that"))
    return (f"cannot write {path}: {reason}; the files written before are intact: {fix} and continue with "
            f"`cnnzoo train --resume {run_dir}`, or start again with another --out")


def versions() -> dict:
    return {"cnnzoo": cnnzoo.__version__, "torch": torch.__version__, "python": sys.version.split()[0]}


def write_bytes(path: Path, data: bytes) -> None:
    with writing(path):
        atomic_write_bytes(path, data)


def write_text(path: Path, text: str) -> None:
    write_bytes(path, text.encode())


def _config_text(config: TrainConfig) -> str:
    return json.dumps({**config.to_dict(), "versions": versions()}, indent=2)


def write_config(run_dir: Path, config: TrainConfig) -> None:
    write_text(run_dir / CONFIG, _config_text(config))


def replace_run(run_dir: Path, config: TrainConfig) -> None:
    """``--overwrite``: write the new run's config, then remove the old run's files, then put the config in place.

    A kill at any point leaves one run's files only: the old config with some of its files, or the new config
    alone (plus a staged config that the next start removes).
    """
    staged = run_dir / _STAGED_CONFIG
    write_text(staged, _config_text(config))
    with writing(run_dir / CONFIG):
        for name in RUN_FILES:
            (run_dir / name).unlink(missing_ok=True)
        shutil.rmtree(run_dir / TENSORBOARD, ignore_errors=True)
        os.replace(staged, run_dir / CONFIG)


def read_metrics(run_dir: Path) -> list[dict]:
    """metrics.csv of a run directory as a list of dicts of floats (``epoch`` as int); [] if absent."""
    path = Path(run_dir) / "metrics.csv"
    if not path.is_file():
        return []
    with open(path, newline="") as handle:
        return [{key: int(value) if key == "epoch" else float(value) for key, value in row.items()}
                for row in csv.DictReader(handle)]


def finished_epochs(run_dir: Path) -> int | None:
    """The epochs that summary.json reports (None when it is missing or unreadable): a run whose last checkpoint
    is further on stopped before writing its end-of-run files."""
    try:
        return json.loads((run_dir / "summary.json").read_text())["epochs"]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _csv_text(header: list[str], rows: list[list]) -> str:
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer)
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue()


def write_metrics(run_dir: Path, history: list[dict]) -> None:
    header = list(history[0])
    write_text(run_dir / "metrics.csv", _csv_text(header, [[row[key] for key in header] for row in history]))


def write_outputs(run_dir: Path, summary: dict, history: list[dict], result: EvalResult, classes: list[str]) -> None:
    """The end-of-run files: per-class accuracy, the two figures, TensorBoard events and, last, summary.json."""
    from cnnzoo.engine.plots import confusion_png, curves_png

    per_class = result.per_class_accuracy
    write_text(run_dir / "per_class.csv",
               _csv_text(["class", "test_top1"], [[name, round(acc, 5)] for name, acc in zip(classes, per_class)]))
    summary["per_class_top1"] = {name: round(acc, 5) for name, acc in zip(classes, per_class)}
    write_bytes(run_dir / "curves.png", curves_png(history, title=f"{summary['model']} on {summary['dataset']}",
                                                      label_smoothing=summary.get("label_smoothing", 0.0)))
    write_bytes(run_dir / "confusion.png", confusion_png(result.confusion, classes,
                                                         title=f"{summary['model']}: test top-1 {result.top1:.2%}"))
    with writing(run_dir / TENSORBOARD):
        _log_tensorboard(run_dir, history)
    write_text(run_dir / "summary.json", json.dumps(summary, indent=2))


def _log_tensorboard(run_dir: Path, history: list[dict]) -> None:
    """Mirror metrics.csv into TensorBoard event files when the tensorboard package is installed.

    The events are written into a temporary folder that then replaces ``tensorboard/`` whole, so a resumed run
    does not add a second copy of its first epochs and a crash leaves the old folder or none.
    """
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return
    staging = Path(tempfile.mkdtemp(prefix=f".{TENSORBOARD}.", suffix=".tmp", dir=run_dir))
    try:
        with SummaryWriter(str(staging)) as writer:
            for row in history:
                for key, value in row.items():
                    if key != "epoch" and isinstance(value, (int, float)) and math.isfinite(value):
                        writer.add_scalar(key, value, row["epoch"])
        shutil.rmtree(run_dir / TENSORBOARD, ignore_errors=True)
        os.replace(staging, run_dir / TENSORBOARD)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
