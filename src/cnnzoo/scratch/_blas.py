"""Run NumPy's matrix products on one thread while the scratch networks train.

The scratch layers multiply tall, thin matrices (a 50 000 × 6 gradient by a 50 000 × 25 im2col
matrix, say). A multi-threaded BLAS cuts such products into pieces too small to pay for the
coordination, and on a busy machine its threads spin waiting for one another: on a shared 2-core
machine a training step took 25 ms with one BLAS thread and 50–1500 ms with two. ``threadpoolctl``
sets the limit for whichever BLAS NumPy was built with, and restores it afterwards.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from threadpoolctl import threadpool_limits


@contextmanager
def single_threaded_blas() -> Iterator[None]:
    """Limit every loaded BLAS library to one thread inside the ``with`` block."""
    with threadpool_limits(limits=1, user_api="blas"):
        yield
