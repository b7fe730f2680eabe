"""Learning-rate schedules as functions of training progress.

Progress is the fraction of the run done, in [0, 1]: steps done over steps planned, or — when the
run has a time budget — seconds spent over seconds allowed, so one-cycle and cosine schedules end
their anneal exactly when the budget runs out. ``plateau`` (AlexNet's rule) is the exception: it
divides the rate by 10 when the test error stops improving, so it lives in ``PlateauDivider`` and is
updated once per epoch. ``progressive_side`` follows the same progress for ``--progressive-resize``:
the image side a step trains at.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


def lr_factor(schedule: str, progress: float, *, warmup: float = 0.0, epoch: int = 0,
              step_epochs: int = 30) -> float:
    """Multiplier of the peak learning rate at ``progress`` ∈ [0, 1]; ``warmup`` is a fraction of
    the run."""
    progress = min(max(progress, 0.0), 1.0)
    if schedule == "onecycle":
        # Smith & Topin (2017): linear rise over the first quarter, then linear decay to zero.
        peak = 0.25
        return progress / peak if progress < peak else (1.0 - progress) / (1.0 - peak)
    if warmup > 0 and progress < warmup:
        return progress / warmup
    if schedule == "cosine":
        span = (progress - warmup) / max(1e-12, 1.0 - warmup)
        return 0.5 * (1.0 + math.cos(math.pi * span))
    if schedule == "step":
        return 0.1 ** (epoch // step_epochs)
    return 1.0  # constant, and plateau (whose divisions PlateauDivider applies on top)


@dataclass
class PlateauDivider:
    """Divide the learning rate by 10 when the monitored error has not improved for ``patience``
    epochs."""

    patience: int = 2
    best: float = math.inf
    bad_epochs: int = 0
    factor: float = 1.0

    def update(self, error: float) -> float:
        if error < self.best - 1e-4:
            self.best, self.bad_epochs = error, 0
        else:
            self.bad_epochs += 1
            if self.bad_epochs > self.patience:
                self.factor /= 10
                self.bad_epochs = 0
        return self.factor


def progressive_side(start: int, full: int, progress: float, *, end: float = 0.75,
                     most: int = 8) -> int:
    """The image side a progressively resized run trains at, ``progress`` ∈ [0, 1] into it.

    It is ``start`` at the beginning and grows linearly to ``full`` at ``end`` of the run (75 %:
    the last quarter trains at the side the model is evaluated at), rounded down to a grid so that
    at most ``most`` distinct sides occur, the first and the full one included: each new side is a
    new input shape, which under ``torch.compile`` may mean a recompilation. The grid's spacing is
    a multiple of 4 (4 when the sides are close), so every side between the first and the full one
    is a multiple of 4.
    """
    if start >= full or progress >= end:
        return full
    between = most - 2  # the sides strictly between start and full
    spacing = 4 * max(1, math.ceil((full - start) / (4 * max(1, between))))
    target = start + (full - start) * max(progress, 0.0) / end
    return min(full, max(start, int(target // spacing) * spacing))
