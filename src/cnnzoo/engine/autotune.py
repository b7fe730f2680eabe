"""Choosing a run's precision, memory layout and ``torch.compile`` by timing them, not by rule.

Which is fastest depends on the machine and the model together: on a Xeon with AMX, bf16 matrix
products run 6.6× faster than fp32 and most models train fastest channels-last in bf16, but LeNet-5
with BatchNorm fastest in NCHW; on an AVX2-only EPYC, bf16 is emulated and slower than fp32, and
channels-last slowed LeNet-5's small BatchNorms. So before a run, ``tune`` times a few of the
engine's own training steps for every candidate (each precision the device offers × NCHW /
channels-last), interleaved so that a busy machine slows all of them alike, and ``choose_fastest``
takes the fastest, preferring the earlier candidate (fp32 before bf16, NCHW before channels-last)
when two are within ``TIE_MARGIN``. The timings are cached per machine and model (``tuning_cache``),
so only the first run of a model on a machine pays for them, and that cost is counted in the run's
time budget. ``--precision`` and ``--channels-last``/``--no-channels-last`` force a choice; forcing
both skips the measurement.

``torch.compile`` costs a compilation before its first step (69 s cold for LeNet-5 on 2 busy EPYC
cores, 3.4 s when inductor's own cache is warm) and may save time on every step after. ``--compile
auto`` tries it only in runs long enough to afford a cold compile, and compiles when the measured
saving over the run's steps exceeds the measured compile time (``compile_pays``).

A run too short for measuring to pay (fewer than ``MIN_RUN_STEPS`` steps), a resumed run and a run
of several processes never measure: they use the cache when it answers, else the untuned defaults
(the precision ``runtime.resolve_precision`` names from the instruction set, NCHW, no compile).
"""

from __future__ import annotations

import copy
import os
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from cnnzoo import rundir
from cnnzoo.data.augment import TrainAugment
from cnnzoo.data.tensors import ImageTensors
from cnnzoo.engine import tuning_cache
from cnnzoo.engine.checkpoint import read_meta
from cnnzoo.engine.config import TrainConfig
from cnnzoo.engine.inputs import InputSpec
from cnnzoo.engine.loop import StepSettings, training_step
from cnnzoo.engine.machine import machine_name
from cnnzoo.engine.runtime import resolve_precision, synchronize
from cnnzoo.engine.state import Trainable

# candidates within 5% of the fastest are ties: timing noise on a shared machine is that large
TIE_MARGIN = 0.05
MIN_RUN_STEPS = 500  # measuring costs about 7 steps per candidate: at most ~5% of a run this long
ROUNDS, STEPS_PER_ROUND = 3, 2  # timed steps per candidate, after one untimed warm-up step
# a long run, whose share affords it, times up to this many rounds: step times vary by 10–20%
MAX_ROUNDS = 9
PRUNE_FACTOR = 3.0  # a candidate this much slower in its warm-up step is not timed further
# of the time budget, at most, spent measuring (at least one round is always timed)
TUNING_SHARE = 0.05
# a run must be this long before it risks a cold compile to try it
COMPILE_TRIAL_MIN_SECONDS = 300.0
# rounds of one candidate further apart than this (slowest / fastest - 1) were disturbed
MAX_SPREAD = 0.5


@dataclass(frozen=True)
class Candidate:
    precision: str  # fp32, bf16, fp16
    channels_last: bool

    @property
    def label(self) -> str:
        return f"{self.precision}/{'channels-last' if self.channels_last else 'nchw'}"

    @classmethod
    def from_label(cls, label: str) -> Candidate:
        precision, layout = label.split("/")
        return cls(precision, layout == "channels-last")


@dataclass
class Tuning:
    """What a run runs in, how that was decided (measured, cache, forced, default) and the timings
    behind it."""

    precision: str
    channels_last: bool
    compile: bool
    source: str
    compile_source: str
    # candidate label → median seconds per step
    step_seconds: dict[str, float] = field(default_factory=dict)
    compile_trial: dict | None = None  # eager and compiled seconds per step, compile seconds
    seconds: float = 0.0  # spent measuring in this run
    warning: str | None = None  # the cache file was damaged, and ignored

    def to_dict(self) -> dict:
        return {"precision": self.precision, "channels_last": self.channels_last,
                "compile": self.compile,
                "source": self.source, "compile_source": self.compile_source,
                "step_ms": {label: round(s * 1e3, 2) for label, s in self.step_seconds.items()},
                "compile_trial": self.compile_trial, "seconds": round(self.seconds, 2)}

    def sentence(self) -> str:
        """One line for the log: the choice, how it was made and the timings."""
        layout = "channels-last" if self.channels_last else "NCHW"
        timings = ", ".join(f"{label} {s * 1e3:.1f}" for label, s in self.step_seconds.items())
        line = (f"runtime: {self.precision}, {layout} "
                f"({self.source}{'; ms/step ' + timings if timings else ''})")
        if self.compile_trial:
            trial = self.compile_trial
            line += (f"; compile {'on' if self.compile else 'off'} ({self.compile_source}: "
                     f"{trial['eager_ms']:.1f} → {trial['compiled_ms']:.1f} ms/step after "
                     f"{trial['compile_s']:.1f} s)")
        else:
            line += f"; compile {'on' if self.compile else 'off'} ({self.compile_source})"
        return line + (f"; {self.seconds:.1f} s measuring" if self.seconds >= 0.05 else "")


def choose_fastest(step_seconds: dict[Candidate, float], margin: float = TIE_MARGIN) -> Candidate:
    """The fastest candidate by seconds per step; of candidates within ``margin`` of it, the first
    in ``step_seconds``' order (list the preferred ones first: fp32 is exact where bf16 rounds)."""
    if not step_seconds:
        raise ValueError("no candidate was timed")
    fastest = min(step_seconds.values())
    return next(c for c, seconds in step_seconds.items() if seconds <= fastest * (1 + margin))


def compile_pays(eager_step: float, compiled_step: float, compile_seconds: float,
                 steps: int) -> bool:
    """Whether compiling saves time over ``steps`` training steps, its compile time included."""
    return (eager_step - compiled_step) * steps > compile_seconds


def candidates_for(
    device: torch.device, precision: str, channels_last: bool | None
) -> list[Candidate]:
    """The precisions the device offers (or the one forced) × NCHW and channels-last (or the one
    forced), preferred first."""
    if precision != "auto":
        precisions = [precision]
    elif device.type == "cuda":
        precisions = ["fp32", *(["bf16"] if torch.cuda.is_bf16_supported() else []), "fp16"]
    elif device.type == "mps":
        precisions = ["fp32", "fp16"]
    else:
        precisions = ["fp32", "bf16"]
    layouts = [False, True] if channels_last is None else [channels_last]
    return [Candidate(p, layout) for p in precisions for layout in layouts]


def key_parts(config: TrainConfig, device: torch.device, side: int) -> dict:
    return {"machine": machine_name(device), "threads": torch.get_num_threads(),
            "model": config.model,
            "model_kwargs": config.model_kwargs, "input_side": side,
            "batch_size": config.batch_size, "torch": torch.__version__}


class _StepTimer:
    """Training steps of a private copy of the model in one candidate's precision and layout."""

    def __init__(self, model: nn.Module, candidate: Candidate,
                 batch: tuple[torch.Tensor, torch.Tensor],
                 augment: TrainAugment, device: torch.device, compiled: bool = False) -> None:
        layout = torch.channels_last if candidate.channels_last else torch.contiguous_format
        copied = copy.deepcopy(model).to(memory_format=layout)
        optimizer = torch.optim.SGD(copied.parameters(), lr=1e-3, momentum=0.9)
        scaler = torch.amp.GradScaler(device.type, enabled=candidate.precision == "fp16")
        self.trainable = Trainable(copied, optimizer, scaler, None,
                                   torch.Generator().manual_seed(0))
        self.net = torch.compile(copied) if compiled else copied
        self.settings = StepSettings(device, candidate.precision, layout)
        self.batch, self.augment = batch, augment

    def seconds(self, steps: int = 1) -> float:
        """Wall time of ``steps`` steps."""
        synchronize(self.settings.device)
        started = time.perf_counter()
        for _ in range(steps):
            training_step(self.net, self.trainable.model, *self.batch, augment=self.augment,
                          trainable=self.trainable, settings=self.settings)
        synchronize(self.settings.device)
        return time.perf_counter() - started


class Timings(dict):
    """Median seconds per step by label, and ``spread``: by how much each one's rounds disagreed
    (slowest over fastest, minus one). Rounds that disagree were disturbed (another process took the
    cores for a while): such a measurement is used for the run that took it, but never cached (see
    ``trustworthy``)."""

    def __init__(self, medians: dict[str, float], spread: dict[str, float]) -> None:
        super().__init__(medians)
        self.spread = spread

    @property
    def steady(self) -> bool:
        return all(value <= MAX_SPREAD for value in self.spread.values())


def trustworthy(timings: dict, load: float, cores: int) -> str | None:
    """Why a measurement must not be cached (None when it may be): its rounds disagreed, or the
    machine was busier than its cores when it was taken (the one-minute load average), which slows
    every round alike."""
    if not getattr(timings, "steady", True):
        worst = max(timings.spread, key=timings.spread.get)
        return f"not cached: {worst}'s rounds differ by {timings.spread[worst]:.0%}"
    if tuning_cache.busier_than_cores(load, cores):
        return f"not cached: the machine was busy (load {load:.1f} on {cores} cores)"
    return None


def measure_steps(timers: dict[str, _StepTimer], allowance: float,
                  run_steps: int | None = None) -> Timings:
    """Median seconds per step of each timer: one warm-up step each, then interleaved rounds of
    ``STEPS_PER_ROUND`` steps, stopping after the round that passes ``allowance`` seconds (a single
    step per candidate when the warm-ups already did), or after ``ROUNDS`` rounds. With
    ``run_steps`` (the run's length in steps) rounds go on up to ``MAX_ROUNDS`` while they stay
    within ``TUNING_SHARE`` of the run, as the fastest warm-up step estimates it, and within
    ``allowance``. A candidate whose warm-up took over ``PRUNE_FACTOR`` times the fastest one's is
    not timed further (emulated bf16 on AVX2 is that slow) and keeps its warm-up time."""
    started = time.perf_counter()
    warm = {label: timer.seconds(1) for label, timer in timers.items()}
    timed = [label for label in timers if warm[label] <= PRUNE_FACTOR * min(warm.values())]
    samples: dict[str, list[float]] = {label: [] for label in timed}
    steps = STEPS_PER_ROUND if time.perf_counter() - started <= allowance else 1
    share = TUNING_SHARE * run_steps * min(warm.values()) if run_steps else 0.0
    for rounds in range(1, MAX_ROUNDS + 1):
        for label in timed:
            samples[label].append(timers[label].seconds(steps) / steps)
        elapsed = time.perf_counter() - started
        if elapsed > allowance or (
            rounds >= ROUNDS and elapsed * (rounds + 1) / rounds > min(share, allowance)
        ):
            break
    medians = {
        label: statistics.median(samples[label]) if label in samples else warm[label]
        for label in timers
    }
    spread = {label: max(times) / min(times) - 1 for label,
              times in samples.items() if len(times) > 1}
    return Timings(medians, spread)


def trial_compile(model: nn.Module, candidate: Candidate, batch, augment, device: torch.device,
                  run_steps: int) -> dict:
    """Compile time and seconds per step, eager against compiled, in ``candidate``'s precision and
    layout, timed as ``measure_steps`` times candidates for a run of ``run_steps``."""
    eager = _StepTimer(model, candidate, batch, augment, device)
    compiled = _StepTimer(model, candidate, batch, augment, device, compiled=True)
    compile_seconds = compiled.seconds(1)  # the first step compiles the forward and backward graphs
    steps = measure_steps({"eager": eager, "compiled": compiled}, float("inf"), run_steps)
    doubt = trustworthy(steps, os.getloadavg()[0], os.cpu_count() or 1)
    return {"eager_ms": round(steps["eager"] * 1e3, 3),
            "compiled_ms": round(steps["compiled"] * 1e3, 3),
            "compile_s": round(compile_seconds, 2), **({"not_cached": doubt} if doubt else {})}


def tune(model: nn.Module, batch_source, augment: TrainAugment, *, config: TrainConfig,
         device: torch.device, side: int, expected_steps: int, may_measure: bool,
         began: Candidate | None = None) -> Tuning:
    """The precision, layout and compile decision for training ``model`` as ``config`` says,
    measured on the first batch of ``batch_source`` (an ``ImageDataset``) where that pays.
    ``expected_steps``: the run's steps left; ``may_measure``: False for resumed and multi-process
    runs (cache or defaults only); ``began``: what a resumed run began in, which it keeps where it
    is still a candidate (the same numerics, and the speed its first part measured)."""
    started = time.perf_counter()
    candidates = candidates_for(device, config.precision, config.channels_last)
    parts = key_parts(config, device, side)
    entry, damage = tuning_cache.load_entry(parts)
    cached = {c: entry.get("steps", {}).get(c.label) for c in candidates}
    first_batch = _BatchOnce(batch_source, config.batch_size, device)
    # the run's draws stay as seeded
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        if len(candidates) == 1:
            choice, source, timed = candidates[0], "forced", {}
        elif began in candidates:
            choice, source, timed = began, "as the run began", {}
        elif all(isinstance(s, (int, float)) for s in cached.values()):
            timed = cached
            choice, source = choose_fastest(timed), "cache"
        elif may_measure and expected_steps >= MIN_RUN_STEPS:
            allowance = TUNING_SHARE * config.time_budget if config.time_budget else float("inf")
            timers = {
                c.label: _StepTimer(model, c, first_batch(), augment, device) for c in candidates
            }
            measured = measure_steps(timers, allowance, expected_steps)
            timed = {c: measured[c.label] for c in candidates}
            choice, source = choose_fastest(timed), "measured"
            load = os.getloadavg()[0]
            doubt = trustworthy(measured, load, os.cpu_count() or 1)
            if doubt is None:
                entry["steps"] = {**entry.get("steps", {}), **{c.label: s for c,
                                                               s in timed.items()}}
                entry["load"] = round(load, 2)
                tuning_cache.write_entry(parts, entry)
            else:
                source += f" ({doubt})"
        else:
            choice = Candidate(resolve_precision(config.precision, device),
                               bool(config.channels_last))
            source, timed = (
                "default: " + ("no measuring in this run" if not may_measure else "run too short"),
                {},
            )
        compiled, compile_source, trial = _decide_compile(
            model, choice, entry, parts, augment, first_batch, config=config, device=device,
            expected_steps=expected_steps, step_seconds=timed.get(choice), may_measure=may_measure)
    timings = {c.label: s for c, s in timed.items()}
    return Tuning(choice.precision, choice.channels_last, compiled, source, compile_source, timings,
                  trial, time.perf_counter() - started, damage)


class _BatchOnce:
    """The first training batch, fetched (and moved to the device) only if a measurement needs
    it."""

    def __init__(self, data, batch_size: int, device: torch.device) -> None:
        self.data, self.batch_size, self.device, self.batch = data, batch_size, device, None

    def __call__(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self.batch is None:
            images, labels = next(iter(self.data.batches(self.batch_size, shuffle=False)))
            self.batch = images.to(self.device), labels.to(self.device)
        return self.batch


def _decide_compile(model: nn.Module, choice: Candidate, entry: dict, parts: dict,
                    augment: TrainAugment,
                    first_batch: _BatchOnce, *, config: TrainConfig, device: torch.device,
                    expected_steps: int,
                    step_seconds: float | None, may_measure: bool) -> tuple[bool, str, dict | None]:
    """Whether to compile (``--compile auto``: when a trial shows it pays over this run), how that
    was decided, and the trial's figures."""
    if config.compile != "auto":
        return config.compile == "on", "forced", None
    trial = entry.get("compile", {}).get(choice.label)
    source = "cache"
    if not isinstance(trial, dict):
        if not may_measure or expected_steps < MIN_RUN_STEPS:
            return False, "default: no trial in this run", None
        if step_seconds is None:  # forced precision and layout: one step says how long the run is
            probe = _StepTimer(model, choice, first_batch(), augment, device)
            probe.seconds(1)
            step_seconds = probe.seconds(1)
        run_seconds = min(config.time_budget or float("inf"), expected_steps * step_seconds)
        if run_seconds < COMPILE_TRIAL_MIN_SECONDS:
            # an estimate from one step timed alone is no forecast of the run (data loading and
            # augmentation are left out), so it is said as what it is, not as "a 19 s run"
            run = (f"a {run_seconds:.0f} s run" if run_seconds == config.time_budget else
                   f"{expected_steps:,} steps of {step_seconds * 1e3:.1f} ms (a step timed alone)")
            return False, f"default: {run} is too short to try a compile", None
        run_steps = int(run_seconds / step_seconds)
        trial, source = trial_compile(model, choice, first_batch(), augment, device,
                                      run_steps), "measured"
        if "not_cached" not in trial:
            entry["compile"] = {**entry.get("compile", {}), choice.label: trial}
            tuning_cache.write_entry(parts, entry)
    eager, compiled = trial["eager_ms"] / 1e3, trial["compiled_ms"] / 1e3
    steps = expected_steps if not config.time_budget else min(expected_steps,
                                                              int(config.time_budget / compiled))
    return compile_pays(eager, compiled, trial["compile_s"], steps), source, trial


def began_in(run_dir: Path) -> Candidate | None:
    """The precision and layout the run in ``run_dir`` trained its last saved epoch in (None where
    it saved none, or its checkpoint does not say)."""
    path = Path(run_dir) / rundir.LAST
    tuning = read_meta(path).get("tuning") if path.is_file() else None
    if not isinstance(tuning, dict) or not isinstance(tuning.get("precision"), str):
        return None
    return Candidate(tuning["precision"], tuning.get("channels_last") is True)


def tuned_for(model_name: str, model: nn.Module, *, batch_size: int, device: torch.device,
              input_size: tuple[int, int, int] = (1, 28, 28), precision: str = "auto",
              channels_last: bool | None = None) -> Tuning:
    """The choice for ``model`` (built by ``model_name``'s defaults) trained at ``batch_size`` on
    images of ``input_size``, timed on random images where the cache does not answer: what the
    benchmarks run in."""
    channels, side = input_size[0], input_size[-1]
    data = ImageTensors(torch.randint(0, 256, (batch_size, *input_size), dtype=torch.uint8),
                        torch.randint(0, model.cfg.num_classes, (batch_size,)))
    augment = InputSpec(size=side, mean=[0.5] * channels, std=[0.25] * channels).train_pipeline(
        flip=False, pca_std=0.0
    )
    # a benchmark's measuring is bounded as a 200-second run's would be (TUNING_SHARE of it)
    config = TrainConfig(model=model_name, batch_size=batch_size, compile="off",
                         precision=precision, channels_last=channels_last, time_budget=200.0)
    return tune(model.to(device), data, augment, config=config, device=device, side=side,
                expected_steps=MIN_RUN_STEPS, may_measure=True)
