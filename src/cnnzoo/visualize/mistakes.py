"""Where a trained network is wrong and sure of it: the test images it misclassifies with the
highest probability on the wrong class, and which pairs of classes it mixes up most.

Confident mistakes are the ones worth looking at: a low-confidence mistake is a coin toss, a 99% one
is either a label error in the data set or something the network has really got wrong (on
Fashion-MNIST mostly shirts called T-shirts or pullovers, and the reverse).
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import torch

from cnnzoo.engine.run import Run
from cnnzoo.task_progress import Advance
from cnnzoo.visualize.drawing import grid_figure, hide_unused, show_image
from cnnzoo.visualize.source import model_input


@torch.no_grad()
def probabilities(run: Run, images: torch.Tensor, batch_size: int = 500,
                  advance: Advance | None = None) -> torch.Tensor:
    """Class probabilities (N, classes) for uint8 images (N, C, h, w), as the model sees them at
    test time; each batch done is reported to ``advance`` (a large model takes minutes on a CPU)."""
    device = next(run.model.parameters()).device
    parts = []
    for chunk in images.split(batch_size):
        parts.append(run.model(model_input(run, chunk.to(device))).float().softmax(-1).cpu())
        if advance is not None:
            advance(len(chunk))
    return torch.cat(parts)


def confident_mistakes(probs: torch.Tensor, labels: torch.Tensor, count: int) -> list[dict]:
    """The ``count`` misclassified images with the highest predicted probability, most confident
    first: each a dict of index, true and predicted class index, and the probability given to the
    prediction."""
    confidence, predicted = probs.max(1)
    wrong = (predicted != labels).nonzero().flatten()
    order = wrong[confidence[wrong].argsort(descending=True)][:count]
    return [{"index": int(i), "true": int(labels[i]), "predicted": int(predicted[i]),
             "probability": float(confidence[i])} for i in order]


def confused_pairs(
    probs: torch.Tensor, labels: torch.Tensor, top: int = 5
) -> list[tuple[int, int, int]]:
    """The ``top`` most frequent (true, predicted, count) mistakes."""
    predicted = probs.argmax(1)
    wrong = predicted != labels
    pairs = Counter(zip(labels[wrong].tolist(), predicted[wrong].tolist(), strict=True))
    return [(t, p, n) for (t, p), n in pairs.most_common(top)]


def draw_mistakes(images: list[np.ndarray], rows: list[dict], *, classes: list[str], title: str,
                  columns: int = 8):
    """A grid of the mistakes, each titled with its true class and (in red) the prediction and its
    probability."""
    count = len(rows)
    grid_rows = max(1, -(-count // columns))
    figure, axes = grid_figure(grid_rows, columns, cell=1.45, extra_height=0.9)
    flat = list(np.ravel(axes))
    for ax, image, row in zip(flat, images, rows, strict=False):
        show_image(ax, image)
        ax.set_title(f"{classes[row['true']]}\n", fontsize=7, color="black")
        ax.text(0.5, 1.02, f"→ {classes[row['predicted']]} {_percent(row['probability'])}",
                transform=ax.transAxes,
                ha="center", va="bottom", fontsize=7, color="#c0392b")
    hide_unused(flat, count)
    if count == 0:
        flat[0].set_visible(True)
        flat[0].axis("off")
        flat[0].text(0.5, 0.5, "no mistakes", ha="center", va="center", fontsize=10)
    figure.suptitle(title, fontsize=10)
    return figure


def _percent(probability: float) -> str:
    """99.3%, and >99.9% rather than a rounded 100% (the network is never quite certain)."""
    return ">99.9%" if probability > 0.999 else f"{probability:.1%}"
