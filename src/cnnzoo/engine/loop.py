"""The epoch loop: one optimiser step, and one pass over the training set made of them.

Under torchrun every process draws the same seeded batch order and asks the data set for its
``Shard`` of it (batch i goes to process i mod world), so the processes train on disjoint batches
without exchanging indices and a streamed folder decodes each image once per epoch in all;
DistributedDataParallel averages the gradients. One step of N processes with batches of B is one
step of a single process with a batch of N×B (the same images).

Two options change what a step is fed. ``--alternate-flips`` asks the data set for each batch's
image indices (global ones, whatever the shard) and mirrors the images ``augment.alternating_flips``
picks from coins seeded by ``--seed`` and the epoch's parity, so a resumed or sharded run mirrors
exactly as one uninterrupted process does. ``--progressive-resize`` shrinks each batch to
``schedules.progressive_side`` of the run's progress, the same fraction the learning rate follows.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from cnnzoo.data.augment import TrainAugment, alternating_flips, flip_coins
from cnnzoo.data.dataset import ImageDataset, Shard
from cnnzoo.engine import distributed
from cnnzoo.engine.config import TrainConfig
from cnnzoo.engine.progress import Progress
from cnnzoo.engine.runtime import autocast, synchronize
from cnnzoo.engine.schedules import PlateauDivider, lr_factor, progressive_side
from cnnzoo.engine.state import RunState, Trainable
from cnnzoo.errors import NonFiniteLossError


@dataclass
class StepSettings:
    """How each step runs: where, in which precision and memory layout, with which loss options."""

    device: torch.device
    precision: str = "fp32"
    memory_format: torch.memory_format = torch.channels_last
    label_smoothing: float = 0.0
    grad_clip: float | None = None
    # check each loss before its update, and skip the update if it is not finite
    skip_nonfinite: bool = False


@dataclass
class EpochResult:
    loss: float  # mean training loss over the images seen
    top1: float
    images: int  # images this process trained on
    seconds: float
    out_of_time: bool  # the time budget is spent: no epoch follows (this one may have ended early)
    skipped: int | None = None  # steps skipped for a non-finite loss (None: not asked to skip)


# steps between checks after an epoch's first 17: each costs a host sync and, under torchrun, an
CHECK_EVERY = 25
# all-reduce; a non-finite loss trains on at most this many steps before the run stops


def steps_per_epoch(images: int, batch_size: int, world: int) -> int:
    """Optimiser steps each of ``world`` processes takes per epoch over ``images``: whole batches of
    its share, at least one (every process takes as many, or one would wait for the others)."""
    return max(1, images // batch_size // world)


def epoch_batch_size(images: int, batch_size: int, world: int) -> int:
    """The batch a run trains in: ``batch_size``, or all of each process's share of a training
    set smaller than one batch each, so that an epoch has its step (only whole batches train)."""
    return max(1, min(batch_size, images // world))


class _Checks:
    """The decisions every process must take alike — stop for a non-finite loss, stop for the time
    budget, and the learning rate a budget stretches — taken at checks rather than at every step.

    A check comes before an epoch's steps 1, 2, 3, 5, 9 and 17, then every ``CHECK_EVERY`` steps,
    before a step the clock (extrapolated at the rate measured between the last two checks) says is
    past the budget, and after the epoch's last step. It reads the losses kept on the device since
    the last check in one transfer; under torchrun the processes then agree, in one all-reduce, on
    the clock and on the first step whose loss was not finite. Between checks a budget's progress,
    for the learning rate, is that extrapolation: agreed figures only, so every process sets the
    same learning rate.

    A non-finite loss stops the run at the next check, at most ``CHECK_EVERY`` steps later. The
    steps in between trained on (NaN gradients make the weights NaN), but the epoch is abandoned:
    ``NonFiniteLossError`` names the first bad step, its loss and learning rate, and nothing of the
    epoch is saved, so ``best`` and ``last`` keep the weights of the epochs before it.
    """

    def __init__(self, config: TrainConfig, state: RunState, device: torch.device,
                 started: float) -> None:
        self.budget, self.device, self.epoch = config.time_budget, device, state.epoch + 1
        self.seconds_before, self.started = state.train_seconds, started
        # of the steps since the last check, still on the device
        self.losses: list[torch.Tensor] = []
        self.lrs: list[float] = []
        # the last check's step index and clock
        self.checked_at, self.checked_seconds = 0, state.train_seconds
        self.seconds_per_step = 0.0  # between the last two checks
        self.done = 0.0  # the largest share of the budget the learning rate has been set for

    def _estimated_seconds(self, index: int) -> float:
        return self.checked_seconds + (index - self.checked_at) * self.seconds_per_step

    def due(self, index: int) -> bool:
        """Whether a check comes before step ``index`` (0-based) of the epoch."""
        # a step rate to extrapolate from, soon
        early = index < CHECK_EVERY and index & (index - 1) == 0
        past_budget = self.budget is not None and self._estimated_seconds(index) >= self.budget
        return early or index % CHECK_EVERY == 0 or past_budget

    def budget_done(self, index: int) -> float:
        """The share of the time budget spent before step ``index`` (0 without a budget); never less
        than before in this epoch, though a check may find the clock behind an estimate (a slow
        first step overestimates)."""
        if self.budget is not None:
            self.done = max(self.done, self._estimated_seconds(index) / self.budget)
        return self.done

    def record(self, loss: torch.Tensor, lr: float) -> None:
        self.losses.append(loss.detach())
        self.lrs.append(lr)

    def check(self, index: int) -> bool:
        """Before step ``index`` (0-based; the epoch's length after its last step): raises
        ``NonFiniteLossError`` if a loss since the last check was not finite on any process; returns
        whether the time budget is spent."""
        losses = torch.stack(self.losses).float().tolist() if self.losses else []
        bad = next((at for at, loss in enumerate(losses) if not math.isfinite(loss)), None)
        elapsed = self.seconds_before + time.perf_counter() - self.started
        # the maximum of minus the step is the earliest bad step over the processes
        elapsed, earliest = distributed.agree_max(
            [elapsed, -math.inf if bad is None else -(self.checked_at + bad)], self.device
        )
        if earliest > -math.inf:
            at = int(-earliest) - self.checked_at
            value = f"{losses[at]}" if at == bad else "non-finite on another process"
            raise NonFiniteLossError(
                f"the loss became {value} at epoch {self.epoch}, step {self.checked_at + at + 1} "
                f"(learning rate {self.lrs[at]:.3g}). Lower --lr, add --grad-clip, or use "
                "--precision fp32.")
        if index > self.checked_at:
            self.seconds_per_step = (elapsed - self.checked_seconds) / (index - self.checked_at)
        self.checked_at, self.checked_seconds = index, elapsed
        self.losses.clear()
        self.lrs.clear()
        return self.budget is not None and elapsed >= self.budget


@dataclass
class _StepTricks:
    """What ``--alternate-flips`` and ``--progressive-resize`` change in each step of an epoch: the
    images to mirror and the side to train at, as ``training_step``'s ``mirror`` and ``side``."""

    coins: torch.Tensor | None  # every image's flip coin, on the data's device
    start: int | None  # the progressive resizing's first side

    @classmethod
    def of(cls, config: TrainConfig, data: ImageDataset) -> _StepTricks:
        # the coins come from the seed alone: the same in every epoch, process and resumed run
        # (TrainConfig refuses --alternate-flips without --flip)
        return cls(flip_coins(len(data), config.seed).to(data.device) if config.alternate_flips
                   else None,
                   config.progressive_resize)

    @property
    def needs_indices(self) -> bool:
        return self.coins is not None

    def for_step(self, indices: list[torch.Tensor], epoch: int, done: float,
                 full: int) -> dict:
        """``mirror`` and ``side`` for a batch of the images at ``indices`` (the batch's third
        element, when asked for), in ``epoch`` (from 0), ``done`` (the schedule's progress) into
        the run, at most ``full`` pixels a side; only those that are set."""
        options = {}
        if self.coins is not None:
            options["mirror"] = alternating_flips(self.coins[indices[0]], epoch)
        if self.start is not None:
            options["side"] = progressive_side(self.start, full, done)
        return options


def training_step(
    net: nn.Module,
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    *,
    augment: TrainAugment,
    trainable: Trainable,
    settings: StepSettings,
    mirror: torch.Tensor | None = None,
    side: int | None = None,
) -> tuple[torch.Tensor, object]:
    """One optimiser step on a uint8 batch: augment, forward (under autocast), loss, backward, step.

    ``net`` is what runs (``model`` itself, or wrapped for several processes or compiled); ``model``
    declares its training loss. ``mirror`` (which images to flip, instead of random coins) and
    ``side`` (the side to train at, instead of the full one) go to ``augment``. Returns the loss
    without reading it: whether it is finite is the caller's to check, when it next reads the device
    (see ``_Checks``), since a read per step would wait for the step to finish.
    """
    # passed only when set, so that a plain ``augment(images, generator)`` still serves
    options = {k: v for k, v in (("mirror", mirror), ("side", side)) if v is not None}
    x = augment(images, trainable.generator, **options)
    x = x.contiguous(memory_format=settings.memory_format)
    with autocast(settings.device, settings.precision):
        outputs = net(x)
    loss = model.training_loss(outputs, labels, label_smoothing=settings.label_smoothing)
    if settings.skip_nonfinite:  # opt-in: every process must skip alike, so they agree, every step
        bad, = distributed.agree_max([float(not torch.isfinite(loss))], loss.device)
        if bad:
            return loss, None  # no backward, no update
    optimizer, scaler = trainable.optimizer, trainable.scaler
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()  # the scaler is inert unless the precision is fp16
    if settings.grad_clip:
        scaler.unscale_(optimizer)  # clip the true gradients, not the scaled ones
        nn.utils.clip_grad_norm_(net.parameters(), settings.grad_clip)
    scaler.step(optimizer)
    scaler.update()
    return loss, outputs


def _set_learning_rate(optimizer: torch.optim.Optimizer, config: TrainConfig, state: RunState,
                       done: float, plateau: PlateauDivider) -> float:
    """Scale every parameter group's base rate by the schedule's factor at ``done``; returns
    ``--lr`` so scaled, the rate reported."""
    factor = lr_factor(config.schedule, done, warmup=config.warmup_epochs / config.epochs,
                       epoch=state.epoch, step_epochs=config.step_epochs) * plateau.factor
    for group in optimizer.param_groups:
        # each group's own rate (--lr, --muon-lr, --bn-bias-lr's multiple); a checkpoint written
        # before groups carried one holds --lr's groups only
        group["lr"] = group.get("base_lr", config.lr) * factor
    return config.lr * factor


def _duration(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h" if seconds >= 3600 else f"{seconds / 60:.0f} min"


def _announce_cost(log, config: TrainConfig, data_size: int, steps_left: int,
                   step_seconds: float) -> None:
    """Say what an untimed run will cost, from its first steps, when that is more than five
    minutes."""
    if config.time_budget is None and steps_left * step_seconds > 300:
        log(
            f"at {config.batch_size / step_seconds:,.0f} img/s, the {config.epochs} epochs over "
            f"{data_size:,} images will take about {_duration(steps_left * step_seconds)}; "
            "--time-budget SECONDS or fewer --epochs spend less (Ctrl-C stops; --resume continues "
            "from the last finished epoch)"
        )


def train_one_epoch(
    net: nn.Module,
    trainable: Trainable,
    data: ImageDataset,
    augment: TrainAugment,
    *,
    config: TrainConfig,
    settings: StepSettings,
    state: RunState,
    plateau: PlateauDivider,
    bar: Progress,
    log=None,
    before_step: Callable[..., None] | None = None,
    budget_decided: bool = False,
) -> EpochResult:
    """One pass over ``data`` (or until the time budget runs out); advances ``state.step``. With
    ``log``, the cost of the whole run is estimated from the first steps and announced when it is
    long. ``before_step`` is called with ``epoch=`` and ``step=`` (1-based) before each step: tests
    use it to kill a process there. ``budget_decided``: the epoch before ended by finding the budget
    not spent, so this one takes at least one step (its first check could otherwise find the
    budget spent since, and an epoch that trained nothing would leave the last one unevaluated)."""
    world, rank, device = distributed.world_size(), distributed.rank(), settings.device
    steps = steps_per_epoch(len(data), config.batch_size, world)
    total_steps = config.epochs * steps
    task = bar.start(f"epoch {state.epoch + 1}/{config.epochs}", steps)
    tally = _Tally(device)
    taken, out_of_time = 0, False
    skipped_before = state.skipped_steps
    net.train()
    synchronize(device)
    started = time.perf_counter()
    checks = _Checks(config, state, device, started)
    tricks = _StepTricks.of(config, data)
    batches = data.batches(config.batch_size, shuffle=True, generator=trainable.generator,
                           drop_last=True, shard=Shard(rank, world), indices=tricks.needs_indices)
    for index, (images, labels, *indices) in enumerate(batches):
        if index >= steps:  # every process takes as many steps, or one would wait for the others
            break
        if before_step is not None:
            before_step(epoch=state.epoch + 1, step=index + 1)
        spent = checks.due(index) and checks.check(index)
        if spent and (index > 0 or not budget_decided):
            out_of_time = True
            break
        images, labels = images.to(device, non_blocking=True), labels.to(device, non_blocking=True)
        done = max(state.step / total_steps, checks.budget_done(index))
        lr = _set_learning_rate(trainable.optimizer, config, state, done, plateau)
        loss, outputs = training_step(
            net, trainable.model, images, labels, augment=augment, trainable=trainable,
            settings=settings, **tricks.for_step(indices, state.epoch, done,
                                                 augment.out_size or images.shape[-1]))
        if outputs is None:  # skipped: its loss was not finite (--skip-nonfinite)
            _skipped_one(state, config, lr, index)
            # keeps the checks' step count; nothing to flag
            checks.record(torch.zeros((), device=device), lr)
            state.step, taken = state.step + 1, taken + 1
            continue
        checks.record(loss, lr)
        if trainable.ema is not None:
            trainable.ema.update_parameters(trainable.model)
        state.step, taken = state.step + 1, taken + 1
        if log is not None and index == 4:  # five steps in: warm enough to extrapolate
            _announce_cost(log, config, len(data), total_steps - state.step,
                           (time.perf_counter() - started) / 5)
        tally.add(loss, outputs, labels)
        if task is not None:  # the figures read the device: every 10 steps
            bar.update(task, tally.stats(world, started) if state.step % 10 == 0 else "")
    # the epoch's last losses are read before anything of it is saved, and a budget spent by now
    # ends the run with this epoch (evaluated and checkpointed as the last)
    if not out_of_time:
        out_of_time = checks.check(taken)
    synchronize(device)
    bar.finish(task)
    seconds = time.perf_counter() - started
    return EpochResult(*tally.means(), tally.seen, seconds, out_of_time,
                       state.skipped_steps - skipped_before if settings.skip_nonfinite else None)


class _Tally:
    """An epoch's training loss and accuracy, summed on the device (read only when reported)."""

    def __init__(self, device: torch.device) -> None:
        self.loss_sum = torch.zeros((), device=device)
        self.correct = torch.zeros((), device=device, dtype=torch.long)
        self.seen = 0

    def add(self, loss: torch.Tensor, outputs, labels: torch.Tensor) -> None:
        main = outputs[0] if isinstance(outputs, tuple) else outputs  # GoogLeNet's aux heads
        self.loss_sum += loss.detach() * labels.numel()
        self.correct += (main.argmax(1) == labels).sum()
        self.seen += labels.numel()

    def means(self) -> tuple[float, float]:
        return (self.loss_sum.item() / max(self.seen, 1),
                self.correct.item() / max(self.seen, 1))

    def stats(self, world: int, started: float) -> str:
        loss, accuracy = self.means()
        rate = self.seen * world / max(time.perf_counter() - started, 1e-9)
        return f"loss {loss:.3f}  acc {accuracy:.3f}  {rate:,.0f} img/s"


def _skipped_one(state: RunState, config: TrainConfig, lr: float, index: int) -> None:
    """Count a step skipped for its non-finite loss; past ``--skip-nonfinite`` of them the run
    stops."""
    state.skipped_steps += 1
    if state.skipped_steps > config.skip_nonfinite:
        raise NonFiniteLossError(
            f"the loss was not finite at more than {config.skip_nonfinite} steps (the last at "
            f"epoch {state.epoch + 1}, step {index + 1}, learning rate {lr:.3g}). Lower --lr, "
            "add --grad-clip, or use --precision fp32.")
