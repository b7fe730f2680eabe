"""What a finished epoch leaves behind: the run's state advanced and its metrics row, its
checkpoints (refused when a weight or the test loss is not finite), and at the end the run's
summary. Called by ``engine.train`` on every process; only process 0 writes."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import torch

from cnnzoo.engine import distributed
from cnnzoo.engine.autotune import Tuning
from cnnzoo.engine.checkpoint import save_checkpoint
from cnnzoo.engine.config import TrainConfig
from cnnzoo.engine.evaluate import EvalResult
from cnnzoo.engine.loop import EpochResult
from cnnzoo.engine.state import RunState, Trainable, save_last
from cnnzoo.errors import NonFiniteLossError
from cnnzoo.rundir import BEST, LAST, write_metrics, writing


def record_epoch(state: RunState, epoch: EpochResult, result: EvalResult | None,
                 trainable: Trainable, plateau) -> tuple[dict, bool]:
    """Advance the run's state past a finished epoch (on every process); returns its metrics row and
    whether the test accuracy improved. An epoch not evaluated (``result`` None) has None for its
    test figures and never improves."""
    world = distributed.world_size()
    state.train_seconds += epoch.seconds
    state.images_seen += epoch.images * world
    state.epoch += 1
    row = {"epoch": state.epoch, "lr": round(trainable.optimizer.param_groups[0]["lr"], 8),
           "train_loss": round(epoch.loss, 5), "train_top1": round(epoch.top1, 5),
           **_test_figures(result), "epoch_seconds": round(epoch.seconds, 3),
           "images_per_second": round(epoch.images * world / epoch.seconds, 1),
           **({} if epoch.skipped is None else {"skipped_steps": epoch.skipped})}
    state.history.append(row)
    state.plateau = dataclasses.asdict(plateau)
    improved = result is not None and result.top1 > state.best_top1
    if improved:
        state.best_top1 = result.top1
    return row, improved


def _test_figures(result: EvalResult | None) -> dict:
    figures = {"test_loss": None, "test_top1": None, "test_top5": None}
    if result is not None:
        figures = {"test_loss": round(result.loss, 5), "test_top1": round(result.top1, 5),
                   "test_top5": round(result.top5, 5)}
    return figures


def refuse_non_finite(trainable: Trainable, result: EvalResult | None, epoch: int) -> None:
    """A checkpoint is good only if its weights and its evaluation (when the epoch has one) are
    finite. The loss is checked as the epoch trains, but the last steps' update can still make
    weights NaN (the loss before it was finite), and so can a weight average: checked here, once an
    epoch, before anything of it is saved (the same on every process)."""
    state = {name: t for name,
             t in trainable.eval_model.state_dict().items() if t.is_floating_point()}
    if (result is None or math.isfinite(result.loss)) and bool(
        torch.stack([torch.isfinite(t).all() for t in state.values()]).all()
    ):
        return
    bad = next((name for name, t in state.items() if not bool(torch.isfinite(t).all())), None)
    what = f"the weight {bad}" if bad else f"the test loss ({result.loss})"
    raise NonFiniteLossError(f"{what} became NaN or infinite in epoch {epoch} while the training "
                             "loss stayed finite; the checkpoints of the epochs before it were "
                             "kept. Lower --lr, or add --grad-clip")


def save_epoch(run_dir: Path, state: RunState, trainable: Trainable, result: EvalResult | None,
               meta: dict, *, improved: bool, final: bool, every: int) -> None:
    """metrics.csv after every epoch; ``best`` when test accuracy improved; ``last`` every ``every``
    epochs.

    A write that fails stops the run with a ``RunDirectoryError`` naming the file; the checkpoint
    files keep their previous contents (each write is whole or not at all), so ``--resume``
    continues from them.
    """
    write_metrics(run_dir, state.history)
    meta = {**meta, "test_top1": None if result is None else result.top1,
            "run_state": vars(state)}
    if improved:
        best = run_dir / BEST
        with writing(best):
            save_checkpoint(best, model_state=trainable.eval_model.state_dict(), meta=meta)
    if state.epoch % every == 0 or final:
        with writing(run_dir / LAST):
            save_last(run_dir / LAST, trainable, meta)


def run_summary(config: TrainConfig, state: RunState, result: EvalResult, *, params: int,
                out_of_time: bool, device: torch.device, tuning: Tuning, run_dir: Path) -> dict:
    return {
        "model": config.model, "dataset": config.dataset, "epochs": state.epoch,
        "train_seconds": round(state.train_seconds, 2),
        "images_per_second": round(state.images_seen / max(state.train_seconds, 1e-9), 1),
        "params": params, "test_top1": result.top1, "test_top5": result.top5,
        "best_test_top1": state.best_top1, "test_views": config.test_views,
        "stopped_by": "time_budget" if out_of_time else "epochs",
        "device": device.type, "precision": tuning.precision, "channels_last": tuning.channels_last,
        "compile": tuning.compile, "tuning": tuning.to_dict(), "seed": config.seed,
        "run_dir": str(run_dir), "label_smoothing": config.label_smoothing,
    }
