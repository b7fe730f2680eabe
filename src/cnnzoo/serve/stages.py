"""Which leaf modules make up a stage: the layer table names a layer "C1 / features.0" by it, and a
clicked position is explained through the same modules."""

from __future__ import annotations

from torch import nn

from cnnzoo.visualize.layers import default_stages, resolve_layers


def stage_leaves(model: nn.Module, stage: str) -> tuple[str, list[tuple[str, nn.Module]]]:
    """The module path ending ``stage`` and the leaf modules from the previous stage's end to it, in
    registration order (forward order for every cnnzoo model with plain stages)."""
    stages = default_stages(model)
    if stage not in stages:
        path = resolve_layers(model, [stage])[stage]  # a module path: explained on its own
        return path, [(path, dict(model.named_modules())[path])]
    leaves = [(p, m) for p, m in model.named_modules() if p and not any(True for _ in m.children())]
    ends = {}
    for name, end in stages.items():
        hits = [i for i, (p, _) in enumerate(leaves) if p == end or p.startswith(end + ".")]
        ends[name] = hits[-1] + 1 if hits else 0
    names = list(stages)
    index = names.index(stage)
    start = ends[names[index - 1]] if index else 0
    return stages[stage], leaves[start : ends[stage]]


def stage_of(model: nn.Module) -> dict[str, str]:
    """Module path → the stage it belongs to (C1 for features.0)."""
    return {
        path: stage for stage in default_stages(model) for path, _ in stage_leaves(model, stage)[1]
    }
