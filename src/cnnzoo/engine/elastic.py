"""Runs that survive a lost process: torchrun's restarts, and the processes' agreement on where they
resume.

torchrun restarts every process of a job when one of them dies (``--max-restarts``), with the same
command line and ``TORCHELASTIC_RESTART_COUNT`` raised by one. A restarted process, or one started
with ``--resume auto``, continues the run in ``--out`` from its last complete checkpoint
(``checkpoints/last`` is written whole or not at all), or starts it afresh when no epoch had
finished (``resume.decide_start`` decides); the epoch that was cut short is trained again, exactly
as the first time, because the checkpoint holds every random state, the optimiser and the step
count.

Before anything is loaded, the processes compare what they found (epoch, step and a digest of the
file): a node that sees another run directory, or none, stops the job on every process instead of
training apart. See docs/distributed.md.
"""

from __future__ import annotations

import hashlib
import os
import signal
from pathlib import Path

import torch
import torch.distributed as dist

from cnnzoo.engine import distributed
from cnnzoo.engine.checkpoint import read_meta
from cnnzoo.errors import TrainingError

# set by torchrun: 0 on the first attempt, then 1, 2, ...
RESTART_COUNT = "TORCHELASTIC_RESTART_COUNT"
TEST_KILL_AT = "CNNZOO_TEST_KILL_AT"  # tests only: "EPOCH:STEP[:RANK]", see kill_if_test_asks


def restart_count() -> int:
    return int(os.environ.get(RESTART_COUNT, "0"))


def restartable() -> bool:
    """True when torchrun may restart this process (``--max-restarts`` above 0)."""
    return int(os.environ.get("TORCHELASTIC_MAX_RESTARTS", "0")) > 0


def checkpoint_identity(path: Path | None) -> tuple[int, int, int]:
    """(epoch, step, digest) of the checkpoint at ``path``, read without loading its tensors; (-1,
    0, 0) for none. The digest is the first 8 bytes of the file's SHA-256."""
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
    """Every process states what it is about to load (``path``, or None for a fresh start); unless
    all agree with process 0, every process stops with a ``TrainingError`` naming the ones that
    differ."""
    if not (dist.is_available() and dist.is_initialized()):
        return
    mine = torch.tensor(checkpoint_identity(path), dtype=torch.int64, device=device)
    views = [torch.empty_like(mine) for _ in range(distributed.world_size())]
    dist.all_gather(views, mine)
    found = [tuple(view.tolist()) for view in views]
    differ = [rank for rank, view in enumerate(found) if view != found[0]]
    if differ:
        raise TrainingError(
            "the processes found different checkpoints to start from (process 0: "
            f"{_described(found[0])}; "
            + "; ".join(f"process {r}: {_described(found[r])}" for r in differ)
            + "); every node must see the same run directory (put --out on a shared file system)"
        )


def _described(identity: tuple[int, int, int]) -> str:
    epoch, step, digest = identity
    return "nothing, a fresh start" if identity == (-1, 0, 0) else \
        f"epoch {epoch}, step {step}, digest {digest & (2**64 - 1):016x}"


def kill_if_test_asks(*, epoch: int, step: int) -> None:
    """Tests only: SIGKILL this process just before ``step`` (1-based) of ``epoch`` (1-based) when
    ``CNNZOO_TEST_KILL_AT=EPOCH:STEP[:RANK]`` names them and this rank (default 0), on a job's first
    attempt only (this agent's restart count 0), so that the restarted job runs through. Unset, it
    does nothing."""
    spec = os.environ.get(TEST_KILL_AT)
    if not spec or restart_count() > 0:
        return
    epoch_at, step_at, *rank_at = (int(part) for part in spec.split(":"))
    if (epoch, step, distributed.rank()) == (epoch_at, step_at, rank_at[0] if rank_at else 0):
        os.kill(os.getpid(), signal.SIGKILL)


__all__ = ["agree_on_start", "checkpoint_identity", "kill_if_test_asks", "restart_count",
           "restartable"]
