"""Runs that survive a lost process: where a start resumes from, and the processes' agreement on it.

torchrun restarts every process of a job when one of them dies (``--max-restarts``), with the same command line
and ``TORCHELASTIC_RESTART_COUNT`` raised by one. A restarted process, or one started with ``--resume auto``,
continues the run in ``--out`` from its last complete checkpoint (``checkpoints/last`` is written whole or not at
all), or starts it afresh when no epoch had finished; the epoch that was cut short is trained again, exactly as
the first time, because the checkpoint holds every random state, the optimiser and the step count.

Before anything is loaded, the processes compare what they found (epoch, step and a digest of the file): a node
that sees another run directory, or none, stops the job on every process instead of training apart.
See docs/distributed.md.
"""

from __future__ import annotations

import hashlib
import os
import signal
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist

from cnnzoo.engine import distributed
from cnnzoo.engine.checkpoint import read_meta
from cnnzoo.engine.config import TrainConfig, flag
from cnnzoo.rundir import CONFIG, LAST, holds_run
from cnnzoo.engine.state import RESUMABLE_SETTINGS
from cnnzoo.errors import ConfigError, TrainingError

AUTO = "auto"  # --resume auto: continue the run in --out if it has a checkpoint, else start it
RESTART_COUNT = "TORCHELASTIC_RESTART_COUNT"  # set by torchrun: 0 on the first attempt, then 1, 2, ...
TEST_KILL_AT = "CNNZOO_TEST_KILL_AT"  # tests only: "EPOCH:STEP[:RANK]", see kill_if_test_asks


@dataclass(frozen=True)
class Start:
    """How a run starts: the run directory it resumes (None: a new run), the settings the resumed run may
    change, and whether a new run replaces what its directory holds."""

    resume: Path | None
    overrides: dict | None
    overwrite: bool


def restart_count() -> int:
    return int(os.environ.get(RESTART_COUNT, "0"))


def restartable() -> bool:
    """True when torchrun may restart this process (``--max-restarts`` above 0)."""
    return int(os.environ.get("TORCHELASTIC_MAX_RESTARTS", "0")) > 0


def resolve_start(config: TrainConfig | None, resume: Path | str | None, overwrite: bool,
                  overrides: dict | None = None) -> Start:
    """``resume`` as given (a run directory, ``"auto"`` or None) turned into a ``Start``.

    A run directory resumes that run; None starts a new one, except in a job torchrun may restart, which
    behaves as ``"auto"``: the run in ``config.out`` resumes when it has a complete checkpoint and is the same
    run (its settings equal ``config``'s but for those a resume may change), else starts again in place.
    Every attempt of such a job behaves so, the first too (``--overwrite`` aside): torchrun counts restarts per
    node, and a node restarted because another failed still reads 0, so the count alone cannot tell the nodes
    whether to resume; the run directory, which they share, can.
    """
    auto = resume is not None and str(resume) == AUTO
    if resume is not None and not auto:
        return Start(Path(resume), overrides, False)
    if not auto and not restartable():
        return Start(None, None, overwrite)
    if auto and overwrite:
        raise ConfigError("--resume auto continues the run in --out, --overwrite replaces it: give one of them")
    if overwrite and restart_count() == 0:  # a restartable job's first attempt, told to replace the run
        return Start(None, None, True)
    if config is None or config.out is None:
        raise ConfigError("--resume auto needs --out: the run directory to continue (or to start)")
    run_dir = Path(config.out)
    if not holds_run(run_dir):
        return Start(None, None, False)
    differences = _differences(run_dir, config)
    if differences and not overwrite:  # (a restart of an --overwrite run may find the old run still there)
        raise ConfigError(f"{run_dir} holds another run (its {', '.join(map(flag, differences))} differ from this "
                          f"command's), so it is not resumed; choose another --out, or continue that run with "
                          f"`cnnzoo train --resume {run_dir}`")
    if not differences and (run_dir / LAST).is_file():
        return Start(run_dir, {name: getattr(config, name) for name in RESUMABLE_SETTINGS}, False)
    return Start(None, None, True)  # no epoch finished, or the replacement was cut short: start again in place


def _differences(run_dir: Path, config: TrainConfig) -> list[str]:
    """The settings of the run in ``run_dir`` that differ from ``config``'s, besides those a resume may change."""
    if not (run_dir / CONFIG).is_file():
        return ["config.json"]
    saved, given = TrainConfig.from_json(run_dir / CONFIG).to_dict(), config.to_dict()
    return sorted(name for name, value in given.items()
                  if name not in (*RESUMABLE_SETTINGS, "out") and saved.get(name) != value)


def checkpoint_identity(path: Path | None) -> tuple[int, int, int]:
    """(epoch, step, digest) of the checkpoint at ``path``, read without loading its tensors; (-1, 0, 0) for
    none. The digest is the first 8 bytes of the file's SHA-256."""
    if path is None:
        return -1, 0, 0
    meta = read_meta(path)
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    run_state = meta.get("run_state") or {}
    return int(run_state.get("epoch", -1)), int(run_state.get("step", 0)), \
        int.from_bytes(digest.digest()[:8], "little", signed=True)


def agree_on_start(path: Path | None, device: torch.device) -> None:
    """Every process states what it is about to load (``path``, or None for a fresh start); unless all agree
    with process 0, every process stops with a ``TrainingError`` naming the ones that differ."""
    if not (dist.is_available() and dist.is_initialized()):
        return
    mine = torch.tensor(checkpoint_identity(path), dtype=torch.int64, device=device)
    views = [torch.empty_like(mine) for _ in range(distributed.world_size())]
    dist.all_gather(views, mine)
    found = [tuple(view.tolist()) for view in views]
    differ = [rank for rank, view in enumerate(found) if view != found[0]]
    if differ:
        raise TrainingError(f"the processes found different checkpoints to start from (process 0: "
                            f"{_described(found[0])}; " + "; ".join(f"process {r}: {_described(found[r])}"
                                                                   for r in differ) +
                            "); every node must see the same run directory (put --out on a shared file system)")


def _described(identity: tuple[int, int, int]) -> str:
    epoch, step, digest = identity
    return "nothing, a fresh start" if identity == (-1, 0, 0) else \
        f"epoch {epoch}, step {step}, digest {digest & (2**64 - 1):016x}"


def kill_if_test_asks(*, epoch: int, step: int) -> None:
    """Tests only: SIGKILL this process just before ``step`` (1-based) of ``epoch`` (1-based) when
    ``CNNZOO_TEST_KILL_AT=EPOCH:STEP[:RANK]`` names them and this rank (default 0), on a job's first attempt
    only (this agent's restart count 0), so that the restarted job runs through. Unset, it does nothing."""
    spec = os.environ.get(TEST_KILL_AT)
    if not spec or restart_count() > 0:
        return
    epoch_at, step_at, *rank_at = (int(part) for part in spec.split(":"))
    if (epoch, step, distributed.rank()) == (epoch_at, step_at, rank_at[0] if rank_at else 0):
        os.kill(os.getpid(), signal.SIGKILL)


__all__ = ["AUTO", "Start", "agree_on_start", "checkpoint_identity", "kill_if_test_asks", "resolve_start",
           "restart_count", "restartable"]
