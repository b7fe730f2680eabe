"""What a start means, decided once: a new run, a replaced one, or a resumed one (continued,
extended, or resumed only to write the end-of-run files a crash skipped).

``decide_start`` takes the request (the settings, ``--resume``, ``--overwrite``), what the run
directory holds (``look_at``, which reads config.json, summary.json and the last checkpoint's
header, never its tensors) and whether torchrun may restart this process, and returns a ``Start``,
or raises the one error that says why the request cannot be met. It reads nothing itself, so every
case is a line of a table in tests/test_resume.py.

Under torchrun with ``--max-restarts`` (and with ``--resume auto``) every attempt behaves alike, the
first too: torchrun counts restarts per node, and a node restarted because another failed still
reads 0, so the count alone cannot tell the nodes whether to resume; the run directory, which they
share, can. The run in ``--out`` then resumes when it is the same run (its settings equal the
request's but for those a resume may change) and has a checkpoint, and starts again in place when no
epoch had finished.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path

from cnnzoo import rundir
from cnnzoo.engine.checkpoint import read_meta
from cnnzoo.engine.config import TrainConfig, flag
from cnnzoo.errors import (
    CheckpointError,
    CnnzooError,
    ConfigError,
    RunDirectoryError,
    TrainingError,
)

AUTO = "auto"  # --resume auto: continue the run in --out if it has a checkpoint, else start it
# a resume may change these
RESUMABLE_SETTINGS = ("epochs", "time_budget", "eval_every", "device", "threads", "dist_timeout")
NEW, REPLACE, CONTINUE, EXTEND, FINISH = "new", "replace", "continue", "extend", "finish"


@dataclass(frozen=True)
class Found:
    """What a run directory holds, as far as a start needs to know."""

    holds_run: bool = False
    settings: dict | None = None  # config.json's (checked), None when there is none
    last_epoch: int | None = None  # the last checkpoint's epoch; None without one
    last_seconds: float = 0.0  # its seconds of training
    summary_epochs: int | None = None  # the epochs summary.json reports: the run finished there
    # why the last checkpoint cannot be read (a resume fails; --overwrite replaces it)
    damaged: str | None = None
    checkpoints: bool = False  # any checkpoint at all (best or last)

    @property
    def debris(self) -> bool:
        """Only the start of a run that never saved a checkpoint (killed in its first epoch):
        nothing to keep."""
        return (
            self.holds_run
            and not self.checkpoints
            and self.last_epoch is None
            and self.damaged is None
        )


@dataclass(frozen=True)
class Start:
    kind: str  # NEW, REPLACE (--overwrite, or starting again in place), CONTINUE, EXTEND or FINISH
    # the settings the run goes on with (a resumed run's own, with the changes allowed)
    config: TrainConfig
    note: str | None = None  # what the user should be told about this start

    @property
    def resumes(self) -> bool:
        return self.kind in (CONTINUE, EXTEND, FINISH)

    @property
    def run_dir(self) -> Path:
        return Path(self.config.out)


def look_at(run_dir: Path) -> Found:
    """What ``run_dir`` holds (``Found()`` when it does not exist)."""
    if not rundir.holds_run(run_dir):
        return Found()
    checkpoints = any((run_dir / rundir.CHECKPOINTS).glob("*.safetensors"))
    try:
        settings = TrainConfig.from_json(run_dir / rundir.CONFIG).to_dict() \
            if (run_dir / rundir.CONFIG).exists() else None
        state = _run_state(run_dir / rundir.LAST) if (run_dir / rundir.LAST).exists() else None
    except CnnzooError as error:
        return Found(True, damaged=str(error), checkpoints=checkpoints)
    epoch, seconds = state if state is not None else (None, 0.0)
    return Found(True, settings, epoch, seconds, rundir.finished_epochs(run_dir),
                 checkpoints=checkpoints)


def _run_state(path: Path) -> tuple[int, float]:
    """(epoch, seconds of training) from a checkpoint's header, each checked."""
    state = read_meta(path).get("run_state", {})
    state = state if isinstance(state, dict) else {}
    seconds = state.get("train_seconds", 0.0)
    if type(seconds) not in (int, float) or not 0 <= seconds < math.inf:
        raise TrainingError(f"{path}: its run_state.train_seconds is {seconds!r}, not a number of "
                            "seconds ≥ 0; the checkpoint is damaged")
    return _whole(state.get("epoch", 0), path, "epoch"), float(seconds)


def _whole(value: object, path: Path, key: str) -> int:
    if type(value) is not int or not 0 <= value <= 10**6:
        raise TrainingError(f"{path}: its run_state.{key} is {value!r}, not a whole number from 0 "
                            "to 1,000,000; the checkpoint is damaged")
    return value


def decide_start(config: TrainConfig | None, resume: Path | str | None, overwrite: bool,
                 found: Found, *,
                 overrides: dict | None = None, restartable: bool = False,
                 restart_count: int = 0) -> Start:
    """The ``Start`` a request means, given what its run directory holds (``found``: of ``resume``
    when that is a run directory, else of ``config.out``)."""
    auto = resume is not None and str(resume) == AUTO
    if resume is not None and not auto:
        return _resume(Path(resume), found, overrides or {})
    if not auto and not restartable:
        return _new(config, found, overwrite)
    if auto and overwrite:
        raise ConfigError("--resume auto continues the run in --out, --overwrite replaces it: "
                          "give one of them")
    if config is None or config.out is None:
        raise ConfigError("--resume auto and torchrun --max-restarts need --out: the run "
                          "directory that every process, and every restart, continues")
    # a restartable job's first attempt, told to replace the run
    if overwrite and restart_count == 0:
        return Start(REPLACE if found.holds_run else NEW, config)
    if not found.holds_run:
        return Start(NEW, config)
    if found.damaged and not overwrite:
        raise CheckpointError(f"{found.damaged}; the run cannot be resumed: start it again with "
                              "--overwrite")
    differences = _differences(found, config)
    # (a restart of an --overwrite job may find the old run still there)
    if differences and not overwrite:
        raise ConfigError(f"{config.out} holds another run (its "
                          f"{', '.join(map(flag, differences))} differ from this command's), so it "
                          "is not resumed; choose another --out, or continue that run with "
                          f"`cnnzoo train --resume {config.out}`")
    if not differences and found.last_epoch is not None:
        return _resume(Path(config.out), found,
                       {name: getattr(config, name) for name in RESUMABLE_SETTINGS})
    # no epoch finished, or the replacement was cut short: start again in place
    return Start(REPLACE, config)


def _new(config: TrainConfig, found: Found, overwrite: bool) -> Start:
    if not found.holds_run:
        return Start(NEW, config)
    if found.debris and not overwrite:  # a rerun of a command that was killed in its first epoch
        return Start(REPLACE, config,
                     f"{config.out} held only the start of a run that never saved a checkpoint; "
                     "starting again in its place")
    if not overwrite:
        raise ConfigError(f"{config.out} already holds a cnnzoo run (config.json or checkpoints); "
                          f"continue it with `cnnzoo train --resume {config.out}`, replace it with "
                          "--overwrite, or choose another --out")
    return Start(REPLACE, config)


def _resume(run_dir: Path, found: Found, overrides: dict) -> Start:
    """A run resumed from its last checkpoint: continued, extended past its end, or only
    finished."""
    changed = sorted(set(overrides) - set(RESUMABLE_SETTINGS))
    if changed:
        raise ConfigError("a resumed run keeps its settings; only "
                          f"{', '.join(map(flag, RESUMABLE_SETTINGS))} can change (got "
                          f"{', '.join(map(flag, changed))})")
    if not run_dir.is_dir():
        raise RunDirectoryError(f"{run_dir}: no such run directory to resume; give the folder "
                                "that `cnnzoo train --out` made")
    if found.damaged:
        raise CheckpointError(f"{found.damaged}; the run cannot be resumed: start it again with "
                              "--overwrite")
    if found.last_epoch is None or found.settings is None:
        raise _nothing_to_resume(run_dir, found)
    config = dataclasses.replace(TrainConfig.from_dict(found.settings), out=str(run_dir),
                                 **overrides)
    budget_left = config.time_budget is None or found.last_seconds < config.time_budget
    if found.last_epoch < config.epochs and budget_left:
        return Start(EXTEND if found.summary_epochs == found.last_epoch else CONTINUE, config)
    # stopped after its last checkpoint, before summary.json
    if found.summary_epochs != found.last_epoch:
        return Start(FINISH, config)
    raise ConfigError(f"{run_dir} already ran {found.last_epoch} epochs ({found.last_seconds:.0f} "
                      f"s of training); to continue it, raise --epochs (now {config.epochs}) or "
                      "--time-budget")


def _nothing_to_resume(run_dir: Path, found: Found) -> Exception:
    if not found.holds_run and not (run_dir / rundir.CHECKPOINTS).is_dir():
        return RunDirectoryError(f"{run_dir} is not a cnnzoo run directory (no config.json, no "
                                 "checkpoints); give the folder that `cnnzoo train --out` made, "
                                 "or start a new run with --out")
    return TrainingError(f"{run_dir}: nothing to resume: no epoch finished before the run stopped "
                         f"(there is no {rundir.LAST}); start it again from scratch, with the same "
                         f"options and --out {run_dir} --overwrite")


def _differences(found: Found, config: TrainConfig) -> list[str]:
    """The settings of the run found that differ from ``config``'s, besides those a resume may
    change."""
    if found.settings is None:
        return ["config.json"]
    saved, given = TrainConfig.from_dict(found.settings).to_dict(), config.to_dict()
    return sorted(name for name, value in given.items()
                  if name not in (*RESUMABLE_SETTINGS, "out") and saved.get(name) != value)
