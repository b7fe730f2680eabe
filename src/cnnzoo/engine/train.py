"""``train(config)``: one training run, from a dataset name to a run directory with metrics, plots and checkpoints.

The fast path keeps the whole dataset as one uint8 tensor on the training device and cuts batches from it with
a seeded permutation (no DataLoader, no per-image Python work); augmentation runs on whole batches. Every
random draw — data order, crops, flips, dropout — comes from seeded generators whose states are saved with
each checkpoint, so ``resume`` continues a run exactly where it stopped.

Run directory (``--out``, default ``runs/<model>-<dataset>-<timestamp>/``):
``config.json`` (the settings and versions), ``metrics.csv`` (one row per epoch), ``summary.json``,
``curves.png``, ``confusion.png``, ``per_class.csv`` and ``checkpoints/{last,best}.safetensors``.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

import cnnzoo
from cnnzoo.console import log_to_stderr
from cnnzoo.data.augment import rgb_pca
from cnnzoo.data.tensors import Batches, ImageTensors, iterate_batches, load_dataset
from cnnzoo.engine import distributed
from cnnzoo.engine.checkpoint import load_checkpoint, save_checkpoint
from cnnzoo.engine.config import TrainConfig
from cnnzoo.engine.evaluate import EvalResult, evaluate
from cnnzoo.engine.inputs import InputSpec, channel_statistics, fit_images
from cnnzoo.engine.runtime import autocast, resolve_device, resolve_precision, seed_everything, synchronize
from cnnzoo.engine.schedules import PlateauDivider, lr_factor
from cnnzoo.errors import ConfigError, InputShapeError, NonFiniteLossError, RunDirectoryError, TrainingError
from cnnzoo.registry import accepts_input_size, build_for_size

Log = Callable[[str], None]


# ---- building the pieces ------------------------------------------------------------------------------------------


def build_model(config: TrainConfig, num_classes: int, in_channels: int, native_side: int) -> tuple[nn.Module, int]:
    """Build ``config.model`` for the data and choose the image side it will see.

    With ``config.input_size`` that side is used. Otherwise the data's own side is tried first (a model whose
    head depends on the size is built for it); if the model cannot take it — too small for its poolings, or
    a fixed-size network such as LeNet-1998 — the model's own default size is used and the images are padded
    or resized to it.
    """
    kwargs = {"num_classes": num_classes, "in_channels": in_channels, **config.model_kwargs}
    candidates = [config.input_size] if config.input_size else [native_side, None]
    for attempt, side in enumerate(candidates):
        last = attempt == len(candidates) - 1
        try:
            model = build_for_size(config.model, side, **kwargs)
        except TypeError as error:  # a misspelt --model-kwargs key
            raise ConfigError(f"{config.model} does not take these settings {config.model_kwargs}: {error}") from None
        except ValueError:
            if last:
                raise
            continue
        cfg = model.cfg
        side = side or cfg.input_size[1]
        if side >= cfg.min_size and (not cfg.fixed_size or side == cfg.input_size[1]):
            return model, side
        if last:
            raise InputShapeError(
                f"{config.model} cannot take {side}×{side} images (it needs "
                f"{'exactly ' + str(cfg.input_size[1]) if cfg.fixed_size else 'at least ' + str(cfg.min_size)}). "
                f"Choose --input-size accordingly"
                + (f", or use {cfg.small_variant}" if cfg.small_variant else "") + "."
            )
    raise AssertionError("unreachable")


def make_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    # Weight decay on weights only: decaying biases and BatchNorm scales only fights the normalisation.
    decay = [p for p in model.parameters() if p.requires_grad and p.dim() > 1]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.dim() <= 1]
    groups = [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    if config.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum,
                               nesterov=config.nesterov and config.momentum > 0)
    if config.optimizer == "adam":
        return torch.optim.Adam(groups, lr=config.lr)
    return torch.optim.AdamW(groups, lr=config.lr)


def compute_loss(outputs, targets: torch.Tensor, label_smoothing: float, aux_weight: float) -> torch.Tensor:
    """Cross-entropy; a tuple of outputs (GoogLeNet in training) adds its auxiliary losses, weighted."""
    if isinstance(outputs, tuple):
        main, *auxiliary = outputs
        loss = F.cross_entropy(main.float(), targets, label_smoothing=label_smoothing)
        for aux in auxiliary:
            loss = loss + aux_weight * F.cross_entropy(aux.float(), targets, label_smoothing=label_smoothing)
        return loss
    return F.cross_entropy(outputs.float(), targets, label_smoothing=label_smoothing)


def training_step(net: nn.Module, images: torch.Tensor, labels: torch.Tensor, *, augment, generator: torch.Generator,
                  optimizer: torch.optim.Optimizer, device: torch.device, precision: str = "fp32",
                  memory_format: torch.memory_format = torch.channels_last, label_smoothing: float = 0.0,
                  aux_weight: float = 0.0, grad_clip: float | None = None,
                  scaler: torch.amp.GradScaler | None = None) -> tuple[torch.Tensor, object]:
    """One optimiser step on a uint8 batch: augment, forward (under autocast), loss, backward, step.

    Raises ``NonFiniteLossError`` (its message the loss value) before touching the weights if the loss is not
    finite. Returns the loss and the model's outputs.
    """
    x = augment(images, generator).contiguous(memory_format=memory_format)
    with autocast(device, precision):
        outputs = net(x)
    loss = compute_loss(outputs, labels, label_smoothing, aux_weight)
    # every process must see the same verdict before backward, or the others would wait for its gradients
    non_finite, = distributed.agree_max([float(not torch.isfinite(loss))], loss.device)
    if non_finite:
        raise NonFiniteLossError(str(loss.item()))
    optimizer.zero_grad(set_to_none=True)
    if scaler is None:
        loss.backward()
        if grad_clip:
            nn.utils.clip_grad_norm_(net.parameters(), grad_clip)
        optimizer.step()
    else:
        scaler.scale(loss).backward()
        if grad_clip:
            scaler.unscale_(optimizer)  # clip the true gradients, not the scaled ones
            nn.utils.clip_grad_norm_(net.parameters(), grad_clip)
        scaler.step(optimizer)
        scaler.update()
    return loss, outputs


def make_run_dir(config: TrainConfig) -> Path:
    if config.out:
        run_dir = Path(config.out)
    else:
        dataset = config.dataset.replace("folder:", "folder-").replace("/", "_").strip("_")
        run_dir = Path("runs") / f"{config.model}-{dataset}-{datetime.now():%Y%m%d-%H%M%S}"
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


# ---- the run's mutable state ----------------------------------------------------------------------------------------


@dataclass
class RunState:
    epoch: int = 0  # epochs completed
    step: int = 0  # optimiser steps taken
    train_seconds: float = 0.0
    images_seen: int = 0
    best_top1: float = -1.0
    plateau: dict = field(default_factory=dict)
    history: list[dict] = field(default_factory=list)


def _rng_states(generator: torch.Generator) -> dict[str, torch.Tensor]:
    states = {"torch": torch.get_rng_state(), "data": generator.get_state()}
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state()
    return states


def _restore_rng(checkpoint, generator: torch.Generator) -> None:
    rng = checkpoint.group("rng")
    torch.set_rng_state(rng["torch"])
    generator.set_state(rng["data"])
    if "cuda" in rng and torch.cuda.is_available():
        torch.cuda.set_rng_state(rng["cuda"])


# ---- the loop -------------------------------------------------------------------------------------------------------


class _Progress:
    """A rich progress bar on stderr (when asked for), with loss, accuracy and images/s."""

    def __init__(self, enabled: bool) -> None:
        self.bar = None
        if enabled:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self.bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                TextColumn("{task.fields[stats]}"), TimeRemainingColumn(),
                                console=Console(stderr=True), transient=True)

    def __enter__(self):
        if self.bar:
            self.bar.__enter__()
        return self

    def __exit__(self, *exc):
        if self.bar:
            self.bar.__exit__(*exc)

    def start(self, description: str, total: int):
        return self.bar.add_task(description, total=total, stats="") if self.bar else None

    def update(self, task, stats: str) -> None:
        if self.bar:
            self.bar.update(task, advance=1, stats=stats)

    def finish(self, task) -> None:
        if self.bar:
            self.bar.remove_task(task)


@dataclass
class PreparedData:
    """The datasets as the model will see them, and what the checkpoints must remember about that."""

    train: Batches
    test: Batches
    classes: list[str]
    channels: int
    native_side: int  # the dataset's own image side
    spec: InputSpec
    rgb_pca: tuple[torch.Tensor, torch.Tensor] | None = None  # eigenvalues and vectors, for AlexNet's colour noise


def subset_indices(total: int, count: int | None, seed: int) -> torch.Tensor:
    """The images ``--train-subset``/``--test-subset`` keep: a seeded random ``count`` of ``total`` (not the first
    ones: image folders are ordered by class)."""
    if not count or count >= total:
        return torch.arange(total)
    return torch.randperm(total, generator=torch.Generator().manual_seed(seed))[:count]


def _random_subset(data: Batches, count: int | None, seed: int) -> Batches:
    return data if not count or count >= len(data) else data.subset(subset_indices(len(data), count, seed))


def _statistics_sample(data: Batches, seed: int, count: int = 10_000) -> torch.Tensor:
    """Up to ``count`` training images, drawn at random, for the normalisation statistics and PCA."""
    generator = torch.Generator().manual_seed(seed)
    return next(iterate_batches(data, count, shuffle=True, generator=generator))[0]


def prepare_data(config: TrainConfig, device: torch.device) -> tuple[PreparedData, nn.Module]:
    """Load the dataset, build the model for it, and move the images where training happens."""
    data = load_dataset(config.dataset, config.data_dir)
    train_data = _random_subset(data.train, config.train_subset, config.seed)
    test_data = _random_subset(data.test, config.test_subset, config.seed)
    sample = _statistics_sample(train_data, config.seed)
    channels, native_side = sample.shape[1], sample.shape[-1]
    model, side = build_model(config, len(data.classes), channels, native_side)
    if isinstance(train_data, ImageTensors):
        # in memory: pad once if the model wants slightly larger images, then keep it all on the device
        train_data = ImageTensors(fit_images(train_data.images, side), train_data.labels)
        test_data = ImageTensors(fit_images(test_data.images, side), test_data.labels)
    sample = fit_images(sample, side)
    mean, std = channel_statistics(sample)
    spec = InputSpec(size=side, mean=mean, std=std, crop_padding=config.crop_padding)
    pca = None
    if config.pca_noise > 0:
        if channels != 3:
            raise ConfigError(f"PCA colour noise needs RGB images; {config.dataset} has {channels} channel(s). "
                             f"Drop --pca-noise for grey datasets.")
        pca = rgb_pca(sample)
    prepared = PreparedData(train_data.to(device), test_data.to(device), data.classes, channels, native_side, spec,
                            pca)
    return prepared, model


def _augmentation(config: TrainConfig, prepared: PreparedData):
    eigvals, eigvecs = prepared.rgb_pca or (None, None)
    return prepared.spec.train_pipeline(flip=config.flip, pca_std=config.pca_noise, eigvals=eigvals, eigvecs=eigvecs)


RESUMABLE_SETTINGS = ("epochs", "time_budget", "device", "threads")


def _resumed_config(run_dir: Path, overrides: dict | None) -> TrainConfig:
    config = TrainConfig.from_json(run_dir / "config.json")
    config.out = str(run_dir)
    for name, value in (overrides or {}).items():
        if name not in RESUMABLE_SETTINGS:
            raise ConfigError(f"a resumed run keeps its settings; only {', '.join(RESUMABLE_SETTINGS)} can change "
                             f"(got {name})")
        setattr(config, name, value)
    return config


def train(config: TrainConfig | None, *, resume: Path | None = None, overrides: dict | None = None, progress: bool = False,
          log: Log = log_to_stderr) -> dict:
    """Train ``config.model`` on ``config.dataset``; returns the run's summary (also written to summary.json).

    With ``resume``, ``config`` is ignored: the run directory's own ``config.json`` and ``checkpoints/last``
    continue the run where it stopped; ``overrides`` may change epochs, time_budget, device and threads
    (e.g. more epochs to extend a finished run).
    """
    if resume is not None:
        config = _resumed_config(Path(resume), overrides)
    config.validate()
    device = resolve_device(config.device)
    precision = resolve_precision(config.precision, device)
    distributed_run = distributed.setup(device)
    main_process = distributed.is_main_process()
    if config.threads:
        torch.set_num_threads(config.threads)
    seed_everything(config.seed, config.deterministic)
    if not main_process:
        log = lambda message: None  # noqa: E731 - only rank 0 speaks

    prepared, model = prepare_data(config, device)
    augment = _augmentation(config, prepared)
    test_views = prepared.spec.eval_pipeline(config.test_views)
    memory_format = torch.channels_last if config.channels_last else torch.contiguous_format
    model = model.to(device=device, memory_format=memory_format)
    optimizer = make_optimizer(model, config)
    # fp16 needs loss scaling so small gradients do not underflow; for other precisions the scaler is inert
    scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")
    ema = (torch.optim.swa_utils.AveragedModel(
        model, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(config.ema_decay), use_buffers=True)
        if config.ema_decay else None)
    generator = torch.Generator().manual_seed(config.seed)
    state = RunState()
    plateau = PlateauDivider(patience=config.plateau_patience)
    run_dir = make_run_dir(config) if main_process else Path(config.out or ".")

    if resume is not None:
        checkpoint = load_checkpoint(run_dir / "checkpoints" / "last.safetensors")
        model.load_state_dict(checkpoint.model_state)
        optimizer.load_state_dict(checkpoint.optimizer_state())
        if ema is not None:
            ema.load_state_dict(checkpoint.group("ema"))
        if checkpoint.meta.get("scaler"):
            scaler.load_state_dict(checkpoint.meta["scaler"])
        _restore_rng(checkpoint, generator)
        state = RunState(**checkpoint.meta["run_state"])
        plateau = PlateauDivider(**state.plateau) if state.plateau else plateau
        budget_left = config.time_budget is None or state.train_seconds < config.time_budget
        if state.epoch >= config.epochs or not budget_left:
            raise ConfigError(f"{run_dir} already ran {state.epoch} epochs ({state.train_seconds:.0f} s of training); "
                             f"to continue it, raise --epochs (now {config.epochs}) or --time-budget")
        log(f"resuming {run_dir} after epoch {state.epoch}")
    if main_process:
        (run_dir / "config.json").write_text(json.dumps({**config.to_dict(), "versions": versions()}, indent=2))

    net = distributed.wrap(model, device) if distributed_run else model
    net = torch.compile(net) if config.compile else net
    aux_weight = getattr(model, "aux_loss_weight", 0.0)
    world, rank = distributed.world_size(), distributed.rank()
    steps_per_epoch = max(1, len(prepared.train) // config.batch_size // world)
    total_steps = config.epochs * steps_per_epoch
    params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    meta_common = {"model": config.model, "model_kwargs": _built_kwargs(model, config, prepared.spec.size),
                   "classes": prepared.classes, "input": prepared.spec.to_dict(), "data_size": prepared.native_side,
                   "dataset": config.dataset, "versions": versions()}
    side = prepared.spec.size
    log(f"{config.model}: {params:,} parameters, {side}×{side}×{prepared.channels} input; {config.dataset}: "
        f"{len(prepared.train):,} train / {len(prepared.test):,} test images; {device.type}, {precision}"
        + (f", {world} processes" if distributed_run else ""))

    stopped_by = "epochs"
    last_eval: EvalResult | None = None
    with _Progress(progress and main_process) as bar:
        while state.epoch < config.epochs and stopped_by == "epochs":
            epoch = state.epoch + 1
            net.train()
            task = bar.start(f"epoch {epoch}/{config.epochs}", steps_per_epoch)
            loss_sum = torch.zeros((), device=device)
            correct = torch.zeros((), device=device, dtype=torch.long)
            seen = 0
            synchronize(device)
            started = time.perf_counter()
            batches = iterate_batches(prepared.train, config.batch_size, shuffle=True, generator=generator,
                                      drop_last=True)
            for index, (images, labels) in enumerate(batches):
                if index >= steps_per_epoch * world:
                    break
                if index % world != rank:
                    continue
                images, labels = images.to(device, non_blocking=True), labels.to(device, non_blocking=True)
                done = state.step / total_steps
                if config.time_budget is not None:
                    # every process must stop at the same step: they agree on the largest elapsed time
                    elapsed, = distributed.agree_max([state.train_seconds + time.perf_counter() - started], device)
                    done = max(done, elapsed / config.time_budget)
                    if elapsed >= config.time_budget:
                        stopped_by = "time_budget"
                        break
                factor = lr_factor(config.schedule, done, warmup=config.warmup_epochs / config.epochs,
                                   epoch=state.epoch, step_epochs=config.step_epochs) * plateau.factor
                for group in optimizer.param_groups:
                    group["lr"] = config.lr * factor
                try:
                    loss, outputs = training_step(net, images, labels, augment=augment, generator=generator,
                                                  optimizer=optimizer, device=device, precision=precision,
                                                  memory_format=memory_format, label_smoothing=config.label_smoothing,
                                                  aux_weight=aux_weight, grad_clip=config.grad_clip, scaler=scaler)
                except NonFiniteLossError as error:
                    raise NonFiniteLossError(
                        f"the loss became {error} at epoch {epoch}, step {index // world + 1} (learning rate "
                        f"{config.lr * factor:.3g}); the best checkpoint was kept. Lower --lr, add --grad-clip, "
                        f"or use --precision fp32.") from None
                if ema is not None:
                    ema.update_parameters(model)
                state.step += 1
                main = outputs[0] if isinstance(outputs, tuple) else outputs
                loss_sum += loss.detach() * labels.numel()
                correct += (main.argmax(1) == labels).sum()
                seen += labels.numel()
                if task is not None:
                    stats = ""
                    if state.step % 10 == 0:
                        elapsed_epoch = time.perf_counter() - started
                        stats = (f"loss {loss_sum.item() / seen:.3f}  acc {correct.item() / seen:.3f}  "
                                 f"{seen * world / max(elapsed_epoch, 1e-9):,.0f} img/s")
                    bar.update(task, stats)
            synchronize(device)
            epoch_seconds = time.perf_counter() - started
            bar.finish(task)
            if seen == 0:
                break
            state.train_seconds += epoch_seconds
            state.images_seen += seen * world
            state.epoch = epoch
            eval_model = ema.module if ema is not None else model
            last_eval = evaluate(eval_model, prepared.test, test_views, num_classes=len(prepared.classes),
                                 device=device, precision=precision, channels_last=config.channels_last)
            if config.schedule == "plateau":
                # process 0's test error decides, so every process keeps the same learning rate
                plateau.update(distributed.from_main_process(1.0 - last_eval.top1, device))
            row = {"epoch": epoch, "lr": round(optimizer.param_groups[0]["lr"], 8),
                   "train_loss": round(loss_sum.item() / seen, 5), "train_top1": round(correct.item() / seen, 5),
                   "test_loss": round(last_eval.loss, 5), "test_top1": round(last_eval.top1, 5),
                   "test_top5": round(last_eval.top5, 5), "epoch_seconds": round(epoch_seconds, 3),
                   "images_per_second": round(seen * world / epoch_seconds, 1)}
            state.history.append(row)
            state.plateau = dataclasses.asdict(plateau)
            log(f"epoch {epoch}: train loss {row['train_loss']:.4f} acc {row['train_top1']:.4f} | test acc "
                f"{row['test_top1']:.4f} top-5 {row['test_top5']:.4f} | {epoch_seconds:.1f}s, "
                f"{row['images_per_second']:,.0f} img/s")
            if main_process:
                _write_metrics(run_dir, state.history)
                improved = last_eval.top1 > state.best_top1
                state.best_top1 = max(state.best_top1, last_eval.top1)
                meta = {**meta_common, "epoch": epoch, "test_top1": last_eval.top1, "run_state": vars(state)}
                if improved:
                    save_checkpoint(run_dir / "checkpoints" / "best.safetensors", model_state=eval_model.state_dict(),
                                    meta=meta)
                final = epoch == config.epochs or stopped_by != "epochs"
                if epoch % config.checkpoint_every == 0 or final:
                    save_checkpoint(run_dir / "checkpoints" / "last.safetensors", model_state=model.state_dict(),
                                    meta={**meta, "scaler": scaler.state_dict()}, optimizer_state=optimizer.state_dict(),
                                    rng=_rng_states(generator),
                                    extra_tensors={f"ema.{k}": v for k, v in ema.state_dict().items()} if ema else None)

    if last_eval is None:
        raise TrainingError(f"no epoch finished: the time budget ({config.time_budget} s) or the training set "
                         f"({len(prepared.train)} images, batch {config.batch_size}) is too small for one epoch")
    summary = {
        "model": config.model, "dataset": config.dataset, "epochs": state.epoch,
        "train_seconds": round(state.train_seconds, 2),
        "images_per_second": round(state.images_seen / max(state.train_seconds, 1e-9), 1),
        "params": params, "test_top1": last_eval.top1, "test_top5": last_eval.top5,
        "best_test_top1": state.best_top1, "test_views": config.test_views, "stopped_by": stopped_by,
        "device": device.type, "precision": precision, "seed": config.seed, "run_dir": str(run_dir),
    }
    if main_process:
        _write_outputs(run_dir, summary, state.history, last_eval, prepared.classes)
    distributed.cleanup()
    return summary


def _built_kwargs(model: nn.Module, config: TrainConfig, side: int) -> dict:
    """The builder arguments that rebuild this exact model (for evaluation and prediction from a checkpoint)."""
    kwargs = {"num_classes": model.cfg.num_classes, "in_channels": model.cfg.input_size[0], **config.model_kwargs}
    if accepts_input_size(config.model):
        kwargs["input_size"] = side
    return kwargs


def _write_metrics(run_dir: Path, history: list[dict]) -> None:
    with open(run_dir / "metrics.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(history[0]))
        writer.writeheader()
        writer.writerows(history)


def _write_outputs(run_dir: Path, summary: dict, history: list[dict], result: EvalResult, classes: list[str]) -> None:
    from cnnzoo.engine.plots import plot_confusion, plot_curves

    per_class = result.per_class_accuracy
    with open(run_dir / "per_class.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["class", "test_top1"])
        writer.writerows([name, round(acc, 5)] for name, acc in zip(classes, per_class))
    summary["per_class_top1"] = {name: round(acc, 5) for name, acc in zip(classes, per_class)}
    plot_curves(history, run_dir / "curves.png", title=f"{summary['model']} on {summary['dataset']}")
    plot_confusion(result.confusion, classes, run_dir / "confusion.png",
                   title=f"{summary['model']}: test top-1 {result.top1:.2%}")
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2))
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
