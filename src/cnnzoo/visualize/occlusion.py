"""Which part of an image a class depends on, by occlusion (Zeiler & Fergus, ECCV 2014, Figure 7): a
grey square (the data set's mean: zero after normalisation) slid over the image, and at each place
how far the probability of the class falls. It needs no gradient, so it checks Grad-CAM
(``visualize.cam``), which does; their agreement is reported as a Spearman rank correlation over the
pixels.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from cnnzoo.visualize.drawing import HEAT_CMAP, show_image


@torch.no_grad()
def probability_drop(
    model: nn.Module, x: torch.Tensor, target: int, *, patch: int, stride: int
) -> dict:
    """For one image x (1, C, H, W): {"map": (H, W) the class probability's mean drop over the
    squares that cover each pixel, "probability": the class probability unoccluded, "squares": how
    many were tried}.
    """
    _, _, h, w = x.shape
    base = model(x).softmax(-1)[0, target]
    rows = list(range(0, max(h - patch, 0) + 1, stride))
    columns = list(range(0, max(w - patch, 0) + 1, stride))
    starts = [(r, c) for r in rows for c in columns]
    batch = x.repeat(len(starts), 1, 1, 1)
    for index, (r, c) in enumerate(starts):
        batch[index, :, r : r + patch, c : c + patch] = 0
    drops = torch.cat([base - model(chunk).softmax(-1)[:, target] for chunk in batch.split(256)])
    total, count = torch.zeros(h, w), torch.zeros(h, w)
    for drop, (r, c) in zip(drops, starts, strict=True):
        total[r : r + patch, c : c + patch] += drop
        count[r : r + patch, c : c + patch] += 1
    return {"map": total / count.clamp_min(1), "probability": float(base), "squares": len(starts)}


def rank_correlation(a: torch.Tensor, b: torch.Tensor) -> float:
    """Spearman's ρ between two maps of the same shape (ties get their mean rank)."""

    def ranks(values: torch.Tensor) -> torch.Tensor:
        flat = values.flatten().double()
        order = flat.argsort()
        ranked = torch.empty_like(flat)
        ranked[order] = torch.arange(len(flat), dtype=torch.float64)
        unique, inverse = torch.unique(flat, return_inverse=True)
        sums = torch.zeros(len(unique), dtype=torch.float64).index_add_(0, inverse, ranked)
        counts = torch.zeros(len(unique), dtype=torch.float64).index_add_(
            0, inverse, torch.ones_like(flat)
        )
        return (sums / counts)[inverse]

    ra, rb = ranks(a), ranks(b)
    if ra.std() == 0 or rb.std() == 0:
        return 0.0
    return float(torch.corrcoef(torch.stack([ra, rb]))[0, 1])


def draw_occlusion(
    image: np.ndarray, drop: dict, cam: dict, *, class_name: str, rho: float, patch: int, title: str
):
    """The image, the occlusion map (how far the class probability falls) and Grad-CAM side by side.
    """
    from cnnzoo.figures import new_figure

    figure, axes = new_figure(3, width=3.2, height=3.9)
    show_image(axes[0], image, title=f"input\np({class_name}) = {drop['probability']:.2f}")
    limit = max(float(drop["map"].abs().max()), 1e-6)
    scale = axes[1].imshow(drop["map"].numpy(), cmap="RdBu_r", vmin=-limit, vmax=limit)
    show_image(
        axes[1],
        drop["map"].numpy(),
        cmap="RdBu_r",
        vmin=-limit,
        vmax=limit,
        title=f"occlusion: fall of p({class_name})\nunder a grey {patch}×{patch} square",
    )
    figure.colorbar(scale, ax=axes[1], shrink=0.7, label="probability drop (red: falls)")
    show_image(axes[2], image)
    axes[2].imshow(
        cam["cam"].numpy(), cmap=HEAT_CMAP, alpha=0.55, vmin=0, vmax=1, interpolation="bilinear"
    )
    axes[2].set_title(
        f"Grad-CAM for {class_name!r} at {cam['layer']}\nrank correlation with occlusion ρ = "
        f"{rho:.2f}",
        fontsize=9,
    )
    figure.suptitle(title, fontsize=11)
    return figure
