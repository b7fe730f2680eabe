"""A run's state between epochs: counters and history, random-number states, and the ``last``
checkpoint that holds them with the weights, so that a resumed run continues exactly where it
stopped.

Everything that influences what comes next is saved: model and optimiser tensors, the loss scaler,
the weight average, the global and data-order generators, the plateau schedule's memory. Restoring
all of it is what makes an interrupted-and-resumed run end with the same weights as an uninterrupted
one.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from cnnzoo.engine.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from cnnzoo.engine.config import TrainConfig
from cnnzoo.engine.schedules import PlateauDivider
from cnnzoo.errors import CheckpointError, in_one_line

# What may change when a run is resumed: how long it goes on and where it runs, nothing that shapes
# the result.


@dataclass
class RunState:
    epoch: int = 0  # epochs completed
    step: int = 0  # optimiser steps taken
    train_seconds: float = 0.0
    images_seen: int = 0
    best_top1: float = -1.0
    skipped_steps: int = 0  # steps skipped for a non-finite loss (--skip-nonfinite)
    # --snapshots auto's decision, once measured (None: not yet), kept so a resumed run keeps to it
    snapshots_kept: bool | None = None
    plateau: dict = field(default_factory=dict)
    history: list[dict] = field(default_factory=list)


@dataclass
class Trainable:
    """What a training step changes: the model, its optimiser, loss scaler and weight average, and
    the generator of data order and augmentation."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    ema: torch.optim.swa_utils.AveragedModel | None
    generator: torch.Generator

    @property
    def eval_model(self) -> nn.Module:
        return self.ema.module if self.ema is not None else self.model


def rng_states(generator: torch.Generator) -> dict[str, torch.Tensor]:
    states = {"torch": torch.get_rng_state(), "data": generator.get_state()}
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state()
    return states


def restore_rng(checkpoint: Checkpoint, generator: torch.Generator) -> None:
    rng = checkpoint.group("rng")
    torch.set_rng_state(rng["torch"])
    generator.set_state(rng["data"])
    if "cuda" in rng and torch.cuda.is_available():
        torch.cuda.set_rng_state(rng["cuda"])


def save_last(path: Path, trainable: Trainable, meta: dict) -> None:
    """The ``last`` checkpoint: weights, optimiser, scaler, weight average and random states
    together."""
    ema = trainable.ema
    save_checkpoint(
        path,
        model_state=trainable.model.state_dict(),
        meta={**meta, "scaler": trainable.scaler.state_dict()},
        optimizer_state=trainable.optimizer.state_dict(),
        rng=rng_states(trainable.generator),
        extra_tensors={f"ema.{k}": v for k, v in ema.state_dict().items()} if ema else None,
    )


def restore_last(path: Path, trainable: Trainable) -> RunState:
    """Load ``path`` (written by ``save_last``) into ``trainable``; returns the run's state at that
    point.

    A file that is not such a checkpoint (bare weights, a ``best`` checkpoint, another model's, a
    damaged one) is a ``CheckpointError`` naming it, and the run stops there.
    """
    checkpoint = load_checkpoint(path)
    meta, rng = checkpoint.meta, checkpoint.group("rng")
    lacking = [
        part
        for part, present in (
            ("run state", isinstance(meta.get("run_state"), dict)),
            ("optimiser state", isinstance(meta.get("optimizer"), dict)),
            ("random states", "torch" in rng and "data" in rng),
        )
        if not present
    ]
    if lacking:
        raise CheckpointError(
            f"{path}: has no {' or '.join(lacking)}, so a run cannot resume from it (bare weights "
            "or a best checkpoint?); --resume takes a run directory whose checkpoints/last was "
            "written by cnnzoo train"
        )
    name = trainable.model.cfg.name
    if meta.get("model", name) != name:
        raise CheckpointError(f"{path}: holds {json.dumps(meta['model'])[:60]}, but this run (its "
                              f"config.json) trains {name}; the checkpoint is another run's: put "
                              "back this run's own")
    try:
        trainable.model.load_state_dict(checkpoint.model_state)
        trainable.optimizer.load_state_dict(checkpoint.optimizer_state())
        if trainable.ema is not None:
            trainable.ema.load_state_dict(checkpoint.group("ema"))
        if meta.get("scaler"):
            trainable.scaler.load_state_dict(meta["scaler"])
        restore_rng(checkpoint, trainable.generator)
        return RunState(**meta["run_state"])
    except (RuntimeError, ValueError, TypeError, LookupError, AttributeError) as error:
        raise CheckpointError(f"{path}: its training state does not fit this run "
                              f"({in_one_line(error)}); the file is damaged or is "
                              "another run's") from None


def plateau_of(state: RunState, config: TrainConfig) -> PlateauDivider:
    """The plateau schedule as the state left it (a fresh one for a new run)."""
    return (
        PlateauDivider(**state.plateau)
        if state.plateau
        else PlateauDivider(patience=config.plateau_patience)
    )
