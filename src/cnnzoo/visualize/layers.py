"""Which layers the views look at, by name: the stages of a network in order (LeNet's C1…F6 by the
paper's names, block outputs for branched nets, conv and pool outputs otherwise) and its
convolutions.

A stage is named by what it is (``conv3``, ``pool2``, ``inception4a``, ``layer2.1``) and stands for
the module whose output ends it: a convolution's stage runs through its BatchNorm, ReLU and LRN up
to the next convolution or pool. Any module path (``features.3``) is accepted too.
"""

from __future__ import annotations

from torch import nn

from cnnzoo.errors import ConfigError
from cnnzoo.layers.lenet1998 import PartialConv2d

POOLS = (nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)
SKIPPED = (nn.Dropout, nn.Flatten, nn.Identity)
LENET_PAPER_NAMES = {"conv1": "C1", "pool1": "S2", "conv2": "C3", "pool2": "S4"}
HEAD_NAMES = ("classifier", "fc", "pool", "output")


def _is_conv(module: nn.Module) -> bool:
    """A convolution, or a container that starts with one (GoogLeNet's ConvReLU, NiN's MLPConv)."""
    if isinstance(module, (nn.Conv2d, PartialConv2d)):
        return True
    first = next(iter(module.children()), None)
    return isinstance(module, nn.Sequential) and isinstance(first, nn.Conv2d)


def _sequential_stages(sequence: nn.Sequential, prefix: str) -> dict[str, str]:
    """Stage name → module path for a plain sequence: each conv (through its norm/activation), each
    pool, and each block by its type (``denseblock2``, ``transition1``)."""
    stages: dict[str, str] = {}
    counts: dict[str, int] = {}
    current = None

    def start(kind: str, path: str) -> str:
        counts[kind] = counts.get(kind, 0) + 1
        stages[f"{kind}{counts[kind]}"] = path
        return f"{kind}{counts[kind]}"

    for name, module in sequence.named_children():
        path = f"{prefix}.{name}" if prefix else name
        if isinstance(module, SKIPPED):
            continue
        if _is_conv(module):
            current = start("conv", path)
        elif isinstance(module, nn.Linear):
            current = start("fc", path)
        elif isinstance(module, POOLS):
            current = start("pool", path)
        elif current is not None and not any(True for _ in module.children()):
            stages[current] = path  # BatchNorm, ReLU, LRN: the stage before ends later
        else:
            current = start(type(module).__name__.lower(), path)
    return stages


def _lenet_stages(model: nn.Module) -> dict[str, str]:
    """The modern LeNet-5 under the paper's names: C1, S2, C3, S4 in ``features``; C5 and F6 are its
    hidden fully connected layers (C5 is a 5×5 convolution over a 5×5 map in the paper, the same
    thing)."""
    stages = {LENET_PAPER_NAMES[k]: v for k, v in _sequential_stages(model.features,
                                                                     "features").items()}
    relus = [f"classifier.{name}" for name,
             m in model.classifier.named_children() if isinstance(m, nn.ReLU)]
    return {**stages, "C5": relus[0], "F6": relus[1]}


def require_hooks(model: nn.Module, view: str) -> None:
    """A ``ConfigError`` where the model's layers cannot be hooked (an imported TorchScript or .pt2
    program): ``view`` needs them, the views that only call the model do not."""
    reason = getattr(model, "hooks_unavailable", "")
    if reason:
        raise ConfigError(f"{reason}, so {view} cannot be drawn for it (predict, eval, errors and "
                          "the saliency of `show cam` can); import its weights with --model or "
                          "--code to see its layers")


def default_stages(model: nn.Module) -> dict[str, str]:
    """Stage name → module path, in forward order, for any cnnzoo model (see the module docstring)
    and any module tree (a plain ``nn.Sequential`` as one sequence, else its children)."""
    require_hooks(model, "a view of its layers")
    name = getattr(getattr(model, "cfg", None), "name", "")
    if name == "lenet5_1998":
        return {key.upper(): key for key in ("c1", "s2", "c3", "s4", "c5", "f6")}
    if name in ("lenet5", "lenet5_bn"):
        return _lenet_stages(model)
    if isinstance(getattr(model, "features", None), nn.Sequential):
        return _sequential_stages(model.features, "features")
    if isinstance(model, nn.Sequential):  # d2l's way of writing a network
        return _sequential_stages(model, "")
    stages: dict[str, str] = {}
    for child_name, child in model.named_children():
        if child_name.startswith("aux") or child_name in HEAD_NAMES:
            continue
        blocks = list(child.named_children()) if isinstance(child, nn.Sequential) else []
        if child_name.startswith("layer") and blocks:  # a residual stage: every block's output
            stages.update({f"{child_name}.{i}": f"{child_name}.{i}" for i, _ in blocks})
        else:
            stages[child_name] = child_name
    return stages


def conv_layers(model: nn.Module) -> dict[str, nn.Module]:
    """Every convolution, by module path, in registration order (the auxiliary heads' last)."""
    return {name: m for name,
            m in model.named_modules() if isinstance(m, (nn.Conv2d, PartialConv2d))}


def _listing(names: list[str], limit: int = 24) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f", … ({len(names)} in all)" if len(names) > limit else "")


def resolve_layers(model: nn.Module, names: list[str] | None) -> dict[str, str]:
    """Names (stage names or module paths) → module paths; ``None`` means every default stage.
    An unknown name raises ``ConfigError`` listing the stage names."""
    stages = default_stages(model)
    if names is None:
        return stages
    modules = dict(model.named_modules())
    resolved = {}
    for name in names:
        if name in stages:
            resolved[name] = stages[name]
        elif name in modules and name:
            resolved[name] = name
        else:
            raise ConfigError(f"{model.cfg.name} has no layer {name!r}; its stages are "
                              f"{_listing(list(stages))} (or any module path, e.g. "
                              f"{next(iter(stages.values()), 'features.0')})")
    return resolved


def find_conv(model: nn.Module, name: str | None) -> tuple[str, nn.Module]:
    """The convolution ``name``: a module path, ``convN`` (the N-th convolution, counting from 1)
    or, for LeNet-5, C1/C3/C5; ``None`` means the first one."""
    require_hooks(model, "its kernels")
    convs = conv_layers(model)
    if not convs:
        raise ConfigError(f"{model.cfg.name} has no convolution (it is fully connected)")
    paths = list(convs)
    ordinal = {f"conv{i + 1}": path for i, path in enumerate(paths)}
    ordinal |= {paper: ordinal[f"conv{i + 1}"] for i,
                paper in enumerate(("C1", "C3", "C5")) if i < len(paths)}
    path = paths[0] if name is None else (name if name in convs else ordinal.get(name))
    if path is None:
        raise ConfigError(f"{model.cfg.name} has no convolution {name!r}; its convolutions are "
                          f"{_listing(paths)} (or conv1…conv{len(paths)})")
    return path, convs[path]
