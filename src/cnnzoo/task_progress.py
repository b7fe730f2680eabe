"""Progress of a long command on stderr: a bar redrawn in place on a terminal, a line per stage
otherwise (a log file, CI), and never anything on stdout, so ``--json`` output stays one document.

Imports nothing heavy (no torch, no rich), so any command may use it. The time left is measured, not
predicted: the stage's elapsed time over its done share, shown only once enough of the stage has run
for that to mean something, so a first slow (or fast) batch cannot announce an absurd figure.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from typing import TextIO

Advance = Callable[[int], None]  # how a loop reports that it finished this many more items

MIN_SHARE = 0.02  # no time-left figure before 2% of a stage is done…
MIN_SECONDS = 1.0  # …and before it has run a second
LINE_EVERY = 10.0  # off a terminal: a line at most this often within a stage
REDRAW_EVERY = 0.1  # on a terminal: redraw at most this often
BAR_WIDTH = 24


def duration(seconds: float) -> str:
    """``8 s``, ``3 min 20 s``, ``1 h 05 min``: a time a person reads at a glance."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        minutes, rest = divmod(seconds, 60)
        return f"{minutes} min {rest:02d} s" if minutes < 10 else f"{round(seconds / 60)} min"
    hours, rest = divmod(seconds, 3600)
    return f"{hours} h {rest // 60:02d} min"


class TaskProgress:
    """``with TaskProgress("neighbours") as progress:`` then ``progress.stage("features", total=N)``
    and ``progress.advance(n)`` (or pass ``progress.advance`` to a loop as its ``Advance``)."""

    def __init__(self, label: str, *, stream: TextIO | None = None, terminal: bool | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.label, self.stream, self.clock = label, stream or sys.stderr, clock
        self.terminal = self.stream.isatty() if terminal is None else terminal
        self.started = clock()
        self.name, self.total, self.done = "", None, 0
        self.stage_started = self.last_shown = self.started
        self.drawn = False
        self.stats = ""  # running figures drawn after the bar (training's loss, accuracy, images/s)

    def __enter__(self) -> TaskProgress:
        return self

    def __exit__(self, error_type, *exc) -> None:
        if error_type is None:
            self.close()
        else:  # the error's own line follows, alone: no bar left, no "done"
            self.clear()

    def stage(self, name: str, total: int | None = None) -> None:
        """Start the next stage (``total``: its items, when it counts them)."""
        self.name, self.total, self.done, self.stats = name, total, 0, ""
        self.stage_started = self.last_shown = self.clock()
        if self.terminal:
            self._draw()
        else:
            self._write(f"{self.label}: {name}" + (f" ({total:,})" if total else "") + " …")

    def step(self, name: str, index: int, count: int,
             costs: Sequence[float] | None = None) -> None:
        """Start stage ``index`` (0-based) of ``count`` (a benchmark's models), with the time left
        at this task's pace so far: none before the first has finished. The stages cost alike, or
        in proportion to ``costs`` (one per stage: the recipes' time budgets, say), so that three
        30-second runs done do not promise the 5-minute ones the same pace."""
        left = ""
        if index:
            costs = costs or [1.0] * count
            done, rest = sum(costs[:index]), sum(costs[index:])
            left = f", about {duration((self.clock() - self.started) / done * rest)} left"
        self.stage(f"{name} ({index + 1}/{count}{left})")

    def note(self, line: str) -> None:
        """A line of the command's own (a result, a training epoch) between the stages: on a
        terminal the bar is cleared first, so the line never runs on from it."""
        self._write(line)

    def counted(self, batches):
        """``batches`` as they are, each one's length reported to ``advance`` once it is used."""
        for batch in batches:
            yield batch
            self.advance(len(batch))

    def advance(self, count: int = 1) -> None:
        self.done += count
        now = self.clock()
        if self.terminal and now - self.last_shown >= REDRAW_EVERY:
            self._draw()
        elif not self.terminal and now - self.last_shown >= LINE_EVERY and self.total:
            self._write(f"{self.label}: {self.name} {self._status()}")
        else:
            return
        self.last_shown = now

    def seconds_left(self) -> float | None:
        """The stage's time left at this run's measured pace; None until it can be measured."""
        if not self.total or self.done <= 0:
            return None
        elapsed, share = self.clock() - self.stage_started, min(1.0, self.done / self.total)
        if share < MIN_SHARE or elapsed < MIN_SECONDS:
            return None
        return elapsed / share * (1 - share)

    def clear(self) -> None:
        """Clear the bar, if it is drawn, and say nothing."""
        if self.drawn:
            self.stream.write("\r\x1b[2K")
            self.stream.flush()
            self.drawn = False

    def close(self) -> None:
        """Clear the bar (the command's own report follows) and say how long the whole task took."""
        self.clear()
        if self.name:
            self._write(f"{self.label}: done in {duration(self.clock() - self.started)}")
        self.name = ""

    def _status(self) -> str:
        share = min(1.0, self.done / self.total) if self.total else None
        text = f"{self.done:,}"
        if share is not None:
            text = f"{share:.0%} ({self.done:,}/{self.total:,})"
        left = self.seconds_left()
        return text + (f", about {duration(left)} left" if left is not None else "")

    def _draw(self) -> None:
        bar = ""
        if self.total:
            filled = round(BAR_WIDTH * min(1.0, self.done / self.total))
            bar = "[" + "#" * filled + "-" * (BAR_WIDTH - filled) + "] "
        status = self._status() if (self.total or self.done) else ""
        stats = f" · {self.stats}" if self.stats else ""
        self.stream.write(f"\r\x1b[2K{self.label}: {self.name} {bar}{status}{stats}")
        self.stream.flush()
        self.drawn = True

    def _write(self, line: str) -> None:
        self.clear()
        self.stream.write(line + "\n")
        self.stream.flush()
