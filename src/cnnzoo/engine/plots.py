"""The run's figures: loss/accuracy curves and the confusion matrix, as PNG bytes.

Drawn on ``cnnzoo.figures.new_figure`` (a Figure on the Agg canvas): no pyplot, no backend switch,
so training from a notebook leaves its plotting untouched. They are rendered in memory and returned,
not saved: the run directory writes them like every other file, whole to a temporary file and
renamed, so a crash while drawing never leaves half a PNG.
"""

from __future__ import annotations

import io

import torch

from cnnzoo.figures import integer_ticks, new_figure
from cnnzoo.rundir import evaluated

MAX_MARKED_POINTS = 40  # more epochs than this are drawn as lines without markers


def _png(figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110)
    return buffer.getvalue()


def curves_png(history: list[dict], title: str, label_smoothing: float = 0.0) -> bytes:
    """Train and test loss and accuracy by epoch (test at the epochs that were evaluated)."""
    epochs = [row["epoch"] for row in history]
    tested = evaluated(history)
    test_epochs = [row["epoch"] for row in tested]
    figure, (loss_ax, acc_ax) = new_figure(2, width=5.0, height=4.0)
    train_style, test_style = _style("o-", len(epochs)), _style("s-", len(tested))
    loss_ax.plot(epochs, [row["train_loss"] for row in history], train_style, label="train")
    loss_ax.plot(test_epochs, [row["test_loss"] for row in tested], test_style, label="test")
    loss_title = "loss" if not label_smoothing else (f"loss (label smoothing {label_smoothing:g} "
                                                     "raises the train loss)")
    loss_ax.set(xlabel="epoch", ylabel="cross-entropy", title=loss_title)
    acc_ax.plot(epochs, [row["train_top1"] for row in history], train_style, label="train")
    acc_ax.plot(test_epochs, [row["test_top1"] for row in tested], test_style, label="test")
    acc_ax.set(xlabel="epoch", ylabel="top-1 accuracy", title="accuracy")
    for ax in (loss_ax, acc_ax):
        ax.grid(alpha=0.3)
        ax.legend(loc="best")
        integer_ticks(ax)
    figure.suptitle(title)
    return _png(figure)


def _style(marked: str, points: int) -> str:
    """A line with markers, or without where they would crowd into a thick band (a long run)."""
    return marked if points <= MAX_MARKED_POINTS else "-"


def confusion_png(confusion: torch.Tensor, classes: list[str], title: str) -> bytes:
    counts = confusion.float()
    rates = counts / counts.sum(1, keepdim=True).clamp_min(1)
    size = max(5.0, 0.5 * len(classes) + 2)
    figure, (ax,) = new_figure(1, width=size, height=size)
    image = ax.imshow(rates.numpy(), cmap="Blues", vmin=0, vmax=1)
    figure.colorbar(image, ax=ax, shrink=0.8, label="fraction of the true class (row-normalised)")
    if len(classes) <= 20:
        ticks = range(len(classes))
        ax.set_xticks(ticks, classes, rotation=45, ha="right")
        ax.set_yticks(ticks, classes)
        for i in ticks:
            for j in ticks:
                if counts[i, j] > 0:
                    ax.text(j, i, f"{rates[i, j]:.2f}".lstrip("0"), ha="center", va="center",
                            fontsize=7, color="white" if rates[i, j] > 0.5 else "black")
    ax.set(xlabel="predicted class", ylabel="true class", title=title)
    return _png(figure)
