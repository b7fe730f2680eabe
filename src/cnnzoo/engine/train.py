"""``train(config)``: one training run, from a dataset name to a run directory with metrics, plots and checkpoints.

It reads as the short script it is: set up (runtime, data, model, optimiser, run directory), then for each epoch
train, evaluate and record. The pieces live in modules named for their job: ``prepare`` (the data), ``inputs``
(the image side), ``build`` (model and optimiser), ``state`` (what a checkpoint holds and resume restores),
``loop`` (the steps of one epoch), ``evaluate`` and ``run_dir`` (the files written).

The fast path keeps the whole dataset as one uint8 tensor on the training device and cuts batches from it with a
seeded permutation (no DataLoader, no per-image Python work); augmentation runs on whole batches. Every random
draw — data order, crops, flips, dropout — comes from seeded generators whose states are saved with each
checkpoint, so a resumed run continues exactly where it stopped.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch

from cnnzoo.console import Log, log_to_stderr
from cnnzoo.engine import distributed
from cnnzoo.engine.build import build_model, builder_kwargs, limits_for, make_ema, make_optimizer
from cnnzoo.engine.config import TrainConfig
from cnnzoo.engine.evaluate import EvalResult, evaluate
from cnnzoo.engine.inputs import choose_input_side
from cnnzoo.engine.loop import EpochResult, StepSettings, train_one_epoch
from cnnzoo.engine.prepare import load_data, prepare_data
from cnnzoo.engine.progress import Progress
from cnnzoo.engine.run_dir import make_run_dir, versions, write_config, write_metrics, write_outputs
from cnnzoo.engine.runtime import resolve_device, resolve_precision, seed_everything
from cnnzoo.engine.schedules import lr_factor
from cnnzoo.engine.state import RunState, Trainable, plateau_of, restore_last, resumed_config, save_last
from cnnzoo.engine.checkpoint import save_checkpoint
from cnnzoo.errors import ConfigError, TrainingError


def train(config: TrainConfig | None, *, resume: Path | None = None, overrides: dict | None = None,
          progress: bool = False, log: Log = log_to_stderr) -> dict:
    """Train ``config.model`` on ``config.dataset``; returns the run's summary (also written to summary.json).

    With ``resume``, ``config`` is ignored: the run directory's own ``config.json`` and ``checkpoints/last``
    continue the run where it stopped; ``overrides`` may change epochs, time_budget, device and threads
    (e.g. more epochs to extend a finished run).
    """
    config = resumed_config(Path(resume), overrides) if resume is not None else config
    device = resolve_device(config.device)
    precision = resolve_precision(config.precision, device)
    distributed_run = distributed.setup(device)
    main_process = distributed.is_main_process()
    log = log if main_process else (lambda message: None)  # only rank 0 speaks
    if config.threads:
        torch.set_num_threads(config.threads)
    seed_everything(config.seed, config.deterministic)

    loaded = load_data(config)
    side = choose_input_side(limits_for(config, loaded.channels), loaded.side, config.input_size)
    data = prepare_data(loaded, config, side, device)
    settings = StepSettings(device, precision, torch.channels_last if config.channels_last else torch.contiguous_format,
                            config.label_smoothing, config.grad_clip)
    model = build_model(config, len(data.classes), data.channels, side).to(device=device,
                                                                           memory_format=settings.memory_format)
    trainable = Trainable(model, make_optimizer(model, config),
                          torch.amp.GradScaler(device.type, enabled=precision == "fp16"),  # fp16 needs loss scaling
                          make_ema(model, config.ema_decay), torch.Generator().manual_seed(config.seed))
    run_dir = make_run_dir(config) if main_process else Path(config.out or ".")
    state = _resume(run_dir, trainable, config, log) if resume is not None else RunState()
    plateau = plateau_of(state, config)
    if main_process:
        write_config(run_dir, config)
    net = distributed.wrap(model, device) if distributed_run else model
    net = torch.compile(net) if config.compile else net
    augment, test_views = data.augmentation(config), data.spec.eval_pipeline(config.test_views)
    meta = {"model": config.model, "model_kwargs": builder_kwargs(model, config), "classes": data.classes,
            "input": data.spec.to_dict(), "data_size": data.native_side, "dataset": config.dataset,
            "versions": versions()}
    params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    _warn_if_too_few_steps(config, len(data.train), log)
    log(f"{config.model}: {params:,} parameters, {side}×{side}×{data.channels} input; {config.dataset}: "
        f"{len(data.train):,} train / {len(data.test):,} test images; {device.type}, {precision}"
        + (f", {distributed.world_size()} processes" if distributed_run else ""))

    last_eval, out_of_time = None, False
    with Progress(progress and main_process) as bar:
        while state.epoch < config.epochs and not out_of_time:
            epoch = train_one_epoch(net, trainable, data.train, augment, config=config, settings=settings,
                                    state=state, plateau=plateau, bar=bar, log=log if state.epoch == 0 else None)
            out_of_time = epoch.out_of_time
            if epoch.images == 0:
                break
            last_eval = evaluate(trainable.eval_model, data.test, test_views, num_classes=len(data.classes),
                                 device=device, precision=precision, channels_last=config.channels_last)
            if config.schedule == "plateau":
                # process 0's test error decides, so every process keeps the same learning rate
                plateau.update(distributed.from_main_process(1.0 - last_eval.top1, device))
            row = _record_epoch(state, epoch, last_eval, trainable, plateau)
            log(f"epoch {row['epoch']}: train loss {row['train_loss']:.4f} acc {row['train_top1']:.4f} | test acc "
                f"{row['test_top1']:.4f} top-5 {row['test_top5']:.4f} | {row['epoch_seconds']:.1f}s, "
                f"{row['images_per_second']:,.0f} img/s")
            if main_process:
                _save_epoch(run_dir, state, trainable, last_eval, {**meta, "epoch": state.epoch},
                            final=state.epoch == config.epochs or out_of_time, every=config.checkpoint_every)

    if last_eval is None:
        raise TrainingError(f"no epoch finished: the time budget ({config.time_budget} s) or the training set "
                            f"({len(data.train)} images, batch {config.batch_size}) is too small for one epoch")
    summary = _summary(config, state, last_eval, params=params, out_of_time=out_of_time, device=device,
                       precision=precision, run_dir=run_dir)
    if main_process:
        write_outputs(run_dir, summary, state.history, last_eval, data.classes)
    distributed.cleanup()
    return summary


def _warn_if_too_few_steps(config: TrainConfig, images: int, log: Log) -> None:
    steps = config.epochs * max(1, images // config.batch_size // distributed.world_size())
    if steps < 100:
        log(f"note: {config.epochs} epoch{'s' if config.epochs != 1 else ''} of {images:,} images in batches of "
            f"{config.batch_size} are only {steps} optimiser steps, too few for most networks to learn much; "
            f"train longer (--epochs), on more images, or with a smaller --batch-size")


def _summary(config: TrainConfig, state: RunState, result: EvalResult, *, params: int, out_of_time: bool,
             device: torch.device, precision: str, run_dir: Path) -> dict:
    return {
        "model": config.model, "dataset": config.dataset, "epochs": state.epoch,
        "train_seconds": round(state.train_seconds, 2),
        "images_per_second": round(state.images_seen / max(state.train_seconds, 1e-9), 1),
        "params": params, "test_top1": result.top1, "test_top5": result.top5,
        "best_test_top1": state.best_top1, "test_views": config.test_views,
        "stopped_by": "time_budget" if out_of_time else "epochs",
        "device": device.type, "precision": precision, "seed": config.seed, "run_dir": str(run_dir),
        "label_smoothing": config.label_smoothing,
    }


def _resume(run_dir: Path, trainable: Trainable, config: TrainConfig, log: Log) -> RunState:
    state = restore_last(run_dir / "checkpoints" / "last.safetensors", trainable)
    budget_left = config.time_budget is None or state.train_seconds < config.time_budget
    if state.epoch >= config.epochs or not budget_left:
        raise ConfigError(f"{run_dir} already ran {state.epoch} epochs ({state.train_seconds:.0f} s of training); "
                          f"to continue it, raise --epochs (now {config.epochs}) or --time-budget")
    log(f"resuming {run_dir} after epoch {state.epoch}")
    if (run_dir / "summary.json").is_file() and state.epoch:  # it had finished: this extends it
        steps_per_epoch = state.step / state.epoch
        factor = lr_factor(config.schedule, state.step / (steps_per_epoch * config.epochs),
                           warmup=config.warmup_epochs / config.epochs, epoch=state.epoch,
                           step_epochs=config.step_epochs)
        log(f"note: extending a finished run; its {config.schedule} schedule is re-planned over {config.epochs} "
            f"epochs, so the learning rate goes from {trainable.optimizer.param_groups[0]['lr']:.3g} (where it "
            f"ended) to {config.lr * factor:.3g} now")
    return state


def _record_epoch(state: RunState, epoch: EpochResult, result: EvalResult, trainable: Trainable, plateau) -> dict:
    """Advance the run's state past a finished epoch; returns its metrics row."""
    world = distributed.world_size()
    state.train_seconds += epoch.seconds
    state.images_seen += epoch.images * world
    state.epoch += 1
    row = {"epoch": state.epoch, "lr": round(trainable.optimizer.param_groups[0]["lr"], 8),
           "train_loss": round(epoch.loss, 5), "train_top1": round(epoch.top1, 5),
           "test_loss": round(result.loss, 5), "test_top1": round(result.top1, 5),
           "test_top5": round(result.top5, 5), "epoch_seconds": round(epoch.seconds, 3),
           "images_per_second": round(epoch.images * world / epoch.seconds, 1)}
    state.history.append(row)
    state.plateau = dataclasses.asdict(plateau)
    return row


def _save_epoch(run_dir: Path, state: RunState, trainable: Trainable, result: EvalResult, meta: dict, *,
                final: bool, every: int) -> None:
    """metrics.csv after every epoch; ``best`` when test accuracy improved; ``last`` every ``every`` epochs."""
    write_metrics(run_dir, state.history)
    improved = result.top1 > state.best_top1
    state.best_top1 = max(state.best_top1, result.top1)
    meta = {**meta, "test_top1": result.top1, "run_state": vars(state)}
    if improved:
        save_checkpoint(run_dir / "checkpoints" / "best.safetensors", model_state=trainable.eval_model.state_dict(),
                        meta=meta)
    if state.epoch % every == 0 or final:
        save_last(run_dir / "checkpoints" / "last.safetensors", trainable, meta)
