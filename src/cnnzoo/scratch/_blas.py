"""Run NumPy's matrix products on one thread while the scratch networks train.

The scratch layers multiply tall, thin matrices (e.g. a 50 000 × 6 gradient by a 50 000 × 25 im2col matrix).
A multi-threaded BLAS splits such products into pieces too small to pay for the coordination, and when the
CPU cores are also busy with other work its threads spin waiting for one another: on a shared 2-core machine
we measured a training step at 25 ms with one BLAS thread and 50–1500 ms with the default two. So the
training loops call ``single_threaded_blas()``.

It uses threadpoolctl when that is installed; otherwise it calls the ``*_set_num_threads`` function of the
OpenBLAS that NumPy's wheels bundle, through ctypes. Anywhere else it changes nothing.
"""

from __future__ import annotations

import ctypes
import functools
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

_SETTERS = ("scipy_openblas_set_num_threads64_", "scipy_openblas_set_num_threads", "openblas_set_num_threads64_",
            "openblas_set_num_threads")


@functools.cache
def _bundled_openblas() -> tuple[object, object] | None:
    """(set_num_threads, get_num_threads) of the OpenBLAS inside NumPy's wheel, or None."""
    import numpy

    root = Path(numpy.__file__).parent
    for folder in (root.parent / "numpy.libs", root / ".dylibs"):
        for path in sorted(folder.glob("*openblas*")):
            try:
                lib = ctypes.CDLL(str(path))  # the library is already loaded, so this returns its handle
            except OSError:
                continue
            for setter in _SETTERS:
                getter = setter.replace("set_", "get_")
                if hasattr(lib, setter) and hasattr(lib, getter):
                    return getattr(lib, setter), getattr(lib, getter)
    return None


@contextmanager
def single_threaded_blas() -> Iterator[None]:
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        threadpool_limits = None
    if threadpool_limits is not None:
        with threadpool_limits(limits=1, user_api="blas"):
            yield
        return
    functions = _bundled_openblas()
    if functions is None:
        yield
        return
    set_threads, get_threads = functions
    previous = int(get_threads())
    set_threads(1)
    try:
        yield
    finally:
        set_threads(previous)
