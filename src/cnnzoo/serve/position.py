"""One position of one feature map, explained with the real model's numbers: what the page shows
when a student clicks a map, then a place in it.

A stage (``default_stages``) ends at a module whose output the page draws; the leaf modules from the
previous stage's end to its own are run once with forward hooks, and each gets a step with its real
inputs and output at the clicked position: a convolution its window (zeros where it lies in the
padding) times its kernel, summed over every input channel, plus the bias; BatchNorm, ReLU and LRN
their formulas; a pool its window. A block (Inception, residual, dense) says what went in and what
came out instead. Every step's arithmetic is done here in float64 and returned beside the value the
model itself computed, so the page shows both and they agree.

The window on the input image comes from ``cnnzoo summary``'s receptive field and jump for the
layer, placed by the padding met on the way (``image_window``).
"""

from __future__ import annotations

import torch
from torch import nn

from cnnzoo.errors import ConfigError
from cnnzoo.layers.lrn import LocalResponseNorm2d
from cnnzoo.serve.explain import CONVS, layer_card
from cnnzoo.serve.stages import stage_leaves
from cnnzoo.visualize.filters import dense_weight
from cnnzoo.visualize.layers import POOLS, SKIPPED
from cnnzoo.visualize.source import model_input

MAX_CHANNELS = 8  # input channels whose window and kernel are sent in full; the sum covers all
MAX_ANIMATED = 96 * 96  # input maps larger than this are not sent for the convolution animation
DIGITS = 6


def _round(value) -> float:
    return round(float(value), DIGITS)


def _grid(values: torch.Tensor) -> list[list[float]]:
    return [[_round(v) for v in row] for row in values.tolist()]


def _capture(model: nn.Module, x: torch.Tensor, modules: list[tuple[str, nn.Module]]) -> dict:
    """path → (input, output) of each module's first call on ``x``; the input is copied before the
    module runs, since an in-place ReLU overwrites it."""
    seen: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
    before: dict[str, torch.Tensor] = {}
    handles = []
    for path, module in modules:
        def keep_input(module, inputs, path=path):
            if path not in before and inputs and isinstance(inputs[0], torch.Tensor):
                before[path] = inputs[0].detach().clone()

        def keep(module, inputs, output, path=path):
            if path not in seen and path in before and isinstance(output, torch.Tensor):
                seen[path] = (before[path], output.detach().clone())
        handles.append(module.register_forward_pre_hook(keep_input))
        handles.append(module.register_forward_hook(keep))
    try:
        with torch.no_grad():
            model(x)
    finally:
        for handle in handles:
            handle.remove()
    return seen


def _at(tensor: torch.Tensor, channel: int, y: int, x: int) -> float:
    sample = tensor[0]
    return float(sample[channel, y, x]) if sample.dim() == 3 else float(sample.flatten()[channel])


def _window(plane: torch.Tensor, top: int, left: int, k: int, d: int,
            fill: float = 0.0) -> torch.Tensor:
    """The k×k window (dilation d) of a 2-d map starting at (top, left), ``fill`` outside it
    (padding)."""
    h, w = plane.shape
    rows = torch.arange(k) * d + top
    cols = torch.arange(k) * d + left
    inside = ((rows >= 0) & (rows < h))[:, None] & ((cols >= 0) & (cols < w))[None, :]
    values = plane[rows.clamp(0, h - 1)][:, cols.clamp(0, w - 1)]
    return torch.where(inside, values, torch.full((), fill, dtype=plane.dtype))


def _numbers(module: nn.Module) -> tuple[int, int, int, int]:
    def first(value) -> int:
        return int(value[0] if isinstance(value, (tuple, list)) else value)

    k = first(module.kernel_size)
    s = first(module.stride or module.kernel_size)
    return k, s, first(getattr(module, "padding", 0)), first(getattr(module, "dilation", 1))


def conv_step(path: str, module: nn.Module, x_in: torch.Tensor, out: torch.Tensor, channel: int,
              y: int, x: int) -> dict:
    """Window × kernel over every input channel of the group, plus the bias: the convolution at one
    place."""
    k, s, p, d = _numbers(module)
    weight = dense_weight(module).double()[channel]  # (C_in / groups, k, k)
    groups = getattr(module, "groups", 1)
    per_group = weight.shape[0]
    first_in = channel // (module.out_channels // groups) * per_group  # its group's first input
    planes = x_in[0, first_in:first_in + per_group].double()
    top, left = y * s - p, x * s - p
    windows = torch.stack([_window(plane, top, left, k, d) for plane in planes])
    products = (windows * weight).sum(dim=(1, 2))  # one sum per input channel
    bias = getattr(module, "bias", None)
    bias = float(bias[channel]) if bias is not None else 0.0
    total = float(products.sum())
    shown = range(min(per_group, MAX_CHANNELS))
    return {"op": "conv", "module": path, "type": type(module).__name__,
            "card": layer_card(path, module, int(x_in.shape[-1]), int(out.shape[-1])),
            "window_at": {"top": top, "left": left, "size": d * (k - 1) + 1, "dilation": d},
            "channels": [{"channel": first_in + i, "window": _grid(windows[i]),
                          "kernel": _grid(weight[i]), "sum": _round(products[i])} for i in shown],
            "channels_total": per_group, "channel_sum": _round(total), "bias": _round(bias),
            "computed": _round(total + bias), "model_value": _round(_at(out, channel, y, x))}


def pool_step(path: str, module: nn.Module, x_in: torch.Tensor, out: torch.Tensor, channel: int,
              y: int, x: int) -> dict:
    """The pool's window on its input map and what it keeps of it (the maximum, or the mean)."""
    plane = x_in[0, channel].double()
    if isinstance(module, (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)):
        h_out, w_out = out.shape[-2:]
        rows = slice(y * plane.shape[0] // h_out, -(-(y + 1) * plane.shape[0] // h_out))
        cols = slice(x * plane.shape[1] // w_out, -(-(x + 1) * plane.shape[1] // w_out))
        window, top, left = plane[rows, cols], rows.start, cols.start
    else:
        k, s, p, d = _numbers(module)
        top, left = y * s - p, x * s - p
        # PyTorch pads a max pool with −∞, an average pool with zeros that count (unless told not)
        counted = getattr(module, "count_include_pad", True)
        fill = 0.0 if isinstance(module, nn.AvgPool2d) and counted else float("-inf")
        window = _window(plane, top, left, k, d, fill)
    is_max = isinstance(module, (nn.MaxPool2d, nn.AdaptiveMaxPool2d))
    inside = window[torch.isfinite(window)]
    computed = inside.max() if is_max else inside.mean()
    return {"op": "max" if is_max else "mean", "module": path, "type": type(module).__name__,
            "card": layer_card(path, module, int(x_in.shape[-1]), int(out.shape[-1]))
            if hasattr(module, "kernel_size") else None,
            "window_at": {"top": top, "left": left, "size": int(window.shape[0])},
            "window": [[_round(v) if abs(v) != float("inf") else None for v in row]
                       for row in window.tolist()],
            "computed": _round(computed), "model_value": _round(_at(out, channel, y, x))}


def pointwise_step(path: str, module: nn.Module, x_in: torch.Tensor, out: torch.Tensor,
                   channel: int, y: int, x: int) -> dict:
    """BatchNorm, an activation or LRN at one position: its formula with the numbers that went
    in."""
    a = _at(x_in, channel, y, x)
    step = {"module": path, "type": type(module).__name__, "input": _round(a),
            "model_value": _round(_at(out, channel, y, x))}
    if isinstance(module, (nn.BatchNorm2d, nn.BatchNorm1d)):
        mean, var = float(module.running_mean[channel]), float(module.running_var[channel])
        gamma = float(module.weight[channel]) if module.weight is not None else 1.0
        beta = float(module.bias[channel]) if module.bias is not None else 0.0
        computed = (a - mean) / (var + module.eps) ** 0.5 * gamma + beta
        return {**step, "op": "batchnorm", "mean": _round(mean), "var": _round(var),
                "eps": module.eps, "gamma": _round(gamma), "beta": _round(beta),
                "computed": _round(computed)}
    if isinstance(module, nn.ReLU):
        return {**step, "op": "relu", "computed": _round(max(a, 0.0))}
    if isinstance(module, LocalResponseNorm2d):
        n, count = module.size, x_in.shape[1]
        near = range(max(0, channel - n // 2), min(count, channel + (n - 1) // 2 + 1))
        squares = sum(float(x_in[0, c, y, x]) ** 2 for c in near)
        computed = a / (module.k + module.alpha * squares) ** module.beta
        return {**step, "op": "lrn", "n": n, "k": module.k, "alpha": module.alpha,
                "beta": module.beta,
                "channels": [near.start, near.stop - 1], "squares": _round(squares),
                "computed": _round(computed)}
    return {**step, "op": "function"}


def linear_step(path: str, module: nn.Linear, x_in: torch.Tensor, out: torch.Tensor,
                unit: int) -> dict:
    """A fully connected unit: Σ w·x over every input, plus the bias; the largest terms shown."""
    inputs, weights = x_in[0].flatten().double(), module.weight[unit].double()
    terms = inputs * weights
    largest = terms.abs().argsort(descending=True)[:MAX_CHANNELS]
    bias = float(module.bias[unit]) if module.bias is not None else 0.0
    return {"op": "linear", "module": path, "type": "Linear", "inputs": len(inputs),
            "terms": [{"input": int(i), "x": _round(inputs[i]), "w": _round(weights[i]),
                       "product": _round(terms[i])} for i in largest],
            "channel_sum": _round(terms.sum()), "bias": _round(bias),
            "computed": _round(terms.sum() + bias), "model_value": _round(float(out[0, unit]))}


def _step(path, module, captured, channel, y, x) -> dict | None:
    x_in, out = captured[path]
    if isinstance(module, SKIPPED) or isinstance(module, nn.Dropout):
        return None
    if isinstance(module, CONVS):
        return conv_step(path, module, x_in, out, channel, y, x)
    if isinstance(module, POOLS):
        return pool_step(path, module, x_in, out, channel, y, x)
    if isinstance(module, nn.Linear):
        return linear_step(path, module, x_in, out, channel)
    return pointwise_step(path, module, x_in, out, channel, y, x)


def image_window(model: nn.Module, x: torch.Tensor, path: str, y: int, x_pos: int) -> dict | None:
    """The square of the input image that position (y, x) of ``path``'s output sees: its side and
    step are ``cnnzoo summary``'s receptive field and jump for that layer; its corner moves back by
    the padding of every sliding window on the way (followed tensor by tensor: exact for a chain of
    layers; after a sum or concatenation, the branch that ran last)."""
    from cnnzoo.inspect.summary import summary

    rows = [row for row in summary(model, tuple(x.shape[1:])).layers
            if row.name == path or row.name.startswith(path + ".")]  # a block: its last layer
    if not rows or rows[-1].receptive_field is None:
        return None
    corners = {id(x): (x, 0, 1)}  # tensor id → (the tensor, kept alive; corner; jump)
    last = [(0, 1)]

    def walk(module, inputs, output) -> None:
        if not inputs or not isinstance(output, torch.Tensor):
            return
        start, jump = corners.get(id(inputs[0]), (None, *last[-1]))[1:]
        if hasattr(module, "kernel_size") and hasattr(module, "stride") and output.dim() == 4:
            k, s, p, d = _numbers(module)
            start, jump = start - p * jump, jump * s
        corners[id(output)] = (output, start, jump)
        last.append((start, jump))

    def stop(*_) -> None:
        raise _Reached

    leaves = [m for m in model.modules() if not any(True for _ in m.children())]
    handles = [m.register_forward_hook(walk) for m in leaves]
    handles.append(dict(model.named_modules())[path].register_forward_hook(stop))
    try:
        with torch.no_grad():
            model(x)
    except _Reached:
        pass
    finally:
        for handle in handles:
            handle.remove()
    size, jump, start = rows[-1].receptive_field, rows[-1].jump, last[-1][0]
    top, left = start + y * jump, start + x_pos * jump
    height, width = x.shape[-2:]
    return {"size": size, "jump": jump, "top": top, "left": left, "bottom": top + size - 1,
            "right": left + size - 1,
            "clipped": [max(top, 0), max(left, 0), min(top + size, height) - 1,
                        min(left + size, width) - 1]}


class _Reached(Exception):
    """Raised by a hook to end the forward pass once the clicked layer has run."""


def animation(step: dict, captured: dict, in_channel: int | None, channel: int) -> dict | None:
    """For the stage's sliding window (a convolution or pool): one input map, the kernel over it,
    and the output map it fills, so the page can slide the window step by step with padding and
    stride drawn."""
    x_in, out = captured[step["module"]]
    if x_in.dim() != 4 or x_in.shape[-1] * x_in.shape[-2] > MAX_ANIMATED or out.dim() != 4:
        return None
    card = step.get("card") or {}
    if step["op"] == "conv":
        chosen = in_channel if in_channel is not None else step["channels"][0]["channel"]
        shown = next((c for c in step["channels"] if c["channel"] == chosen), step["channels"][0])
        chosen, kernel = shown["channel"], shown["kernel"]
    else:
        chosen, kernel = channel, None
    return {"input_channel": chosen, "input": _grid(x_in[0, chosen]), "kernel": kernel,
            "output": _grid(out[0, channel]), "kernel_size": card.get("kernel"),
            "stride": card.get("stride"), "padding": card.get("padding"),
            "dilation": card.get("dilation", 1), "op": step["op"]}


@torch.no_grad()
def explain_position(subject, raw: torch.Tensor, stage: str, channel: int, y: int, x: int,
                     in_channel: int | None = None) -> dict:
    """Everything the page shows about output (channel, y, x) of ``stage`` for one image (uint8,
    C×s×s)."""
    from cnnzoo.serve import blocks

    model = subject.model
    inputs = model_input(subject, raw[None])
    end, leaves = stage_leaves(model, stage)
    block = dict(model.named_modules())[end]
    windows = sum(isinstance(m, (*CONVS, *POOLS)) for _, m in leaves)
    # a chain whose one sliding window comes first keeps the clicked position from step to step
    is_block = isinstance(block, blocks.BLOCKS) or (any(True for _ in block.children())
                                                     and windows > 1)
    watched = blocks.watched(block, end) if is_block else leaves
    captured = _capture(model, inputs, watched)
    output = captured[end][1] if end in captured else captured[leaves[-1][0]][1]
    _check_position(stage, output, channel, y, x)
    if is_block:
        steps = [blocks.explain_block(block, captured, end, channel, y, x)]
    else:
        steps = [s for p, m in leaves
                 if p in captured and (s := _step(p, m, captured, channel, y, x))]
    spatial = output.dim() == 4
    first = next((s for s in steps if s["op"] in ("conv", "max", "mean")), None)
    return {"stage": stage, "module": end, "type": type(block).__name__,
            "position": {"channel": channel, "y": y, "x": x}, "shape": list(output.shape[1:]),
            "value": _round(_at(output, channel, y, x)), "steps": steps,
            "image_window": image_window(model, inputs, end, y, x) if spatial else None,
            "animation": animation(first, captured, in_channel, channel)
            if first and spatial else None}


def _check_position(stage: str, output: torch.Tensor, channel: int, y: int, x: int) -> None:
    shape = list(output.shape[1:])
    if len(shape) == 3:
        fits = 0 <= channel < shape[0] and 0 <= y < shape[1] and 0 <= x < shape[2]
    else:
        fits = 0 <= channel < output[0].numel() and y == 0 and x == 0
    if not fits:
        raise ConfigError(f"{stage} is {'×'.join(map(str, shape))}: it has no map {channel} "
                          f"position ({y}, {x})")
