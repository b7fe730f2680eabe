"""The runs under RUNS_DIR, read without torch: what the runs list and a run's page show.

A run is named by its folder's name, a direct child of RUNS_DIR. Every name and every file is
checked before it is opened: a name with a separator, ``..`` or anything but letters, digits, ``.``,
``_`` and ``-`` is unknown, and a folder or file whose real path (symlinks followed) lies outside
RUNS_DIR is unknown too; nothing outside is ever opened. Unknown means ``RunNotFound``, which the
API answers with 404.
"""

from __future__ import annotations

import csv
import json
import re
import time
from pathlib import Path

from cnnzoo import rundir
from cnnzoo.engine.config import variant_name
from cnnzoo.errors import CnnzooError, ConfigError
from cnnzoo.files import read_bytes
from cnnzoo.rundir import BEST, CONFIG, FIGURES, LAST, METRICS, PER_CLASS, SUMMARY, holds_run

NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}")
MAX_RUNS = 500  # folders listed; a RUNS_DIR holding more is cut, the newest kept
# a run without summary.json whose metrics.csv changed this recently is "training"
LIVE_SECONDS = 600
CHECKPOINTS = (BEST, LAST)


class RunNotFound(CnnzooError, LookupError):
    """A run name or file that is not served: absent, malformed, or leading outside RUNS_DIR."""


def check_runs_dir(path: str | Path) -> Path:
    """RUNS_DIR as an absolute real path; a missing folder or a run directory itself is a
    ``ConfigError``."""
    root = Path(path).expanduser()
    if not root.is_dir():
        raise ConfigError(f"{root}: no such folder of runs; train one first (`make demo` writes "
                          "runs/demo)")
    if holds_run(root):
        raise ConfigError(f"{root} is a run directory itself; give the folder that holds runs: "
                          f"cnnzoo serve {root.resolve().parent}")
    return root.resolve()


def _inside(root: Path, path: Path) -> bool:
    try:
        return path.resolve().is_relative_to(root)
    except (OSError, RuntimeError):  # a symlink loop
        return False


def run_path(root: Path, name: str) -> Path:
    """The folder of run ``name``, or ``RunNotFound``."""
    if not NAME.fullmatch(name) or name in (".", ".."):
        raise RunNotFound(f"no run named {name[:80]!r}")
    path = root / name
    if not path.is_dir() or not _inside(root, path) or not holds_run(path):
        raise RunNotFound(f"no run named {name!r} in the runs folder")
    return path


def run_file(root: Path, name: str, relative: str) -> Path | None:
    """A file of run ``name`` (``relative`` from the code's own list, never from a request), or None
    when absent; ``RunNotFound`` when it is a link that leads outside RUNS_DIR or not a regular
    file."""
    path = run_path(root, name) / relative
    if not path.exists() and not path.is_symlink():
        return None
    if not _inside(root, path) or not path.resolve().is_file():
        raise RunNotFound(f"{name}/{relative} is not served (it leads outside the runs folder)")
    return path


def _read_text(root: Path, name: str, relative: str) -> str | None:
    path = run_file(root, name, relative)
    if path is None:
        return None
    try:
        return read_bytes(path, rundir.MAX_TEXT_BYTES).decode("utf-8", errors="replace")
    except CnnzooError:  # too large for what it should be: shown as absent
        return None


def _json(root: Path, name: str, relative: str) -> dict:
    text = _read_text(root, name, relative)
    try:
        value = json.loads(text) if text else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _number(text: str) -> float | str:
    try:
        return float(text)
    except ValueError:
        return text


def metrics(root: Path, name: str) -> list[dict]:
    """metrics.csv as one dict per epoch; a row being written is left out."""
    if run_file(root, name, METRICS) is None:
        return []
    try:
        return rundir.read_metrics(run_path(root, name))
    except CnnzooError:
        return []


def per_class(root: Path, name: str) -> dict[str, float]:
    text = _read_text(root, name, PER_CLASS) or ""
    found = {}
    for row in csv.DictReader(text.splitlines()):
        value = _number(row.get("test_top1") or "")
        if isinstance(value, float) and row.get("class") is not None:
            found[row["class"]] = value
    return found


def _status(root: Path, name: str, config: dict, summary: dict, history: list[dict]) -> str:
    if imported_as(config):  # written whole by `cnnzoo import`: never training
        return "imported"
    if summary and summary.get("epochs") == (history[-1].get("epoch") if history else None):
        return "finished"
    writing = rundir.writer_running(root / name)
    if writing is None:  # no lock table to read: a run written to lately is taken as training
        path = run_file(root, name, METRICS) or run_file(root, name, CONFIG)
        writing = path is not None and time.time() - path.stat().st_mtime < LIVE_SECONDS
    return "training" if writing else ("stopped" if history else "starting")


def imported_as(config: dict) -> str | None:
    """How a run made by ``cnnzoo import`` holds its model (``weights``, ``torchscript``,
    ``exported`` or ``code``); None for a run cnnzoo trained."""
    found = config.get("imported")
    kind = found.get("format") if isinstance(found, dict) else None
    return kind if isinstance(kind, str) else None


def closed_reason(config: dict, run_code: bool) -> str | None:
    """Why a listed run is not opened: its model is the user's own Python (``import --code``), and
    the explorer was not started with ``--run-code``; None when it can be opened."""
    if run_code or imported_as(config) != "code":
        return None
    found = config["imported"]
    where = f"{found.get('attribute', '?')} in {Path(str(found.get('code', '?'))).name}"
    return (f"imported with --code: its model is {where}, and opening it runs that file's "
            f"Python; start the explorer with `cnnzoo serve --run-code` if you trust it")


def describe(root: Path, name: str, run_code: bool = False) -> dict:
    """One row of the runs list: model, dataset, accuracy, date, epochs, status; for an imported
    run, how it was imported and (``closed``) why it cannot be opened, if it cannot."""
    config, summary = _json(root, name, CONFIG), _json(root, name, SUMMARY)
    history = metrics(root, name)
    last = (rundir.evaluated(history) or [{}])[-1]  # the last evaluated (--eval-every skips some)
    dated = run_file(root, name, CONFIG) or run_path(root, name)
    accuracy = summary.get("test_top1", last.get("test_top1"))
    model = config.get("model", summary.get("model"))
    return {
        "name": name,
        "model": model,
        # with the run's builder arguments, as its figures name it
        "variant": variant_name(model, config.get("model_kwargs")) if isinstance(model, str)
        else model,
        "dataset": config.get("dataset", summary.get("dataset")),
        "test_top1": accuracy if isinstance(accuracy, (int, float)) else None,
        "best_test_top1": max(
            (row["test_top1"] for row in history if isinstance(row.get("test_top1"), float)),
            default=None,
        ),
        "epochs_done": len(history),
        "epochs_planned": config.get("epochs"),
        "date": time.strftime("%Y-%m-%d %H:%M", time.localtime(dated.stat().st_mtime)),
        "modified": max((p.stat().st_mtime for p in _files(root, name)), default=0.0),
        "status": _status(root, name, config, summary, history),
        "has_checkpoint": any(_exists(root, name, c) for c in CHECKPOINTS),
        "imported": imported_as(config),
        "closed": closed_reason(config, run_code),
    }


def _files(root: Path, name: str) -> list[Path]:
    found = []
    for relative in (CONFIG, METRICS, SUMMARY, *CHECKPOINTS):
        try:
            path = run_file(root, name, relative)
        except RunNotFound:
            continue
        if path is not None:
            found.append(path)
    return found


def list_runs(root: Path, run_code: bool = False) -> list[dict]:
    """Every run folder directly under ``root`` (links leading outside are left out), newest
    first."""
    rows = []
    children = [p for p in root.iterdir() if NAME.fullmatch(p.name)]
    children.sort(key=lambda p: p.lstat().st_mtime, reverse=True)
    for child in children[:MAX_RUNS]:
        try:
            rows.append(describe(root, run_path(root, child.name).name, run_code))
        except (RunNotFound, OSError):
            continue
    rows.sort(key=lambda row: row["modified"], reverse=True)
    return rows


def details(root: Path, name: str, run_code: bool = False) -> dict:
    """A run's page: its row, settings, metrics per epoch, per-class accuracy and which figures it
    has."""
    config = _json(root, name, CONFIG)
    config.pop("out", None)  # where it was written: a path on the server, not the run's business
    config.pop("data_dir", None)
    if isinstance(config.get("imported"), dict):  # where the model came from: paths on the server
        config["imported"] = {key: value for key, value in config["imported"].items()
                              if key not in ("file", "code")}
    return {**describe(root, name, run_code), "config": config,
            "summary": _json(root, name, SUMMARY), "metrics": metrics(root, name),
            "per_class": per_class(root, name),
            "figures": [f for f in FIGURES if _exists(root, name, f)]}


def _exists(root: Path, name: str, relative: str) -> bool:
    try:
        return run_file(root, name, relative) is not None
    except RunNotFound:
        return False


def data_dir(root: Path, name: str) -> str | None:
    """Where the run's data set was read from (config.json's data_dir), for test images and
    neighbours."""
    value = _json(root, name, CONFIG).get("data_dir")
    return value if isinstance(value, str) else None
