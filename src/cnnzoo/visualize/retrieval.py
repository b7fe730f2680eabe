"""Which training images a network finds alike: nearest neighbours in its penultimate-layer features
against nearest neighbours in raw pixels, and retrieval precision@k for both.

AlexNet's paper (Krizhevsky, Sutskever & Hinton, 2012, section 6.1, Figure 4) shows that images
close in the last hidden layer's 4096-d activations are of the same class though far apart in
pixels; ``precision_at_k`` measures it: the share of a query's k nearest training images that have
its label.

Penultimate features are the input of the last ``nn.Linear`` (after the head's pooling, flatten,
ReLU and dropout, which is the identity in eval mode), taken by a forward hook; NiN, which has no
linear layer, gets its last feature map globally averaged. Features of the training set are cached
in ``RUN/show/features.safetensors``, keyed by the checkpoint's size and modification time, and
recomputed when the checkpoint changes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from cnnzoo.engine.run import Run
from cnnzoo.task_progress import Advance
from cnnzoo.visualize.drawing import show_image
from cnnzoo.visualize.layers import require_hooks
from cnnzoo.visualize.source import model_input

CACHE_NAME = "features.safetensors"


def _last_linear(model: nn.Module) -> nn.Module | None:
    linears = [
        m
        for name, m in model.named_modules()
        if isinstance(m, nn.Linear) and not name.startswith("aux")
    ]
    return linears[-1] if linears else None


@torch.no_grad()
def penultimate(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """(N, D) features just before the last linear layer, for a batch of model inputs."""
    require_hooks(model, "its penultimate features")
    last = _last_linear(model)
    if last is None:
        return model.forward_features(x).mean(dim=(2, 3))
    captured = {}
    handle = last.register_forward_hook(lambda module, inputs,
                                        output: captured.update(x=inputs[0].detach()))
    try:
        model(x)
    finally:
        handle.remove()
    return captured["x"].flatten(1).float()


@torch.no_grad()
def dataset_features(run: Run, images: torch.Tensor, batch_size: int = 1000,
                     advance: Advance | None = None) -> torch.Tensor:
    """Penultimate features of uint8 images (N, C, h, w), a batch at a time (each reported to
    ``advance``: 60,000 training images take a minute or more on a CPU)."""
    device = next(run.model.parameters()).device
    features = []
    for chunk in images.split(batch_size):
        features.append(penultimate(run.model, model_input(run, chunk.to(device))).cpu())
        if advance is not None:
            advance(len(chunk))
    return torch.cat(features)


def checkpoint_key(path: Path) -> str:
    stat = Path(path).stat()
    return f"{stat.st_size}:{stat.st_mtime_ns}"


def cached_features(run: Run, images: torch.Tensor, cache: Path,
                    advance: Advance | None = None) -> tuple[torch.Tensor, bool]:
    """The training set's features from ``cache`` when it belongs to this checkpoint, else computed
    and saved. Returns (features, whether they came from the cache)."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    key = checkpoint_key(run.checkpoint) if run.checkpoint else "untrained"
    if cache.is_file():
        with safe_open(str(cache), framework="pt") as stored:
            meta = stored.metadata() or {}
            if meta.get("checkpoint") == key and meta.get("count") == str(len(images)):
                return stored.get_tensor("features"), True
    features = dataset_features(run, images, advance=advance)
    cache.parent.mkdir(parents=True, exist_ok=True)
    temporary = cache.with_suffix(".tmp")
    save_file({"features": features.contiguous()}, str(temporary),
              metadata={"checkpoint": key, "count": str(len(images))})
    temporary.replace(cache)
    return features, False


def nearest(queries: torch.Tensor, bank: torch.Tensor, k: int, chunk: int = 512,
            advance: Advance | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Euclidean k nearest rows of ``bank`` for each query row: (distances, indices), both (Q, k),
    sorted."""
    bank = bank.float()
    bank_norms = (bank * bank).sum(1)
    distances, indices = [], []
    for part in queries.float().split(chunk):
        squared = (part * part).sum(1, keepdim=True) - 2 * part @ bank.T + bank_norms
        d, i = squared.clamp_min(0).topk(k, dim=1, largest=False)
        distances.append(d.sqrt())
        indices.append(i)
        if advance is not None:
            advance(len(part))
    return torch.cat(distances), torch.cat(indices)


def precision_at_k(query_labels: torch.Tensor, neighbour_labels: torch.Tensor) -> float:
    """Share of the neighbours (Q, k) whose label is the query's."""
    return float((neighbour_labels == query_labels[:, None]).float().mean())


def pixels(images: torch.Tensor) -> torch.Tensor:
    """Raw pixels as vectors in [0, 1]."""
    return images.flatten(1).float() / 255


def draw_neighbours(query: np.ndarray, rows: list[dict], *, title: str):
    """The query, then per space a row of its k nearest training images with distance and label."""
    from cnnzoo.figures import new_figure

    k = len(rows[0]["images"])
    figure, _ = new_figure(1, width=1.25 * (k + 1) + 0.4, height=1.65 * len(rows) + 0.8)
    figure.clear()
    axes = figure.subplots(len(rows), k + 1, squeeze=False)
    for r, row in enumerate(rows):
        show_image(axes[r][0], query, title="query", fontsize=8)
        axes[r][0].set_ylabel(row["space"].replace(" (", "\n("), fontsize=8)
        for c in range(k):
            good = row["labels"][c] == row["query_label"]
            show_image(axes[r][c + 1], row["images"][c], title=f"{row['labels'][c]}\nd = "
                                                               f"{row['distances'][c]:.2f}",
                       fontsize=7)
            axes[r][c + 1].set_title(axes[r][c + 1].get_title(), fontsize=7,
                                     color="black" if good else "#c0392b")
    figure.suptitle(title, fontsize=10)
    return figure
