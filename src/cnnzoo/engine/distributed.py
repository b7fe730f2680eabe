"""Multi-process training under torchrun (``torchrun --nproc-per-node=N -m cnnzoo train ...``).

torchrun sets WORLD_SIZE, RANK and LOCAL_RANK. Each process drives one GPU (or CPU process, with the gloo
backend), sees every batch index but trains only on its own share (batch i goes to rank i mod world), and
DistributedDataParallel averages gradients. Only rank 0 writes the run directory and shows progress.
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else int(os.environ.get("RANK", "0"))


def is_main_process() -> bool:
    return rank() == 0


def setup(device: torch.device) -> bool:
    """Join the process group when launched by torchrun; returns True when training is distributed."""
    if world_size() <= 1 or not dist.is_available():
        return False
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend=backend)
    return True


def wrap(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)


def cleanup() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def agree_max(values: list[float], device: torch.device) -> list[float]:
    """The element-wise maximum of ``values`` over all processes (the values themselves when not distributed).

    Processes must take the same decisions — stop for the time budget, stop for a non-finite loss, use the same
    learning rate — or DistributedDataParallel waits forever for a process that left, or lets the copies drift.
    """
    if not (dist.is_available() and dist.is_initialized()):
        return values
    tensor = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return tensor.tolist()


def from_main_process(value: float, device: torch.device) -> float:
    """Process 0's ``value`` on every process (e.g. its test error, which drives the plateau schedule)."""
    if not (dist.is_available() and dist.is_initialized()):
        return value
    tensor = torch.tensor([value], dtype=torch.float64, device=device)
    dist.broadcast(tensor, src=0)
    return tensor.item()
