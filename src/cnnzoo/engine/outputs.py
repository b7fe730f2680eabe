"""What a training run writes that needs torch or the figures: config.json with the versions it ran
on, and the end-of-run files (per-class accuracy, curves and confusion figures, TensorBoard events,
summary.json).

Where each file lives, and how it is written whole, is ``cnnzoo.rundir``'s business.
"""

from __future__ import annotations

import json
import math
import shutil
import sys
import tempfile
from pathlib import Path

import torch

from cnnzoo import rundir
from cnnzoo.engine.config import TrainConfig
from cnnzoo.engine.evaluate import EvalResult
from cnnzoo.files import publish
from cnnzoo.version import __version__


def versions() -> dict:
    return {"cnnzoo": __version__, "torch": torch.__version__, "python": sys.version.split()[0]}


def config_text(config: TrainConfig) -> str:
    return json.dumps({**config.to_dict(), "versions": versions()}, indent=2)


def write_config(run_dir: Path, config: TrainConfig) -> None:
    rundir.write_text(run_dir / rundir.CONFIG, config_text(config))


def write_outputs(run_dir: Path, summary: dict, history: list[dict], result: EvalResult,
                  classes: list[str], *, model: str) -> None:
    """The end-of-run files: per-class accuracy, the two figures (titled with ``model``, the
    network as built: ``variant_name``), TensorBoard events and, last, summary.json."""
    from cnnzoo.engine.plots import confusion_png, curves_png

    # a class without test images has no accuracy: empty in the CSV, null in the JSON
    per_class = {name: None if acc is None else round(acc, 5)
                 for name, acc in zip(classes, result.per_class_accuracy, strict=True)}
    rundir.write_text(run_dir / rundir.PER_CLASS, rundir.csv_text(
        ["class", "test_top1"], [list(pair) for pair in per_class.items()]))
    summary["per_class_top1"] = per_class
    rundir.write_bytes(run_dir / rundir.CURVES, curves_png(
        history, title=f"{model} on {summary['dataset']}",
        label_smoothing=summary.get("label_smoothing", 0.0)))
    rundir.write_bytes(run_dir / rundir.CONFUSION, confusion_png(
        result.confusion, classes, title=f"{model}\ntest top-1 {result.top1:.2%}"))
    with rundir.writing(run_dir / rundir.TENSORBOARD):
        _log_tensorboard(run_dir, history)
    rundir.write_text(run_dir / rundir.SUMMARY, json.dumps(summary, indent=2))


def _log_tensorboard(run_dir: Path, history: list[dict]) -> None:
    """Mirror metrics.csv into TensorBoard event files when the tensorboard package is installed.

    The events are written into a temporary folder that then replaces ``tensorboard/`` whole, so a
    resumed run does not add a second copy of its first epochs and a crash leaves the old folder or
    none.
    """
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return
    staging = Path(tempfile.mkdtemp(prefix=f".{rundir.TENSORBOARD}.", suffix=".tmp", dir=run_dir))
    try:
        with SummaryWriter(str(staging)) as writer:
            for row in history:
                for key, value in row.items():
                    if key != "epoch" and isinstance(value, (int, float)) and math.isfinite(value):
                        writer.add_scalar(key, value, row["epoch"])
        shutil.rmtree(run_dir / rundir.TENSORBOARD, ignore_errors=True)
        publish(staging, run_dir / rundir.TENSORBOARD)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
