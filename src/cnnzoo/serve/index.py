"""The nearest-neighbour index of one loaded run, built in a background thread so that nothing waits
for it.

Searching training images needs their penultimate features: for alexnet_small on Fashion-MNIST that
is a forward pass over 20,000 images, about 45 s on 2 cores. Built inside a request it held the
run's lock (and an inference slot) all that time, so predict, maps and Grad-CAM of that run froze
behind it. Here a daemon thread builds it on a private copy of the model (forward hooks on the
shared model would capture each other's outputs), batch by batch, at a lower scheduling priority,
and reports its progress; requests ask for ``progress()`` and search only once it is ``ready``. An
index is built once per loaded checkpoint: a newer checkpoint makes a new cache entry and a new
index, and the old one is cancelled.
"""

from __future__ import annotations

import copy
import math
import os
import threading
import time

import torch

MAX_SEARCHED = (
    20_000  # training images searched, evenly spaced (a third of Fashion-MNIST's): the build's cost
)
# grows with the data set and the model, and 20,000 already finds neighbours of every class
BATCH = (
    250  # images per forward pass: progress moves every fraction of a second, memory stays small
)
NICENESS = 10  # the builder yields the CPU to requests (Linux schedules threads as tasks)


class Cancelled(Exception):
    """The index was given up: its run was unloaded or its checkpoint replaced."""


class NeighbourIndex:
    """Penultimate features of (a spaced subset of) a run's training images, being built or
    built."""

    def __init__(self, subject, load_data) -> None:
        self.subject, self._load_data = subject, load_data
        self.state, self.error = "loading", None  # loading → building → ready, or failed
        self.done = self.total = 0
        self.step, self.images, self.labels, self.features = 1, None, None, None
        self.started, self.finished = time.monotonic(), None
        self._cancel = threading.Event()
        self.thread = threading.Thread(target=self._run, name="cnnzoo-index", daemon=True)

    def start(self) -> NeighbourIndex:
        self.thread.start()
        return self

    @property
    def ready(self) -> bool:
        return self.state == "ready"

    def cancel(self) -> None:
        self._cancel.set()

    def progress(self) -> dict:
        """What the page shows: the state, images done of the total, and seconds since the start."""
        end = self.finished or time.monotonic()
        return {
            "state": self.state,
            "done": self.done,
            "total": self.total,
            "seconds": round(end - self.started, 1),
            "error": self.error,
        }

    def _run(self) -> None:
        try:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), NICENESS)
        except (AttributeError, OSError):  # not Linux, or not allowed: the build still runs
            pass
        try:
            self._build()
        except Cancelled:
            self.state = "cancelled"
        # a damaged data set or model: shown on the page, in words
        except Exception as error:  # noqa: BLE001
            self.state, self.error = "failed", str(error) or type(error).__name__
        self.finished = time.monotonic()

    @torch.no_grad()
    def _build(self) -> None:
        from cnnzoo.visualize import retrieval
        from cnnzoo.visualize.source import model_input

        data = self._load_data()
        self.step = math.ceil(len(data.train) / MAX_SEARCHED)
        images, labels = (
            data.train.images[:: self.step].cpu(),
            data.train.labels[:: self.step].cpu(),
        )
        self.total, self.state = len(images), "building"
        model = copy.deepcopy(self.subject.model).eval()
        parts = []
        for chunk in images.split(BATCH):
            if self._cancel.is_set():
                raise Cancelled
            parts.append(retrieval.penultimate(model, model_input(self.subject, chunk)).cpu())
            self.done += len(chunk)
        self.images, self.labels, self.features = images, labels, torch.cat(parts)
        self.state = "ready"
