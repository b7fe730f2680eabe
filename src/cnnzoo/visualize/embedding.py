"""The test set in two dimensions: the penultimate-layer features of each image projected onto their
first two principal components, beside the same projection of the raw pixels, coloured by class.

Principal components (not t-SNE or UMAP) because the projection is linear and deterministic:
distances and directions in the picture are those of the features, and the share of variance each
axis keeps is stated on it. How well the classes separate is also measured, not only drawn: the
accuracy of the nearest class centroid in the 2-D projection (a trained network's features should
beat its input's pixels by far).
"""

from __future__ import annotations

import torch

from cnnzoo.visualize.drawing import CLASS_CMAP


def pca_2d(vectors: torch.Tensor) -> dict:
    """Rows of ``vectors`` (N, D) centred and projected onto their first two principal axes:
    ``points`` (N, 2), ``components`` (2, D), ``explained`` (the share of the total variance each
    axis keeps)."""
    centred = vectors.double() - vectors.double().mean(0)
    _, singular, right = torch.linalg.svd(centred, full_matrices=False)
    variance = singular**2
    total = variance.sum()
    components = right[:2]
    explained = (variance[:2] / total if total > 0 else torch.zeros(2)).tolist()
    return {"points": (centred @ components.T).float(), "components": components.float(),
            "explained": explained}


def centroid_accuracy(points: torch.Tensor, labels: torch.Tensor) -> float:
    """The share of points whose nearest class centroid (in ``points``' own space) is their own
    class's."""
    classes = labels.unique()
    centroids = torch.stack([points[labels == c].mean(0) for c in classes])
    nearest = torch.cdist(points.double(), centroids.double()).argmin(1)
    return float((classes[nearest] == labels).float().mean())


def draw_embedding(panels: dict[str, dict], labels: torch.Tensor, *, classes: list[str],
                   title: str):
    """One scatter per space (``panels``: name → ``pca_2d`` result plus ``accuracy``), one colour
    per class, the legend beside the last panel."""
    from matplotlib import colormaps
    from matplotlib.lines import Line2D

    from cnnzoo.figures import new_figure

    cmap = colormaps[CLASS_CMAP if len(classes) <= 10 else "tab20"]
    figure, _ = new_figure(1, width=5.2 * len(panels) + 1.8, height=5.0)
    figure.clear()
    axes = figure.subplots(1, len(panels), squeeze=False)[0]
    # no class drawn over all others
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(0))
    colours = cmap(labels[order].numpy() % cmap.N)
    for ax, (space, result) in zip(axes, panels.items(), strict=True):
        points = result["points"][order].numpy()
        ax.scatter(points[:, 0], points[:, 1], s=3, alpha=0.6, c=colours, rasterized=True,
                   linewidths=0)
        first, second = result["explained"]
        ax.set_xlabel(f"principal component 1 ({first:.0%} of variance)", fontsize=8)
        ax.set_ylabel(f"principal component 2 ({second:.0%} of variance)", fontsize=8)
        ax.set_title(f"{space}\nnearest class centroid in 2-D: {result['accuracy']:.1%} correct",
                     fontsize=9)
        ax.tick_params(labelsize=7)
    handles = [Line2D([], [], marker="o", linestyle="", color=cmap(c % cmap.N), label=name)
               for c, name in enumerate(classes)]
    axes[-1].legend(handles=handles, loc="center left", bbox_to_anchor=(1.02, 0.5), fontsize=8,
                    frameon=False, title="class", title_fontsize=8)
    figure.suptitle(title, fontsize=10)
    return figure

