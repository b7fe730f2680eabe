"""What each stage computes on one image: intermediate outputs by forward hooks, drawn stage by
stage.

``activations(model, x)`` is in the spirit of timm's ``forward_intermediates``: one ordinary forward
pass, with a hook on each requested module that keeps a copy of its output (a copy, because the next
in-place ReLU would overwrite it). The model is not changed and the hooks are removed even if the
forward fails.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from cnnzoo.visualize.drawing import (
    MAGNITUDE_CMAP,
    colourise,
    grid_figure,
    hide_unused,
    mosaic,
    show_image,
)
from cnnzoo.visualize.layers import resolve_layers

MAX_MAPS = 32  # feature maps drawn per stage


@torch.no_grad()
def activations(
    model: nn.Module, x: torch.Tensor, layers: list[str] | None = None
) -> dict[str, torch.Tensor]:
    """The outputs of ``layers`` (stage names or module paths; default: every stage of
    ``default_stages``) for input ``x``, by name, in the order given (by default in the order the
    forward pass ran them).

    A module that runs more than once in one pass (one ``nn.ReLU`` reused after every layer) has no
    one output: by default it is left out, and asked for by name it is a ``ConfigError`` naming it.
    """
    paths = resolve_layers(model, layers)
    modules = dict(model.named_modules())
    captured: dict[str, torch.Tensor] = {}
    calls: dict[str, int] = {}
    handles = []
    for name, path in paths.items():
        def keep(module, inputs, output, name=name):
            captured[name] = output.detach().clone()
            calls[name] = calls.get(name, 0) + 1
        handles.append(modules[path].register_forward_hook(keep))
    try:
        model(x)
    finally:
        for handle in handles:
            handle.remove()
    reused = [name for name, count in calls.items() if count > 1]
    if layers is not None and reused:
        raise_reused(model, paths[reused[0]], calls[reused[0]])
    order = list(captured) if layers is None else list(paths)
    return {name: captured[name] for name in order if name in captured and name not in reused}


def raise_reused(model: nn.Module, path: str, count: int):
    """One line naming a module that ran ``count`` times in one pass, and what to change."""
    from cnnzoo.errors import ConfigError

    kind = type(dict(model.named_modules())[path]).__name__
    raise ConfigError(f"{model.cfg.name}'s module {path!r} ({kind}) runs {count} times in one "
                      "forward pass, so its output is not one map: give each use its own "
                      f"nn.{kind}() in the model, or choose another layer")


def stage_summary(outputs: dict[str, torch.Tensor]) -> list[dict]:
    """Per stage: shape, and how many of its maps are zero everywhere (dead under ReLU for this
    image)."""
    rows = []
    for name, value in outputs.items():
        sample = value[0]
        flat = sample.flatten(1) if sample.dim() == 3 else sample[:, None]
        rows.append({"layer": name, "shape": list(sample.shape),
                     "mean": round(float(sample.mean()), 6),
                     "max": round(float(sample.max()), 6),
                     "zero_maps": int((flat.abs().amax(1) == 0).sum())})
    return rows


def _named(stage: str, paths: dict[str, str]) -> str:
    """``C1 · features.0``: a stage by its name and its module, once where they are the same."""
    return stage if paths[stage] == stage else f"{stage} · {paths[stage]}"


def draw_maps(image: np.ndarray, outputs: dict[str, torch.Tensor], *, paths: dict[str, str],
              title: str, max_maps: int = MAX_MAPS, columns: int = 3):
    """The input as the model sees it, then one mosaic per spatial stage (its first ``max_maps``
    maps, each scaled on its own); stages without a spatial map (fully connected ones) are drawn as
    a strip."""
    panels = len(outputs) + 1
    rows = math.ceil(panels / columns)
    figure, axes = grid_figure(rows, columns, cell=2.6, extra_height=0.6)
    axes = list(np.ravel(axes))
    show_image(axes[0], image, title="input as the model sees it\n(normalised, shown in [0, 1])")
    for ax, (name, value) in zip(axes[1:], outputs.items(), strict=False):
        sample = value[0].float().cpu()
        if sample.dim() == 1:  # a fully connected layer: one value per unit, as a strip
            units = sample.numpy()
            side = math.ceil(math.sqrt(len(units)))
            padded = np.full(side * side, np.nan)
            padded[: len(units)] = units
            show_image(ax, np.ma.masked_invalid(padded.reshape(side, side)), cmap=MAGNITUDE_CMAP,
                       title=f"{_named(name, paths)}\n{len(units)} units, row by row")
            continue
        shown = sample[:max_maps].numpy()
        sheet = mosaic(colourise(shown, MAGNITUDE_CMAP), columns=math.ceil(math.sqrt(len(shown))))
        more = f", first {len(shown)}" if len(sample) > len(shown) else ""
        shape = "×".join(map(str, sample.shape))
        show_image(ax, sheet, title=f"{_named(name, paths)}\n{shape}{more}")
    hide_unused(axes, panels)
    figure.suptitle(f"{title}\neach map scaled on its own (viridis: low → high)", fontsize=11)
    return figure
