"""The epoch loop: one optimiser step, and one pass over the training set made of them.

Under torchrun every process draws the same seeded batch order and asks the data set for its ``Shard`` of it
(batch i goes to process i mod world), so the processes train on disjoint batches without exchanging indices
and a streamed folder decodes each image once per epoch in all; DistributedDataParallel averages the gradients.
One step of N processes with batches of B is one step of a single process with a batch of N×B (the same images).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
from torch import nn

from cnnzoo.data.augment import TrainAugment
from cnnzoo.data.dataset import ImageDataset, Shard
from cnnzoo.engine import distributed, elastic
from cnnzoo.engine.config import TrainConfig
from cnnzoo.engine.progress import Progress
from cnnzoo.engine.runtime import autocast, synchronize
from cnnzoo.engine.schedules import PlateauDivider, lr_factor
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


@dataclass
class EpochResult:
    loss: float  # mean training loss over the images seen
    top1: float
    images: int  # images this process trained on
    seconds: float
    out_of_time: bool  # the time budget ended the epoch early


def training_step(net: nn.Module, model: nn.Module, images: torch.Tensor, labels: torch.Tensor, *,
                  augment: TrainAugment, trainable: Trainable, settings: StepSettings) -> tuple[torch.Tensor, object]:
    """One optimiser step on a uint8 batch: augment, forward (under autocast), loss, backward, step.

    ``net`` is what runs (``model`` itself, or wrapped for several processes or compiled); ``model`` declares
    its training loss. Raises ``NonFiniteLossError`` before touching the weights if the loss is not finite.
    """
    x = augment(images, trainable.generator).contiguous(memory_format=settings.memory_format)
    with autocast(settings.device, settings.precision):
        outputs = net(x)
    loss = model.training_loss(outputs, labels, label_smoothing=settings.label_smoothing)
    # every process must see the same verdict before backward, or the others would wait for its gradients
    non_finite, = distributed.agree_max([float(not torch.isfinite(loss))], loss.device)
    if non_finite:
        raise NonFiniteLossError(str(loss.item()))
    optimizer, scaler = trainable.optimizer, trainable.scaler
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()  # the scaler is inert unless the precision is fp16
    if settings.grad_clip:
        scaler.unscale_(optimizer)  # clip the true gradients, not the scaled ones
        nn.utils.clip_grad_norm_(net.parameters(), settings.grad_clip)
    scaler.step(optimizer)
    scaler.update()
    return loss, outputs


def _set_learning_rate(optimizer: torch.optim.Optimizer, config: TrainConfig, state: RunState, done: float,
                       plateau: PlateauDivider) -> float:
    factor = lr_factor(config.schedule, done, warmup=config.warmup_epochs / config.epochs, epoch=state.epoch,
                       step_epochs=config.step_epochs) * plateau.factor
    for group in optimizer.param_groups:
        group["lr"] = config.lr * factor
    return config.lr * factor


def _duration(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h" if seconds >= 3600 else f"{seconds / 60:.0f} min"


def _announce_cost(log, config: TrainConfig, data_size: int, steps_left: int, step_seconds: float) -> None:
    """Say what an untimed run will cost, from its first steps, when that is more than five minutes."""
    if config.time_budget is None and steps_left * step_seconds > 300:
        log(f"at {config.batch_size / step_seconds:,.0f} img/s, the {config.epochs} epochs over {data_size:,} "
            f"images will take about {_duration(steps_left * step_seconds)}; --time-budget SECONDS or fewer "
            f"--epochs spend less (Ctrl-C stops; --resume continues from the last finished epoch)")


def train_one_epoch(net: nn.Module, trainable: Trainable, data: ImageDataset, augment: TrainAugment, *,
                    config: TrainConfig, settings: StepSettings, state: RunState, plateau: PlateauDivider,
                    bar: Progress, log=None) -> EpochResult:
    """One pass over ``data`` (or until the time budget runs out); advances ``state.step``. With ``log``, the
    cost of the whole run is estimated from the first steps and announced when it is long."""
    world, rank, device = distributed.world_size(), distributed.rank(), settings.device
    steps_per_epoch = max(1, len(data) // config.batch_size // world)
    total_steps = config.epochs * steps_per_epoch
    task = bar.start(f"epoch {state.epoch + 1}/{config.epochs}", steps_per_epoch)
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), device=device, dtype=torch.long)
    seen, out_of_time = 0, False
    net.train()
    synchronize(device)
    started = time.perf_counter()
    batches = data.batches(config.batch_size, shuffle=True, generator=trainable.generator, drop_last=True,
                           shard=Shard(rank, world))
    for index, (images, labels) in enumerate(batches):
        if index >= steps_per_epoch:  # every process takes as many steps, or one would wait for the others
            break
        elastic.kill_if_test_asks(epoch=state.epoch + 1, step=index + 1)
        images, labels = images.to(device, non_blocking=True), labels.to(device, non_blocking=True)
        done = state.step / total_steps
        if config.time_budget is not None:
            # every process must stop at the same step: they agree on the largest elapsed time
            elapsed, = distributed.agree_max([state.train_seconds + time.perf_counter() - started], device)
            done = max(done, elapsed / config.time_budget)
            if elapsed >= config.time_budget:
                out_of_time = True
                break
        lr = _set_learning_rate(trainable.optimizer, config, state, done, plateau)
        try:
            loss, outputs = training_step(net, trainable.model, images, labels, augment=augment,
                                          trainable=trainable, settings=settings)
        except NonFiniteLossError as error:
            raise NonFiniteLossError(
                f"the loss became {error} at epoch {state.epoch + 1}, step {index + 1} (learning rate "
                f"{lr:.3g}); the best checkpoint was kept. Lower --lr, add --grad-clip, or use --precision fp32."
            ) from None
        if trainable.ema is not None:
            trainable.ema.update_parameters(trainable.model)
        state.step += 1
        if log is not None and index == 4:  # five steps in: warm enough to extrapolate
            _announce_cost(log, config, len(data), total_steps - state.step, (time.perf_counter() - started) / 5)
        main = outputs[0] if isinstance(outputs, tuple) else outputs
        loss_sum += loss.detach() * labels.numel()
        correct += (main.argmax(1) == labels).sum()
        seen += labels.numel()
        if task is not None:
            stats = ""
            if state.step % 10 == 0:
                stats = (f"loss {loss_sum.item() / seen:.3f}  acc {correct.item() / seen:.3f}  "
                         f"{seen * world / max(time.perf_counter() - started, 1e-9):,.0f} img/s")
            bar.update(task, stats)
    synchronize(device)
    bar.finish(task)
    seconds = time.perf_counter() - started
    return EpochResult(loss_sum.item() / max(seen, 1), correct.item() / max(seen, 1), seen, seconds, out_of_time)
