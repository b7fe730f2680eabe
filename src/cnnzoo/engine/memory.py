"""Keeping freed memory for reuse, so that a training step does not page-fault its activations in.

A training step frees and reallocates the same activation and gradient buffers every step. glibc's
malloc hands a block over its mmap threshold (adjusted as the process runs, at most 32 MiB on
64-bit Linux) straight back to the system when it is freed, so the next step's block of that size
is fresh memory, and every 4 KiB page of it faults on first touch. Measured on a 2-core Intel Xeon
with AMX (`benchmarks/allocator.py`, the training step alone): `budgetnet_l` as
`budgetnet-best` trains it faulted about 25,000 times a step, LeNet-5 1,200 and ResNet-20 10,000
to 15,000; keeping the memory took every one of them to none and each step 1.2–1.3× faster.

``keep_freed_memory`` raises both thresholds out of reach: blocks come from the heap, and freed
ones stay in it for the next step. The cost is that the process keeps its largest footprint until
it exits, which a training run reaches in its first step anyway. It changes the whole process, so
the training engine calls it, never an import; ``CNNZOO_KEEP_FREED_MEMORY=0`` in the environment
leaves malloc as it is.
"""

from __future__ import annotations

import ctypes
import os
import platform

# mallopt's parameters (glibc's malloc.h)
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
# above any block a step allocates; trimming: never (the largest a C int allows)
MMAP_THRESHOLD, TRIM_THRESHOLD = 1 << 30, (1 << 31) - 1
KEEP_ENV = "CNNZOO_KEEP_FREED_MEMORY"


def keep_freed_memory() -> bool:
    """Make this process's malloc keep freed blocks for reuse instead of returning them to the
    system; whether it did (Linux with glibc only: elsewhere, or with
    ``CNNZOO_KEEP_FREED_MEMORY=0``, nothing changes)."""
    if os.environ.get(KEEP_ENV) == "0":
        return False
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    return bool(libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
        libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
