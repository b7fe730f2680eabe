"""The run directory and what is written into it.

``config.json`` (the settings and versions), ``metrics.csv`` (one row per epoch), ``summary.json``,
``curves.png``, ``confusion.png``, ``per_class.csv``, ``checkpoints/{last,best}.safetensors`` and, when the
tensorboard package is installed, ``tensorboard/``. Text files are written whole to a temporary file and
renamed, like the checkpoints, so a crash never leaves one half-written.
"""

from __future__ import annotations

import csv
import io
import json
import math
import sys
from pathlib import Path

import torch

import cnnzoo
from cnnzoo.engine.checkpoint import atomic_write_bytes
from cnnzoo.engine.config import TrainConfig
from cnnzoo.engine.evaluate import EvalResult
from cnnzoo.errors import RunDirectoryError
from cnnzoo.runs import timestamped_run_dir


def make_run_dir(config: TrainConfig) -> Path:
    """``config.out`` (or a timestamped folder under runs/), created with its checkpoints/ and checked writable."""
    run_dir = Path(config.out) if config.out else timestamped_run_dir(f"{config.model}-{config.dataset}")
    try:
        (run_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
        probe = run_dir / ".write-test"
        probe.write_text("ok")
        probe.unlink()
    except OSError as error:
        raise RunDirectoryError(f"cannot write the run directory {run_dir} ({error.strerror or error}); "
                                f"choose another with --out DIR") from None
    return run_dir


def versions() -> dict:
    return {"cnnzoo": cnnzoo.__version__, "torch": torch.__version__, "python": sys.version.split()[0]}


def write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def write_config(run_dir: Path, config: TrainConfig) -> None:
    write_text(run_dir / "config.json", json.dumps({**config.to_dict(), "versions": versions()}, indent=2))


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
    """The end-of-run files: per-class accuracy, the two figures, summary.json and TensorBoard events."""
    from cnnzoo.engine.plots import plot_confusion, plot_curves

    per_class = result.per_class_accuracy
    write_text(run_dir / "per_class.csv",
               _csv_text(["class", "test_top1"], [[name, round(acc, 5)] for name, acc in zip(classes, per_class)]))
    summary["per_class_top1"] = {name: round(acc, 5) for name, acc in zip(classes, per_class)}
    plot_curves(history, run_dir / "curves.png", title=f"{summary['model']} on {summary['dataset']}",
                label_smoothing=summary.get("label_smoothing", 0.0))
    plot_confusion(result.confusion, classes, run_dir / "confusion.png",
                   title=f"{summary['model']}: test top-1 {result.top1:.2%}")
    write_text(run_dir / "summary.json", json.dumps(summary, indent=2))
    _log_tensorboard(run_dir, history)


def _log_tensorboard(run_dir: Path, history: list[dict]) -> None:
    """Mirror metrics.csv into TensorBoard event files when the tensorboard package is installed."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return
    with SummaryWriter(str(run_dir / "tensorboard")) as writer:
        for row in history:
            for key, value in row.items():
                if key != "epoch" and isinstance(value, (int, float)) and math.isfinite(value):
                    writer.add_scalar(key, value, row["epoch"])
