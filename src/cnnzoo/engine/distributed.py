"""Multi-process training under torchrun (``torchrun --nproc-per-node=N -m cnnzoo train ...``).

torchrun sets WORLD_SIZE, RANK and LOCAL_RANK. Each process drives one GPU (or CPU process, with the
gloo backend), reads and trains on its own share of every epoch (``data.dataset.Shard``: batch i
goes to rank i mod world), evaluates its share of the test set, and DistributedDataParallel averages
gradients. Only rank 0 writes the run directory and shows progress; ``elastic`` resumes every
process of a restarted job from it.

Every collective waits at most ``--dist-timeout`` seconds: a process that hung or died then ends the
job with a ``TrainingError`` on the processes that waited for it, naming the ranks that did not
answer. gloo's own message names no rank, so the processes that timed out check in on the job's
key-value store; the ranks missing there after a short grace are the ones named.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

import torch
import torch.distributed as dist

from cnnzoo.errors import TrainingError


def world_size() -> int:
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size()
    return int(os.environ.get("WORLD_SIZE", "1"))


def rank() -> int:
    return (
        dist.get_rank()
        if dist.is_available() and dist.is_initialized()
        else int(os.environ.get("RANK", "0"))
    )


def is_main_process() -> bool:
    return rank() == 0


def setup(device: torch.device, timeout: float = 300.0) -> bool:
    """Join the process group when launched by torchrun; returns True when training is distributed.

    ``timeout`` (seconds) bounds the wait for the other processes, here and in every later
    collective.
    """
    if world_size() <= 1 or not dist.is_available():
        return False
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(device)
        try:
            store, rank_, size = next(dist.rendezvous("env://", timeout=timedelta(seconds=timeout)))
            dist.init_process_group(backend=backend, store=_store_of_this_attempt(store),
                                    rank=rank_, world_size=size, timeout=timedelta(seconds=timeout))
        except RuntimeError as error:  # the store's "waiting for clients" timeout is a RuntimeError
            raise TrainingError(f"process {rank()} of {world_size()}: not every process joined "
                                f"within --dist-timeout {timeout:g} s ({_first_line(error)}); did "
                                "each one start?") from None
    return True


def _store_of_this_attempt(store: dist.Store) -> dist.Store:
    """The job's key-value store, with keys of their own for each attempt of a job torchrun
    restarted.

    torchrun's processes share its agent's store (TORCHELASTIC_USE_AGENT_STORE), which outlives a
    restart, so the restarted processes would read the addresses their dead predecessors published
    and fail to connect (pytorch/pytorch#135712). One agent counts its restarts alike for all its
    processes; several nodes count apart, so there ``TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1`` must
    give each attempt a new store (see docs/distributed.md), and ``setup`` refuses to start a
    restartable job without it.
    """
    if os.environ.get("TORCHELASTIC_USE_AGENT_STORE") != "True":
        return store
    if int(os.environ.get("GROUP_WORLD_SIZE", "1")) > 1 and int(
        os.environ.get("TORCHELASTIC_MAX_RESTARTS", "0")
    ):
        raise TrainingError("torchrun --max-restarts on several nodes needs each restart to get a "
                            "new store: launch torchrun with TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1 "
                            "in its environment on every node (see docs/distributed.md)")
    return dist.PrefixStore(f"cnnzoo/attempt-{os.environ.get('TORCHELASTIC_RESTART_COUNT', '0')}",
                            store)


@contextmanager
def collectives_answered(timeout: float) -> Iterator[None]:
    """Turn a collective that timed out or lost its peer into a ``TrainingError`` naming the ranks
    that did not answer; anything else (and everything when not distributed) passes through
    untouched."""
    try:
        yield
    except RuntimeError as error:
        if not (dist.is_available() and dist.is_initialized()) or not _lost_peer(error):
            raise
        me, missing = rank(), _ranks_that_did_not_answer(grace=min(10.0, timeout))
        others = [r for r in range(world_size()) if r != me]
        who = (
            f"rank(s) {', '.join(map(str, missing))} did not answer"
            if missing
            else f"one of ranks {', '.join(map(str, others))} did not answer (they could not be "
                 "told apart)"
        )
        raise TrainingError(f"process {me} of {world_size()} waited --dist-timeout {timeout:g} s "
                            "for the others: "
                            f"{who} ({_first_line(error)}); a process hung or died: see its log, "
                            f"or raise --dist-timeout if it is only slow") from None


def _lost_peer(error: RuntimeError) -> bool:
    """A timeout or a vanished peer: a DistError (NCCL, the store) or a RuntimeError raised inside
    gloo."""
    text = str(error).lower()
    return isinstance(error, getattr(dist, "DistError", ())) or any(
        marker in text for marker in ("gloo", "nccl", "connection closed by peer"))


def _ranks_that_did_not_answer(grace: float) -> list[int] | None:
    """The ranks that have not also timed out after ``grace`` seconds, from check-ins on the job's
    store (None when the store cannot be reached: the process hosting it may be the one that
    died)."""
    try:
        store = dist.distributed_c10d._get_default_store()
        store.set(f"cnnzoo/timed-out/{rank()}", "1")
        deadline = time.monotonic() + grace
        while True:
            missing = [r for r in range(world_size()) if not store.check([f"cnnzoo/timed-out/{r}"])]
            if not missing or time.monotonic() >= deadline:
                return missing or None
            time.sleep(0.2)
    except Exception:  # noqa: BLE001 - a store that is gone only means we cannot tell which rank it was
        return None


def _first_line(error: BaseException) -> str:
    """The error's first line without gloo's source location (``[/path/unbound_buffer.cc:78] Timed
    out ...``)."""
    text = str(error).strip()
    return re.sub(r"^\[[^\]]*\]\s*", "", text.splitlines()[0]) if text else type(error).__name__


def wrap(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(model,
                                   device_ids=[device.index] if device.type == "cuda" else None)


@contextmanager
def process_group(device: torch.device, timeout: float = 300.0) -> Iterator[bool]:
    """Join torchrun's process group for the ``with`` block, yielding whether training is
    distributed, and leave it on every path: after a normal end all processes leave together
    (``leave_together``); after an error each leaves at once, since the others may be gone (a group
    this process did not join is left alone)."""
    joined_here = not (dist.is_available() and dist.is_initialized())
    distributed_run = setup(device, timeout)
    try:
        yield distributed_run
    except BaseException:
        if joined_here:
            cleanup()
        raise
    if joined_here:
        with collectives_answered(timeout):
            leave_together(device)


def leave_together(device: torch.device) -> None:
    """Wait until every process has come here (so no process leaves while process 0 still writes the
    run's files), then leave the process group.

    Why the wait for a release: gloo runs collectives on worker threads that outlive the group (a
    DistributedDataParallel reducer keeps it referenced), and a worker drops its references to a
    collective's tensors only after the caller has been told it finished. Dropping a tensor that
    Python also knows takes the GIL; if the interpreter has begun to shut down by then, the worker
    thread is ended inside a destructor and the C++ runtime aborts the process ("terminate called
    without an active exception", exit -6), which made torchrun kill process 0 before it had written
    summary.json. So the last collective's tensor is held here until the worker has let it go: every
    earlier one was released while this process waited for the others.
    """
    if not (dist.is_available() and dist.is_initialized()):
        return
    arrived = torch.ones(1, device=device)
    dist.all_reduce(arrived)
    _wait_until_released(arrived)
    dist.destroy_process_group()


def _wait_until_released(tensor: torch.Tensor, limit: float = 10.0) -> None:
    """Sleep (GIL released) until nothing but ``tensor`` itself refers to its data, at most
    ``limit`` seconds."""
    deadline = time.monotonic() + limit
    while tensor._use_count() > 1 and time.monotonic() < deadline:
        time.sleep(0.001)


def cleanup() -> None:
    """Leave the process group without waiting for the others (on an error they may be gone)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def agree_max(values: list[float], device: torch.device) -> list[float]:
    """The element-wise maximum of ``values`` over all processes (the values themselves when not
    distributed).

    Processes must take the same decisions — stop for the time budget, stop for a non-finite loss,
    use the same learning rate — or DistributedDataParallel waits forever for a process that left,
    or lets the copies drift.
    """
    if not (dist.is_available() and dist.is_initialized()):
        return values
    tensor = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return tensor.tolist()


def sum_over_processes(tensor: torch.Tensor, device: torch.device) -> torch.Tensor:
    """``tensor`` summed over all processes (itself when not distributed), returned on ``tensor``'s
    device."""
    if not (dist.is_available() and dist.is_initialized()):
        return tensor
    summed = tensor.to(device, copy=True)
    dist.all_reduce(summed, op=dist.ReduceOp.SUM)
    return summed.to(tensor.device)


def concatenate_over_processes(part: torch.Tensor) -> torch.Tensor:
    """The processes' ``part``s (alike but in length) concatenated in rank order, on every process
    (``part`` itself when not distributed). gloo and NCCL gather equal sizes, so the parts travel
    padded to the longest."""
    if not (dist.is_available() and dist.is_initialized()):
        return part
    device = (
        torch.device("cuda", torch.cuda.current_device())
        if dist.get_backend() == "nccl"
        else torch.device("cpu")
    )
    length = torch.tensor([len(part)], device=device)
    lengths = [torch.empty_like(length) for _ in range(world_size())]
    dist.all_gather(lengths, length)
    longest = max(int(n) for n in lengths)
    padded = torch.zeros((longest, *part.shape[1:]), dtype=part.dtype, device=device)
    padded[: len(part)] = part
    parts = [torch.empty_like(padded) for _ in range(world_size())]
    dist.all_gather(parts, padded)
    return torch.cat([gathered[: int(n)] for gathered, n in zip(parts, lengths, strict=True)]).to(
        part.device
    )


def from_main_process(value: float, device: torch.device) -> float:
    """Process 0's ``value`` on every process (e.g. its test error, which drives the plateau
    schedule)."""
    if not (dist.is_available() and dist.is_initialized()):
        return value
    tensor = torch.tensor([value], dtype=torch.float64, device=device)
    dist.broadcast(tensor, src=0)
    return tensor.item()
