"""``train(config)``: one training run, from a dataset name to a run directory with metrics, plots
and checkpoints.

It reads as the short script it is: set up (runtime, data, model, optimiser, run directory), then
for each epoch train, evaluate and record. The pieces live in modules named for their job:
``prepare`` (the data), ``inputs`` (the image side), ``build`` (model and optimiser), ``autotune``
(precision, memory layout and compile, chosen by timing them), ``state`` (what a checkpoint holds
and resume restores), ``loop`` (the steps of one epoch), ``evaluate`` and ``run_dir`` (the files
written).

The fast path keeps the whole dataset as one uint8 tensor on the training device and cuts batches
from it with a seeded permutation (no DataLoader, no per-image Python work); augmentation runs on
whole batches. Every random draw — data order, crops, flips, dropout — comes from seeded generators
whose states are saved with each checkpoint, so a resumed run continues exactly where it stopped.
"""

from __future__ import annotations

import dataclasses
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch

from cnnzoo.console import Log, log_to_stderr
from cnnzoo.data.dataset import Shard
from cnnzoo.engine import distributed, elastic
from cnnzoo.engine.autotune import Tuning, began_in, tune
from cnnzoo.engine.build import build_model, builder_kwargs, limits_for, make_ema, make_optimizer
from cnnzoo.engine.config import TrainConfig, variant_name
from cnnzoo.engine.epochs import record_epoch, refuse_non_finite, run_summary, save_epoch
from cnnzoo.engine.evaluate import EvalResult, evaluate
from cnnzoo.engine.inputs import check_cutout, check_progressive_resize, choose_input_side
from cnnzoo.engine.loop import (
    EpochResult,
    StepSettings,
    epoch_batch_size,
    steps_per_epoch,
    train_one_epoch,
)
from cnnzoo.engine.memory import keep_freed_memory
from cnnzoo.engine.outputs import versions, write_config, write_outputs
from cnnzoo.engine.prepare import PreparedData, load_data, prepare_data
from cnnzoo.engine.progress import Progress
from cnnzoo.engine.resume import AUTO, EXTEND, FINISH, REPLACE, Found, Start, decide_start, look_at
from cnnzoo.engine.runtime import resolve_device, seed_everything
from cnnzoo.engine.schedules import PlateauDivider, lr_factor
from cnnzoo.engine.snapshots import SnapshotTaker
from cnnzoo.engine.state import RunState, Trainable, plateau_of, restore_last
from cnnzoo.errors import CnnzooError, NonFiniteLossError, Stopped, TrainingError
from cnnzoo.rundir import (
    BEST,
    LAST,
    Provisional,
    make_run_dir,
    recover,
    timestamped_run_dir,
    writer_lock,
)

FIT_IMAGES = 5_000  # training images a model that fits_to_data is fitted to


@dataclass
class _Run:
    """What every epoch of a run uses: its settings, data, model and optimiser, and where it
    writes."""

    config: TrainConfig
    data: PreparedData
    trainable: Trainable
    settings: StepSettings
    tuning: Tuning  # the precision, layout and compile decision, and the timings behind it
    run_dir: Path
    main_process: bool
    meta: dict  # what each checkpoint records besides the state
    provisional: Provisional | None = None  # a new run not yet kept (see rundir.Provisional)
    snapshots: SnapshotTaker | None = None  # process 0's, when --snapshots keeps any

    def evaluate(self) -> EvalResult:
        # in fp32 whatever the run trains in: its summary, metrics and per-class table are then
        # the numbers `cnnzoo eval` gives its checkpoints (bf16 scoring moved them by hundredths)
        return evaluate(self.trainable.eval_model, self.data.test,
                        self.data.spec.eval_pipeline(self.config.test_views),
                        num_classes=len(self.data.classes), device=self.settings.device,
                        precision="fp32",
                        channels_last=self.settings.memory_format == torch.channels_last,
                        shard=Shard(distributed.rank(), distributed.world_size()))


def train(config: TrainConfig | None, *, resume: Path | str | None = None,
          overrides: dict | None = None,
          overwrite: bool = False, progress: bool = False, log: Log = log_to_stderr) -> dict:
    """Train ``config.model`` on ``config.dataset``; returns the run's summary (also written to
    summary.json).

    With ``resume`` a run directory, ``config`` is ignored: the run directory's own ``config.json``
    and ``checkpoints/last`` continue the run where it stopped; ``overrides`` may change epochs,
    time_budget, device, threads and dist_timeout (e.g. more epochs to extend a finished run). With
    ``resume="auto"``, and in every process torchrun restarted, the run in ``config.out`` is
    continued if it has a checkpoint, else started (``resume.decide_start``). A new run refuses a
    directory that holds a run unless ``overwrite``; the old run is then moved aside and goes only
    once the new run has saved its first checkpoint (``rundir.Provisional``: a failure, Ctrl-C or
    SIGTERM before that puts it back).
    """
    # named now, to be pointed to
    if resume is None and config.out is None and not elastic.restartable():
        config = dataclasses.replace(config,
                                     out=str(timestamped_run_dir(f"{config.model}-{config.dataset}")))
    where = (
        Path(resume)
        if resume is not None and str(resume) != AUTO
        else (config.out and Path(config.out))
    )
    with _one_writer(where, log):  # held from before the directory is read to the run's last file
        start = decide_start(config, resume, overwrite, look_at(where) if where else Found(),
                             overrides=overrides,
                             restartable=elastic.restartable(),
                             restart_count=elastic.restart_count())
        if start.note:
            log(f"note: {start.note}")
        device = resolve_device(start.config.device)
        # a new run is kept once its first checkpoint is saved (the run it replaces goes then);
        # until then undone
        provisional = Provisional(start.run_dir, replacing=start.kind == REPLACE) \
            if distributed.is_main_process() and not start.resumes else None
        try:
            # left on every path
            with distributed.process_group(device, start.config.dist_timeout) as distributed_run:
                return _train_joined(start, device, provisional, distributed_run=distributed_run,
                                     progress=progress, log=log)
        except BaseException as error:
            kept = provisional is None or provisional.kept
            if provisional is not None:
                provisional.undo()
            # Ctrl-C, or SIGTERM (see cli): what is left, how to go on
            if isinstance(error, KeyboardInterrupt):
                number = getattr(error, "signal_number", signal.SIGINT)
                raise Stopped(_stopped_hint(start, signal.Signals(number).name, kept),
                              number) from None
            # say what the failed start left: nothing of it, or its best checkpoint so far
            if isinstance(error, CnnzooError) and not kept:
                error.args = (f"{str(error).rstrip('.')}; {_left_behind(start)} once that is fixed",
                              *error.args[1:])
            elif isinstance(error, NonFiniteLossError) and _has_best(start.run_dir):
                error.args = (f"{error} The best checkpoint so far is kept in {start.run_dir}.",
                              *error.args[1:])
            raise


@contextmanager
def _one_writer(run_dir: Path | None, log: Log) -> Iterator[None]:
    """The run directory's writer lock, held by process 0 (the one that writes); what an --overwrite
    killed halfway left is put right first."""
    if run_dir is None or not distributed.is_main_process():
        yield
        return
    with writer_lock(run_dir):
        note = recover(run_dir)
        if note:
            log(f"note: {note}")
        yield


def _stopped_hint(start: Start, signal_name: str, kept: bool) -> str:
    if kept and (start.run_dir / LAST).is_file():
        return (f"stopped by {signal_name}; epoch {look_at(start.run_dir).last_epoch} is saved; "
                f"continue with: cnnzoo train --resume {start.run_dir}")
    return (f"stopped by {signal_name} before the first checkpoint of {start.run_dir}; "
            f"{_left_behind(start)}")


def _has_best(run_dir: Path | None) -> bool:
    return run_dir is not None and (run_dir / BEST).is_file()


def _left_behind(start: Start) -> str:
    """What a start that never saved a checkpoint left: nothing of itself, and the run it replaced
    as it was."""
    kept = ("the run it was replacing is back as it was" if start.kind == REPLACE
            else "nothing of it was kept")
    return f"{kept}; run the same command again"


def _train_joined(start: Start, device: torch.device, provisional: Provisional | None, *,
                  distributed_run: bool, progress: bool, log: Log) -> dict:
    """The run once every process has joined: build, train epoch after epoch, write the end-of-run
    files."""
    config, run_dir = start.config, start.run_dir
    main_process = distributed.is_main_process()
    log = log if main_process else (lambda message: None)  # only rank 0 speaks
    if config.threads:
        torch.set_num_threads(config.threads)
    keep_freed_memory()  # no page faults for each step's fresh buffers (engine/memory.py)
    seed_everything(config.seed, config.deterministic)

    run = _build(config, device, run_dir, main_process,
                 may_measure=not start.resumes and not distributed_run, log=log)
    run.provisional = provisional
    if main_process:
        make_run_dir(run_dir)
    elastic.agree_on_start(run_dir / LAST if start.resumes else None, device)
    # measuring the candidates is part of the run's cost, so it counts in its time budget
    state = (
        _resume(start, run.trainable, log)
        if start.resumes
        else RunState(train_seconds=run.tuning.seconds)
    )
    if main_process:
        write_config(run_dir, config)  # a resumed run's too: the epochs or budget it now runs to
    config = run.config  # as the user set it but for a batch fitted to a small training set
    params = sum(p.numel() for p in run.trainable.model.parameters() if p.requires_grad)
    _warn_if_too_few_steps(config, len(run.data.train), log)
    log(f"{config.model}: {params:,} parameters, "
        f"{run.data.spec.size}×{run.data.spec.size}×{run.data.channels} "
        f"input; {config.dataset}: {len(run.data.train):,} train / {len(run.data.test):,} test "
        "images; "
        f"{device.type}" + (f", {distributed.world_size()} processes" if distributed_run else ""))
    if run.tuning.warning:
        log(f"warning: {run.tuning.warning}")
    log(run.tuning.sentence())
    if main_process and start.kind != FINISH:
        run.snapshots = _start_snapshots(run, state, log)
    with distributed.collectives_answered(config.dist_timeout):
        last_eval, out_of_time = _train_epochs(run, state, distributed_run=distributed_run,
                                               progress=progress, log=log)
        # resumed only to write the end-of-run files a crash skipped
        if last_eval is None and state.epoch > 0:
            last_eval, out_of_time = run.evaluate(), state.epoch < config.epochs
    if last_eval is None:
        budget = f"the time budget ({config.time_budget} s) or " if config.time_budget else ""
        raise TrainingError(f"no epoch finished: {budget}the training set ({len(run.data.train)} "
                            f"images, batch {config.batch_size}) is too small for one epoch")
    summary = run_summary(config, state, last_eval, params=params, out_of_time=out_of_time,
                          device=device, tuning=run.tuning, run_dir=run_dir)
    if main_process:
        write_outputs(run_dir, summary, state.history, last_eval, run.data.classes,
                      model=variant_name(config.model, config.model_kwargs))
    return summary


def _build(config: TrainConfig, device: torch.device, run_dir: Path, main_process: bool, *,
           may_measure: bool, log: Log) -> _Run:
    """The data fitted to the model's input side, the model in the fastest precision and layout
    measured (or forced), its optimiser and what a step needs."""
    loaded = load_data(config)
    if loaded.note:
        log(loaded.note)
    config = _fit_batch(config, len(loaded.train), log)
    side = choose_input_side(limits_for(config, loaded.channels), loaded.side, config.input_size)
    check_cutout(config.cutout, side)
    data = prepare_data(loaded, config, side, device)
    model = build_model(config, len(data.classes), data.channels, side)
    # a layer computed from the images rather than trained (budgetnet's whitening)
    if model.fits_to_data:
        model.fit_to_data(data.normalised_sample(FIT_IMAGES))
    model = model.to(device)
    check_progressive_resize(model, config.progressive_resize, side, data.channels, device)
    steps = config.epochs * steps_per_epoch(len(data.train), config.batch_size,
                                            distributed.world_size())
    tuning = tune(model, data.train, data.augmentation(config), config=config, device=device,
                  side=side, expected_steps=steps, may_measure=may_measure,
                  began=None if may_measure else began_in(run_dir))
    layout = torch.channels_last if tuning.channels_last else torch.contiguous_format
    model = model.to(memory_format=layout)
    settings = StepSettings(device, tuning.precision, layout, config.label_smoothing,
                            config.grad_clip, skip_nonfinite=config.skip_nonfinite > 0)
    trainable = Trainable(model, make_optimizer(model, config, tuning.precision),
                          # fp16 needs loss scaling
                          torch.amp.GradScaler(device.type, enabled=tuning.precision == "fp16"),
                          make_ema(model, config.ema_decay),
                          torch.Generator().manual_seed(config.seed))
    meta = {"model": config.model, "model_kwargs": builder_kwargs(model, config),
            "classes": data.classes,
            "input": data.spec.to_dict(), "data_size": data.native_side, "dataset": config.dataset,
            "versions": versions(), "tuning": tuning.to_dict()}
    return _Run(config, data, trainable, settings, tuning, run_dir, main_process, meta)


def _fit_batch(config: TrainConfig, images: int, log: Log) -> TrainConfig:
    """``config`` with a batch no larger than the training set (each process's share of it), said in
    a note."""
    world = distributed.world_size()
    batch = epoch_batch_size(images, config.batch_size, world)
    if batch == config.batch_size:
        return config
    several = world > 1
    each = f" for each of {world} processes" if several else ""
    whole = "a process's share" if several else "all"
    log(f"note: the {images:,} training images are fewer than a batch of "
        f"{config.batch_size}{each}, so batches are {batch} images ({whole} of them) instead")
    return dataclasses.replace(config, batch_size=batch)


def _train_epochs(run: _Run, state: RunState, *, distributed_run: bool, progress: bool,
                  log: Log) -> tuple[EvalResult | None, bool]:
    """Train and record epoch after epoch, evaluating every ``--eval-every`` epochs and after the
    last; returns the last epoch's evaluation (None if it was not evaluated) and whether time ran
    out."""
    config, trainable = run.config, run.trainable
    net = (distributed.wrap(trainable.model, run.settings.device) if distributed_run
           else trainable.model)
    net = torch.compile(net) if run.tuning.compile else net
    augment, plateau = run.data.augmentation(config), plateau_of(state, config)
    last_eval, out_of_time = None, False
    first = state.epoch  # after it, each epoch starts where the one before found time left
    with Progress(progress and run.main_process) as bar:
        while state.epoch < config.epochs and not out_of_time:
            epoch = train_one_epoch(net, trainable, run.data.train, augment, config=config,
                                    settings=run.settings,
                                    state=state, plateau=plateau, bar=bar,
                                    log=log if state.epoch == 0 else None,
                                    # a no-op unless a test asks
                                    before_step=elastic.kill_if_test_asks,
                                    budget_decided=state.epoch > first)
            out_of_time = epoch.out_of_time
            if epoch.images == 0:
                break
            final = state.epoch + 1 == config.epochs or out_of_time
            due = final or (state.epoch + 1) % config.eval_every == 0
            last_eval = run.evaluate() if due else None
            _record(run, state, epoch, last_eval, plateau, final=final, log=log)
    # a budget found spent after the last planned epoch did not stop the run: its epochs did
    return last_eval, out_of_time and state.epoch < config.epochs


def _record(run: _Run, state: RunState, epoch: EpochResult, result: EvalResult | None,
            plateau: PlateauDivider, *, final: bool, log: Log) -> None:
    """What a trained epoch leaves: its weights checked, its metrics row and log line, its snapshot
    and checkpoints. ``result`` is its evaluation, None in the epochs ``--eval-every`` skips."""
    trainable = run.trainable
    refuse_non_finite(trainable, result, state.epoch + 1)  # before anything of the epoch is saved
    if run.config.schedule == "plateau":  # which evaluates every epoch (TrainConfig's check)
        # process 0's test error decides, so every process keeps the same learning rate
        plateau.update(distributed.from_main_process(1.0 - result.top1, run.settings.device))
    row, improved = record_epoch(state, epoch, result, trainable, plateau)
    test = "" if result is None else (f" | test acc {row['test_top1']:.4f} top-5 "
                                      f"{row['test_top5']:.4f}")
    log(f"epoch {row['epoch']}: train loss {row['train_loss']:.4f} acc "
        f"{row['train_top1']:.4f}{test} | {row['epoch_seconds']:.1f}s, "
        f"{row['images_per_second']:,.0f} img/s")
    if run.snapshots is not None:  # before the checkpoint: see engine.snapshots
        run.snapshots.after_epoch(trainable.eval_model, state, epoch.seconds,
                                  None if result is None else result.top1)
    if run.main_process:
        save_epoch(run.run_dir, state, trainable, result, {**run.meta, "epoch": state.epoch},
                   improved=improved, final=final, every=run.config.checkpoint_every)
        if run.provisional is not None and (run.run_dir / LAST).is_file():
            run.provisional.keep()  # resumable from here on: the run it replaced can go


def _start_snapshots(run: _Run, state: RunState, log: Log) -> SnapshotTaker | None:
    """What --snapshots asks of this run, begun: a new run's epoch-0 snapshot taken, a resumed
    run's series cut back to its checkpoint."""
    taker = SnapshotTaker.for_run(run.run_dir, run.config.snapshots, run.trainable.eval_model,
                                  run.data.test, run.data.spec, run.settings.device, log)
    if taker is not None:
        taker.begin(run.trainable.eval_model, state)
    return taker


def _resume(start: Start, trainable: Trainable, log: Log) -> RunState:
    state = restore_last(start.run_dir / LAST, trainable)
    if start.kind == FINISH:
        log(f"{start.run_dir} trained its {state.epoch} epochs but stopped before writing its "
            "end-of-run files; writing them")
        return state
    restart = f" (torchrun restart {elastic.restart_count()})" if elastic.restart_count() else ""
    log(f"resuming {start.run_dir} after epoch {state.epoch}, step {state.step}{restart}")
    if start.kind == EXTEND:
        _note_replanned_schedule(state, trainable, start.config, log)
    return state


def _note_replanned_schedule(state: RunState, trainable: Trainable, config: TrainConfig,
                             log: Log) -> None:
    epoch_steps = state.step / state.epoch
    factor = lr_factor(config.schedule, state.step / (epoch_steps * config.epochs),
                       warmup=config.warmup_epochs / config.epochs, epoch=state.epoch,
                       step_epochs=config.step_epochs)
    log(
        f"note: extending a finished run; its {config.schedule} schedule is re-planned over "
        f"{config.epochs} epochs, so the learning rate goes from "
        f"{trainable.optimizer.param_groups[0]['lr']:.3g} (where it ended) to "
        f"{config.lr * factor:.3g} now"
    )


def _warn_if_too_few_steps(config: TrainConfig, images: int, log: Log) -> None:
    steps = config.epochs * steps_per_epoch(images, config.batch_size, distributed.world_size())
    if steps < 100:
        log(f"note: {config.epochs} epoch{'s' if config.epochs != 1 else ''} of {images:,} images "
            f"in batches of {config.batch_size} are only {steps} optimiser steps, too few for most "
            "networks to learn much; train longer (--epochs), on more images, or with a smaller "
            "--batch-size")
