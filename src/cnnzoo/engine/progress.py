"""The training bar: ``task_progress``'s bar, one stage per epoch, with the running loss, accuracy
and images/s after it; drawn only on a terminal (elsewhere the epoch lines are the whole log) and
cleared after each epoch, so that the epoch's own line stands alone."""

from __future__ import annotations

import sys
from typing import TextIO

from cnnzoo.task_progress import TaskProgress


class Progress:
    """A context manager around the bar; every method is a no-op when ``enabled`` is False or
    ``stream`` (default: stderr) is not a terminal."""

    def __init__(self, enabled: bool, stream: TextIO | None = None) -> None:
        stream = stream or sys.stderr
        self.bar = TaskProgress("train", stream=stream, terminal=True) if enabled and \
            stream.isatty() else None

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc) -> None:
        if self.bar:
            self.bar.clear()

    def start(self, description: str, total: int) -> TaskProgress | None:
        if self.bar:
            self.bar.stage(description, total)
        return self.bar

    def update(self, task: TaskProgress | None, stats: str) -> None:
        """One more step done; ``stats`` (when not empty) replaces the running figures."""
        if task:
            task.stats = stats or task.stats
            task.advance(1)

    def finish(self, task: TaskProgress | None) -> None:
        if task:
            task.clear()
