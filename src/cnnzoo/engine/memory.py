"""Keeping freed memory for reuse, so that a training step does not page-fault its activations in.

A training step frees and reallocates the same activation and gradient buffers every step. glibc's
malloc hands a block over its mmap threshold (adjusted as the process runs, at most 32 MiB on
64-bit Linux) straight back to the system when it is freed, so the next step's block of that size
is fresh memory, and every 4 KiB page of it faults on first touch. Measured on a 2-core Intel Xeon
with AMX (`benchmarks/allocator.py`, 45 s of each recipe in fresh processes): `budgetnet-best`
faulted 13.6 million times, 0.16 million with the memory kept, and trained at 5,100 images/s kept
against 4,000–5,100 plain (the faults cost what the host makes them cost at the moment: 3,900
against 5,000 in an earlier pair); `lenet5-demo` and `resnet20` trained as fast either way.
`cnnzoo eval` of that run's six test views took 20.2 s kept against 28.4 s (two of each).

``keep_freed_memory`` raises both thresholds out of reach: blocks come from the heap, and freed
ones stay in it for the next step. The cost is that the process keeps its largest footprint until
it exits, which a training run reaches in its first step anyway (3% more peak memory for
budgetnet-best). It changes the whole process, so the training engine and `cnnzoo eval` call it,
never an import; ``CNNZOO_KEEP_FREED_MEMORY=0`` in the environment leaves malloc as it is.
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
