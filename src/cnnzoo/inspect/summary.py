"""``summary(model, input_size)``: what each layer of a model does to one image.

It runs one real forward pass with a hook on every leaf module, so layers inside branches (Inception
columns, residual shortcuts, dense blocks) are each seen once per call, in execution order. For each
call it records

- the output shape;
- the parameters the module owns (counted at its first call only, so the rows add up to the model's
  total);
- multiply-adds: k·k·C_in/groups per output of a convolution and C_in per output of a linear layer,
  the convention behind torchvision's published "GFLOPS"; layers without weights count 0, except
  those that define ``count_macs(output)`` (LeNet-1998's subsampling, partial C3 and RBF output);
- connections in LeCun's sense: multiply-adds plus one per output unit that has a bias;
- the receptive field (side of the input square one output unit sees) and the jump (input pixels
  between neighbouring outputs), by r_out = r_in + (k − 1)·d·j_in and j_out = j_in·s, and where the
  first output's field starts (``rf_start``, negative inside the padding): start_out = start_in −
  p·j_in, so output (i, j) sees rows and columns start + i·jump … start + i·jump + r − 1. Layers
  whose output is no longer a spatial map (flatten, FC, global pooling) get ``None``.

Receptive fields must also pass through operations that are not modules — ``a + b`` in a residual
block, ``torch.cat`` in Inception and DenseNet, a slice — so a ``TorchFunctionMode`` tags every 4-d
tensor produced during the pass with the largest (receptive field, jump) among its 4-d inputs; a
module's hook then overwrites the tag with the module's own rule.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

import torch
from torch import nn
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_flatten

from cnnzoo.models.base import parameter_count

_TAG = "_cnnzoo_rf"  # attribute set on tensors during the pass: (receptive_field, jump, start)


@dataclass
class LayerInfo:
    name: str
    type: str
    output_shape: list[int]
    params: int
    macs: int
    connections: int
    receptive_field: int | None
    jump: int | None
    rf_start: int | None = None


@dataclass
class ModelSummary:
    model: str
    input_size: list[int]
    total_params: int
    trainable_params: int
    total_macs: int
    layers: list[LayerInfo] = field(default_factory=list)
    note: str = ""  # why there are no layer rows (a compiled program cnnzoo cannot hook)

    @property
    def fixed_params(self) -> int:
        return self.total_params - self.trainable_params

    def to_dict(self) -> dict:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def layer(self, name: str) -> LayerInfo:
        """The first recorded call of the module at ``name`` (a module path such as ``"c3.0"``)."""
        for info in self.layers:
            if info.name == name:
                return info
        raise KeyError(f"no layer named {name!r} in the summary of {self.model}")

    @property
    def unused_params(self) -> int:
        """Parameters of modules this pass never ran (GoogLeNet's auxiliary classifiers, which run
        in training)."""
        return self.total_params - sum(layer.params for layer in self.layers)

    def rows(self, depth: int | None = None) -> list[LayerInfo]:
        """The layers, or with ``depth`` the modules ``depth`` levels down the module path
        (``features.3`` is depth 2), each adding up the layers below it: their params, MACs and
        connections, the output shape and receptive field of the last one (depth 0: one row,
        ``(whole model)``)."""
        if depth is None:
            return list(self.layers)
        grouped: list[LayerInfo] = []
        for layer in self.layers:
            name = ".".join(layer.name.split(".")[:depth]) or "(whole model)"
            if grouped and grouped[-1].name == name:
                last = grouped[-1]
                grouped[-1] = LayerInfo(name, last.type, layer.output_shape,
                                        last.params + layer.params, last.macs + layer.macs,
                                        last.connections + layer.connections,
                                        layer.receptive_field, layer.jump, layer.rf_start)
            else:
                kind = layer.type if name == layer.name else "(group)"
                grouped.append(LayerInfo(name, kind, layer.output_shape, layer.params, layer.macs,
                                         layer.connections, layer.receptive_field, layer.jump,
                                         layer.rf_start))
        return grouped

    def table(self, depth: int | None = None, name_width: int = 34) -> str:
        """The summary as a text table (``cnnzoo summary``); long layer names keep their end after a
        '…'."""
        header = (
            f"{'layer':<{name_width}} {'type':<20} {'output':<16} {'params':>12} {'MACs':>15} "
            f"{'connections':>15} {'RF':>5}"
        )
        lines = [f"{self.model}  input {tuple(self.input_size)}", header, "-" * len(header)]
        for layer in self.rows(depth):
            name = (
                layer.name
                if len(layer.name) <= name_width
                else "…" + layer.name[-(name_width - 1) :]
            )
            shape = "×".join(map(str, layer.output_shape))
            rf = "" if layer.receptive_field is None else str(layer.receptive_field)
            lines.append(
                f"{name:<{name_width}} {layer.type:<20.20} {shape:<16} {layer.params:>12,} "
                f"{layer.macs:>15,} {layer.connections:>15,} {rf:>5}"
            )
        unused = (f"; {self.unused_params:,} of them in modules this pass did not run (e.g. "
                  "auxiliary classifiers, which run in training only), so the rows add up to "
                  f"{self.total_params - self.unused_params:,}") if self.unused_params \
            and not self.note else ""
        # the trainable count leads, as `cnnzoo list` and the recipes show it (parameter_count)
        fixed = (f" trainable, as `cnnzoo list` counts; {self.fixed_params:,} fixed, "
                 f"{self.total_params:,} in all") if self.fixed_params else ""
        lines += ["-" * len(header)] + ([self.note] if self.note else []) + [
                  f"parameters: {self.trainable_params:,}{fixed}{unused}",
                  f"multiply-adds: {self.total_macs:,} ({_in_units(self.total_macs)})"]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()


def _in_units(count: int) -> str:
    """``0.416 M``, ``1.82 G``: a count read at a glance, in the unit that leaves it above 0.1."""
    for unit, size in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if count >= 0.1 * size:
            return f"{count / size:.3g} {unit}"
    return f"{count}"


def _pair(value) -> tuple[int, int]:
    return tuple(value) if isinstance(value, (tuple, list)) else (value, value)


def _window(module: nn.Module, x: torch.Tensor, out: torch.Tensor) -> tuple[int, int, int] | None:
    """(kernel, stride, dilation, padding) along the height of a sliding-window module, or None for
    pointwise ones."""
    if isinstance(module, (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)):
        size_in, size_out = x.shape[-2], out.shape[-2]
        # an adaptive pool that tiles exactly is an ordinary pool
        if out.shape[-2:] != (1, 1) and size_in % size_out == 0:
            step = size_in // size_out
            return step, step, 1, 0
        return None
    if not hasattr(module, "kernel_size") or not hasattr(module, "stride"):
        return None
    kernel, stride = _pair(module.kernel_size)[0], _pair(module.stride or module.kernel_size)[0]
    dilation = _pair(getattr(module, "dilation", 1))[0]
    padding = getattr(module, "padding", 0)
    if isinstance(padding, str):  # "same": (k − 1)·d / 2 before (an odd extra pixel goes after)
        padding = (kernel - 1) * dilation // 2 if padding == "same" else 0
    return kernel, stride, dilation, _pair(padding)[0]


def _module_macs(module: nn.Module, out: torch.Tensor) -> int:
    per_image = out[0]
    if isinstance(module, nn.modules.conv._ConvNd):
        kernel_volume = module.weight[0].numel()  # (C_in / groups) · k · k
        return per_image.numel() * kernel_volume
    if isinstance(module, nn.Linear):
        return per_image.numel() * module.in_features
    if hasattr(module, "count_macs"):
        return int(module.count_macs(out))
    return 0


def _receptive_field(module: nn.Module, x: torch.Tensor | None,
                      out: torch.Tensor) -> tuple[int, int, int] | None:
    """(receptive field, jump, start) of ``module``'s output from its input's tag, or None where no
    map is left."""
    rf_in = getattr(x, _TAG, None) if x is not None and x.dim() == 4 else None
    if out.dim() != 4 or rf_in is None:
        return None
    window = _window(module, x, out)
    if window is None and isinstance(module, (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)):
        return None  # a global (or non-tiling) pool: the spatial part of the network ends here
    if window is None:
        return rf_in  # pointwise in space: activations, normalisation, dropout, LRN
    kernel, stride, dilation, padding = window
    field_in, jump_in, start_in = rf_in
    start = start_in - padding * jump_in
    return field_in + (kernel - 1) * dilation * jump_in, jump_in * stride, start


def _functional_window(func, args: tuple, kwargs: dict) -> tuple[int, int, int, int] | None:
    """(kernel, stride, dilation, padding) along the height of a functional convolution or pooling
    called in a ``forward`` (``F.max_pool2d(x, 2)``), where no module hook sees it; None for other
    calls."""
    name = getattr(func, "__name__", "")
    if name not in ("conv2d", "max_pool2d", "avg_pool2d") or len(args) < 2:
        return None

    def given(position: int, key: str, default):
        value = args[position] if len(args) > position else kwargs.get(key, default)
        return _pair(default if value is None or value == () else value)[0]

    if name == "conv2d":
        kernel = args[1].shape[-2] if isinstance(args[1], torch.Tensor) else 1
        padding = args[4] if len(args) > 4 else kwargs.get("padding", 0)
        padding = 0 if isinstance(padding, str) else _pair(padding)[0]  # "same": rare, start kept
        return kernel, given(3, "stride", 1), given(5, "dilation", 1), padding
    kernel = _pair(args[1])[0]
    dilation = given(4, "dilation", 1) if name == "max_pool2d" else 1
    return kernel, given(2, "stride", kernel), dilation, given(3, "padding", 0)


class _ReceptiveFieldMode(TorchFunctionMode):
    """Tags each 4-d tensor an operation produces with the widest receptive field among its 4-d
    inputs (of equal ones, the one that starts first), or for a functional convolution or pooling
    with its window's rule."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        window = _functional_window(func, args, kwargs or {})
        first = args[0] if args else None
        if window is not None and isinstance(out, torch.Tensor) and out.dim() == 4 \
                and hasattr(first, _TAG):
            field_in, jump_in, start_in = getattr(first, _TAG)
            kernel, stride, dilation, padding = window
            setattr(out, _TAG, (field_in + (kernel - 1) * dilation * jump_in, jump_in * stride,
                                start_in - padding * jump_in))
            return out
        tags = [getattr(t, _TAG) for t in tree_flatten((args, kwargs))[0]
                if isinstance(t, torch.Tensor) and t.dim() == 4 and hasattr(t, _TAG)]
        for result in tree_flatten(out)[0]:
            if (
                isinstance(result, torch.Tensor)
                and result.dim() == 4
                and tags
                and not hasattr(result, _TAG)
            ):
                setattr(result, _TAG, max(tags, key=lambda tag: (tag[0], tag[1], -tag[2])))
        return out


def summary(
    model: nn.Module, input_size: tuple[int, int, int] | None = None, *, device: str = "cpu"
) -> ModelSummary:
    """Run one image of ``input_size`` (C, H, W; default: the model's own) through ``model`` in eval
    mode and report every leaf module's output shape, parameters, multiply-adds, connections and
    receptive field."""
    cfg = getattr(model, "cfg", None)
    if input_size is None:
        if cfg is None:
            raise ValueError("this model has no default input size; pass input_size=(C, H, W)")
        input_size = cfg.input_size
    input_size = tuple(int(v) for v in input_size)
    if getattr(model, "hooks_unavailable", ""):
        total = sum(p.numel() for p in model.parameters())
        return ModelSummary(model=cfg.name, input_size=list(input_size), total_params=total,
                            trainable_params=total, total_macs=0,
                            note=f"no layer rows: {model.hooks_unavailable}")
    names = {module: name for name, module in model.named_modules()}
    layers: list[LayerInfo] = []
    seen: set[nn.Module] = set()

    def hook(module: nn.Module, inputs: tuple, out) -> None:
        if not isinstance(out, torch.Tensor):
            return
        x = inputs[0] if inputs and isinstance(inputs[0], torch.Tensor) else None
        rf = _receptive_field(module, x, out)
        if out.dim() == 4:
            if rf is not None:
                setattr(out, _TAG, rf)
            elif hasattr(out, _TAG):
                delattr(out, _TAG)
        params = 0 if module in seen else sum(p.numel() for p in module.parameters(recurse=False))
        seen.add(module)
        macs = _module_macs(module, out)
        bias = getattr(module, "bias", None)
        bias_units = out[0].numel() if isinstance(bias, torch.Tensor) else 0
        layers.append(LayerInfo(
            name=names.get(module, type(module).__name__), type=type(module).__name__,
            output_shape=list(out.shape[1:]), params=params, macs=macs,
                                connections=macs + bias_units,
            receptive_field=rf[0] if rf else None, jump=rf[1] if rf else None,
            rf_start=rf[2] if rf else None,
        ))

    leaves = [m for m in model.modules() if not list(m.children())]
    handles = [m.register_forward_hook(hook) for m in leaves]
    was_training = model.training
    model.eval()
    try:
        x = torch.zeros(1, *input_size, device=device)
        setattr(x, _TAG, (1, 1, 0))
        with torch.no_grad(), _ReceptiveFieldMode():
            model(x)
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)

    total = sum(p.numel() for p in model.parameters())
    trainable = parameter_count(model)
    name = cfg.name if cfg is not None else type(model).__name__
    return ModelSummary(model=name, input_size=list(input_size), total_params=total,
                        trainable_params=trainable,
                        total_macs=sum(layer.macs for layer in layers), layers=layers)
