"""How a run learned, drawn from its snapshots (``engine.snapshots``): the first layer's kernels
and a probe image's feature maps epoch by epoch, under the accuracy curve, as one grid (a column per
epoch) and as an animated GIF (a frame per epoch).

Each kernel and each map is scaled on its own, as ``show filters`` and ``show maps`` draw them, so a
column shows the pattern a kernel has at that epoch; how far the weights moved is a number,
``kernel_change``: ‖W_e − W_0‖ / ‖W_0‖ against the first snapshot.
"""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
import torch

from cnnzoo.engine.snapshots import Snapshot
from cnnzoo.figures import integer_ticks, new_figure
from cnnzoo.files import atomic_write_bytes
from cnnzoo.rundir import evaluated
from cnnzoo.visualize.drawing import MAGNITUDE_CMAP, colourise, mosaic, show_image
from cnnzoo.visualize.filters import kernel_tiles

MAX_COLUMNS = 8  # epochs drawn in the grid (the GIF has them all)
FRAME_MS = 700  # how long the GIF shows each epoch


def spread(epochs: list[int], most: int = MAX_COLUMNS) -> list[int]:
    """Up to ``most`` of ``epochs``, evenly spread, the first and the last always among them."""
    if len(epochs) <= most:
        return list(epochs)
    picks = {round(i * (len(epochs) - 1) / (most - 1)) for i in range(most)}
    return [epochs[i] for i in sorted(picks)]


def kernel_change(snapshots: list[Snapshot]) -> list[float]:
    """‖W_e − W_0‖ / ‖W_0‖ of the first layer's kernels, for each snapshot against the first."""
    first = snapshots[0].kernels
    norm = float(first.norm()) or 1.0
    return [float((s.kernels - first).norm()) / norm for s in snapshots]


def _kernel_sheet(snapshot: Snapshot) -> np.ndarray:
    tiles, columns, _ = kernel_tiles(snapshot.kernels)
    return mosaic(tiles, columns=columns, gap=max(1, tiles.shape[1] // 5))


def _maps_sheet(maps: torch.Tensor, image: int) -> np.ndarray:
    shown = maps[image].numpy()
    return mosaic(colourise(shown, MAGNITUDE_CMAP), columns=math.ceil(math.sqrt(len(shown))))


def probe_picture(snapshot: Snapshot, image: int) -> np.ndarray:
    """The probe image as stored (uint8): (H, W) grey or (H, W, 3)."""
    picture = snapshot.images[image]
    return picture[0].numpy() if picture.shape[0] == 1 else picture.permute(1, 2, 0).numpy()


def _curve(ax, history: list[dict], marked: list[int], now: int | None = None) -> None:
    epochs = [row["epoch"] for row in history]
    ax.plot(epochs, [row["train_top1"] for row in history], "o-", ms=3, label="train")
    tested = evaluated(history)
    ax.plot([row["epoch"] for row in tested], [row["test_top1"] for row in tested], "s-", ms=3,
            label="test")
    for epoch in marked:
        ax.axvline(epoch, color="grey", lw=0.6, ls=":")
    if now is not None:
        ax.axvline(now, color="#c0392b", lw=1.5)
    ax.set(xlabel="epoch", ylabel="top-1 accuracy", xlim=(-0.3, max([*epochs, *marked, 1]) + 0.3))
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=7)
    integer_ticks(ax)


def _label(snapshot: Snapshot) -> str:
    accuracy = "" if snapshot.test_top1 is None else f"\ntest {snapshot.test_top1:.1%}"
    return f"epoch {snapshot.epoch}" + (" (init)" if snapshot.epoch == 0 else "") + accuracy


def draw_timeline(
    snapshots: list[Snapshot], history: list[dict], *, image: int, classes: list[str], title: str
):
    """A column per snapshot epoch (at most ``MAX_COLUMNS``, spread): the kernels, then the probe
    image's maps at each kept stage; the accuracy curve above, the probe image beside it."""
    chosen = [s for s in snapshots if s.epoch in spread([s.epoch for s in snapshots])]
    stages = list(chosen[0].maps)
    columns = max(len(chosen), 3)
    figure, _ = new_figure(1, width=max(1.7 * columns, 6.0), height=2.2 + 1.75 * (1 + len(stages)))
    figure.clear()
    grid = figure.add_gridspec(
        2 + len(stages), columns, height_ratios=[1.5] + [1] * (1 + len(stages))
    )
    probe = figure.add_subplot(grid[0, 0])
    label = classes[int(chosen[0].labels[image])] if classes else ""
    show_image(probe, probe_picture(chosen[0], image), title=f"probe image {image}\n{label}")
    _curve(figure.add_subplot(grid[0, 1:]), history, [s.epoch for s in chosen])
    for column, snapshot in enumerate(chosen):
        ax = figure.add_subplot(grid[1, column])
        show_image(ax, _kernel_sheet(snapshot), title=_label(snapshot), fontsize=8)
        if column == 0:
            ax.set_ylabel(f"{snapshot.layer}\nkernels", fontsize=8)
        for row, stage in enumerate(stages, start=2):
            ax = figure.add_subplot(grid[row, column])
            show_image(ax, _maps_sheet(snapshot.maps[stage], image))
            if column == 0:
                ax.set_ylabel(f"{stage} maps", fontsize=8)
    shown = (
        f"{len(chosen)} of {len(snapshots)} snapshots"
        if len(chosen) < len(snapshots)
        else f"{len(snapshots)} snapshots"
    )
    figure.suptitle(
        f"{title}\nhow it learned: {shown}\nkernels red + blue −, maps viridis; each on its own "
        "scale",
        fontsize=9,
    )
    return figure


def _frame(snapshot: Snapshot, history: list[dict], marked: list[int], *, image: int) -> bytes:
    """One epoch: its kernels and maps beside the curve with the epoch marked, as PNG bytes."""
    stages = list(snapshot.maps)
    figure, axes = new_figure(3 + len(stages), width=2.4, height=2.6)
    show_image(axes[0], probe_picture(snapshot, image), title="probe image")
    show_image(axes[1], _kernel_sheet(snapshot), title=f"{snapshot.layer} kernels")
    for ax, stage in zip(axes[2:], stages, strict=False):
        show_image(ax, _maps_sheet(snapshot.maps[stage], image), title=f"{stage} maps")
    _curve(axes[-1], history, marked, now=snapshot.epoch)
    figure.suptitle(_label(snapshot).replace("\n", ", "), fontsize=10)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=80)
    return buffer.getvalue()


def write_gif(snapshots: list[Snapshot], history: list[dict], path: Path, *, image: int) -> Path:
    """Every snapshot as a frame of an animated GIF at ``path`` (written whole, then renamed)."""
    from PIL import Image

    marked = [s.epoch for s in snapshots]
    frames = [
        Image.open(io.BytesIO(_frame(s, history, marked, image=image))).convert("RGB")
        for s in snapshots
    ]
    buffer = io.BytesIO()
    frames[0].save(
        buffer, format="GIF", save_all=True, append_images=frames[1:], duration=FRAME_MS, loop=0
    )
    atomic_write_bytes(path, buffer.getvalue())
    return Path(path)
