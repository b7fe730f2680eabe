"""One image, explained for the page: top-k, the input as the model sees it, every stage's feature
maps with the layer that made them (kernels, and the output-size formula with its numbers),
Grad-CAM, nearest training images.

The work is ``cnnzoo.visualize``'s (``activations``, ``grad_cam``, ``retrieval``); this module only
packs the results for the browser. A stack of maps travels as one base64 string of uint8 values,
each map scaled to its own range (its minimum and maximum go beside it), and the page colours them
(viridis, as ``cnnzoo show maps``).
"""

from __future__ import annotations

import base64
import io
import sys

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch import nn

from cnnzoo.engine.user_image import prepare_image, ranked
from cnnzoo.errors import ConfigError, DataFormatError
from cnnzoo.layers.lenet1998 import PartialConv2d
from cnnzoo.layers.output_size import conv_output_size
from cnnzoo.visualize.activations import activations
from cnnzoo.visualize.cam import grad_cam
from cnnzoo.visualize.filters import dense_weight
from cnnzoo.visualize.layers import POOLS, default_stages
from cnnzoo.visualize.source import display_image, model_input

MAX_MAPS = 64  # feature maps sent per stage
MAX_UNITS = 1024  # values sent for a fully connected stage
# kernels (rows) × input channels (columns) sent per convolution
MAX_KERNELS, MAX_KERNEL_INPUTS = 32, 16
CONVS = (nn.Conv2d, PartialConv2d)
LAYERS = (*CONVS, *POOLS)


class ImageRejected(DataFormatError):
    """An upload that is not an image this server decodes: the API answers 400 with this message."""


def decode_upload(data: bytes, max_pixels: int) -> Image.Image:
    """The uploaded bytes as a decoded, upright image; size checked before decoding, truncation
    detected."""
    from PIL import ImageOps

    if not data:
        raise ImageRejected("the upload is empty; send an image file (PNG, JPEG, …) in the field "
                            "'image'")
    # the size is checked from the header, before any pixel is decoded (far below Pillow's bomb
    # limits)
    try:
        image = Image.open(io.BytesIO(data))
        width, height = image.size
        if width * height > max_pixels:
            raise ImageRejected(f"the image is {width}×{height} = {width * height:,} pixels, more "
                                f"than the {max_pixels:,} this server decodes; send a smaller one")
        image.load()  # a truncated file fails here, not later
        return ImageOps.exif_transpose(image)
    except ImageRejected:
        raise
    except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError) as error:
        detail = (
            "not a format Pillow knows"
            if isinstance(error, UnidentifiedImageError)
            else str(error)[:200]
        )
        raise ImageRejected(f"the upload cannot be decoded as an image ({detail}); it is "
                            "truncated, damaged or not an image: send a PNG, JPEG, GIF, BMP or "
                            "WebP file") from None


def png_base64(array: np.ndarray) -> str:
    """An image in [0, 1], (H, W) or (H, W, 3), as base64 PNG."""
    image = Image.fromarray(np.round(np.clip(array, 0, 1) * 255).astype(np.uint8))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def uint8_base64(values: np.ndarray) -> dict:
    """(N, …) values, each of the N scaled to [0, 255] by its own range: {"data", "min", "max"}."""
    flat = values.reshape(len(values), -1).astype(np.float64)
    low, high = flat.min(1), flat.max(1)
    span = np.where(high > low, high - low, 1)
    scaled = np.round((flat - low[:, None]) / span[:, None] * 255).astype(np.uint8)
    return {"data": base64.b64encode(scaled.tobytes()).decode(), "min": np.round(low, 5).tolist(),
            "max": np.round(high, 5).tolist()}


def float32_base64(values: torch.Tensor | np.ndarray) -> dict:
    """Values exactly, as {"shape", "data": base64 of float32 little-endian in C order}: for what a
    client compares with a file or a command, not only draws."""
    array = np.ascontiguousarray(np.asarray(values, dtype="<f4"))
    return {"shape": list(array.shape), "data": base64.b64encode(array.tobytes()).decode()}


def _stage_layers(model: nn.Module, stages: dict[str, str]) -> dict[str,
                                                                    list[tuple[str, nn.Module]]]:
    """Per stage, the convolutions and pools among the leaf modules that run from the previous
    stage's end to its own (registration order, which is forward order for every cnnzoo model that
    has plain stages)."""
    leaves = [(path, m) for path,
              m in model.named_modules() if path and not any(True for _ in m.children())]
    found, start = {}, 0
    for name, end in stages.items():
        ends = [i for i,
                (path, _) in enumerate(leaves) if path == end or path.startswith(end + ".")]
        stop = ends[-1] + 1 if ends else start
        found[name] = [
            (path, m)
            for path, m in leaves[start:stop]
            if isinstance(m, LAYERS) or hasattr(m, "kernel_size") and hasattr(m, "stride")
        ]
        start = max(start, stop)
    return found


def _pair(value) -> int:
    return value[0] if isinstance(value, (tuple, list)) else int(value)


def layer_card(path: str, module: nn.Module, width: int, out_width: int) -> dict:
    """The layer behind a stage: its type, sizes and (W − K + 2P)/S + 1 with its own numbers."""
    k, s, p = (
        _pair(module.kernel_size),
        _pair(module.stride or module.kernel_size),
        _pair(getattr(module, "padding", 0)),
    )
    d = _pair(getattr(module, "dilation", 1))
    span = d * (k - 1) + 1  # a dilated kernel covers this many pixels
    ceil = bool(getattr(module, "ceil_mode", False))  # GoogLeNet's pools round up
    rounded = conv_output_size(width, k, s, p, d, ceil)
    card = {
        "module": path,
        "type": type(module).__name__,
        "kernel": k,
        "stride": s,
        "padding": p,
        "dilation": d,
        "in_width": width,
        "out_width": out_width,
        "ceil_mode": ceil,
        "formula": f"({width} − {span} + 2·{p}) / {s} + 1 = {rounded}"
        + (" (rounded up)" if ceil else ""),
    }
    if isinstance(module, CONVS):
        weight = dense_weight(module)
        shown = weight[:MAX_KERNELS, :MAX_KERNEL_INPUTS].numpy()
        scale = np.abs(shown.reshape(len(shown), -1)).max(1)
        # each kernel by its own max |w|
        unit = shown / np.where(scale > 0, scale, 1).reshape(-1, 1, 1, 1)
        card.update(
            {
                "weight_shape": list(weight.shape),
                "groups": getattr(module, "groups", 1),
                "kernels": {
                    "shape": list(shown.shape),
                    "max_abs": np.round(scale, 5).tolist(),
                    "data": base64.b64encode(
                        np.round((unit + 1) * 127.5).astype(np.uint8)
                    ).decode(),
                },
            }
        )
    return card


def _maps(name: str, path: str, value: torch.Tensor, card: dict | None) -> dict:
    sample = value[0].float().cpu()
    stage = {"name": name, "module": path, "shape": list(sample.shape), "layer": card}
    if sample.dim() == 3:
        shown = sample[:MAX_MAPS].numpy()
        stage.update({"kind": "maps", "count": int(sample.shape[0]), "shown": len(shown),
                      "height": int(sample.shape[1]), "width": int(sample.shape[2]),
                      **uint8_base64(shown)})
    else:
        units = sample.flatten()[:MAX_UNITS].numpy()
        stage.update({"kind": "units", "count": int(sample.numel()), "shown": len(units),
                      **uint8_base64(units[None])})
    return stage


def _hook_widths(layers: dict[str, list[tuple[str, nn.Module]]]) -> tuple[dict, list]:
    widths: dict[str, tuple[int, int]] = {}
    handles = []
    for items in layers.values():
        for path, module in items[-1:]:
            def keep(module, inputs, output, path=path):
                if inputs and inputs[0].dim() == 4 and output.dim() == 4:
                    widths[path] = (int(inputs[0].shape[-1]), int(output.shape[-1]))
            handles.append(module.register_forward_hook(keep))
    return widths, handles


def opaque_note(model: nn.Module) -> str | None:
    """One line for the views that need a model's layers, where hooks cannot see them (an imported
    TorchScript or .pt2 program); None where they can."""
    reason = getattr(model, "hooks_unavailable", "")
    if not reason:
        return None
    return (f"{reason}, so its feature maps, Grad-CAM and layer table cannot be shown (its "
            f"predictions and softmax can); import its weights with --model or --code to see them")


def _input(subject, x: torch.Tensor) -> dict:
    shown = display_image(x[0], subject).numpy()
    return {"png": png_base64(shown), "height": shown.shape[0], "width": shown.shape[1],
            "shape": list(x.shape[1:])}


def _scores_only(subject, x: torch.Tensor, top_k: int, note: str) -> dict:
    """What a compiled program gives: its scores, the input as it saw it and the softmax; every
    stage-by-stage view replaced by ``note``."""
    with torch.no_grad():
        logits = subject.model(x)[0]
    return {"top_k": ranked(subject, logits.float().softmax(-1), top_k),
            "input": _input(subject, x), "stages": [], "stages_note": note,
            "cam": {"error": note}, "softmax": softmax_table(subject.model, logits)}


def explain(subject, raw: torch.Tensor, *, top_k: int = 5) -> dict:
    """Everything the page draws for one uint8 image (C, s, s) at the training images' size."""
    model = subject.model
    x = model_input(subject, raw[None])
    note = opaque_note(model)
    if note:
        return _scores_only(subject, x, top_k, note)
    stages = default_stages(model)
    layers = _stage_layers(model, stages)
    widths, handles = _hook_widths(layers)
    try:
        outputs = activations(model, x)
    finally:
        for handle in handles:
            handle.remove()
    cam, logits = _cam(model, x)
    # no Grad-CAM (a model without 2-D maps): one more forward pass for the scores
    if logits is None:
        with torch.no_grad():
            logits = model(x)[0]
    cards = {}
    for name, items in layers.items():
        if len(items) == 1 and items[0][0] in widths:  # one convolution or pool: its own card
            cards[name] = layer_card(items[0][0], items[0][1], *widths[items[0][0]])
    return {"top_k": ranked(subject, logits.float().softmax(-1), top_k),
            "input": _input(subject, x),
            "stages": [_maps(name, stages[name], value, cards.get(name)) for name,
                       value in outputs.items()],
            "cam": cam, "softmax": softmax_table(model, logits)}


def _cam(model: nn.Module, x: torch.Tensor, target: int | None = None,
         layer: str | None = None) -> tuple[dict, torch.Tensor | None]:
    """Grad-CAM for class ``target`` (default: the predicted one) at ``layer`` (default: the last
    map of 2×2 or more), packed, and the logits of its forward pass (None without one)."""
    try:
        result = grad_cam(model, x, target, layer)
    except ConfigError as error:  # a model without 2-D maps (mlp), or a layer it does not have
        return {"error": str(error)}, None
    cam = result["cam"].numpy()
    # no map weighs positively for this class: the ReLU of the weighted sum left nothing
    all_zero = not cam.any()
    return {"layer": result["layer"], "module": result["module"], "class_index": result["class"],
            "map_size": result["map_size"], "height": cam.shape[0], "width": cam.shape[1],
            "all_zero": bool(all_zero), **uint8_base64(cam[None])}, result["logits"]


def class_cam(subject, raw: torch.Tensor, target: int, layer: str | None) -> dict:
    """Grad-CAM of any class at any stage (or module path) for one uint8 image."""
    if not 0 <= target < len(subject.classes):
        raise ConfigError(f"class index {target} is outside 0…{len(subject.classes) - 1}")
    return _cam(subject.model, model_input(subject, raw[None]), target, layer)[0]


def softmax_table(model: nn.Module, logits: torch.Tensor) -> dict:
    """The softmax with its numbers: logits, exp(logit − max) (the shift keeps exp finite and
    changes no probability), their sum, and each exp divided by it; the temperature where the model
    scales its logits."""
    values = logits.double()[:MAX_UNITS]
    shifted = (values - values.max()).exp()
    total = shifted.sum()
    scale = getattr(sys.modules.get(type(model).__module__), "LOGIT_SCALE", None)  # budgetnet's 1/8
    return {"logits": np.round(values.numpy(), 6).tolist(), "max": round(float(values.max()), 6),
            "exp": np.round(shifted.numpy(), 6).tolist(), "sum": round(float(total), 6),
            "probabilities": np.round((shifted / total).numpy(), 6).tolist(),
            "temperature": None if scale is None else round(1 / scale, 6)}


def neighbours(entry, index, raw: torch.Tensor, k: int = 8) -> dict:
    """The ``k`` training images nearest to the image in penultimate features (``cnnzoo show
    neighbours``), searched in ``index`` (a ready ``index.NeighbourIndex``); the caller holds
    ``entry.lock``."""
    from cnnzoo.visualize import retrieval

    subject = entry.subject
    query = retrieval.penultimate(subject.model, model_input(subject, raw[None]))
    distances, indices = retrieval.nearest(query, index.features, k)
    return {"space": f"penultimate features ({index.features.shape[1]}-d)", "searched": index.total,
            "images": [{"index": int(i) * index.step,
                        "class": subject.classes[int(index.labels[i])],
                        "distance": round(float(d), 4), "png": png_base64(_unit(index.images[i]))}
                       for d, i in zip(distances[0], indices[0], strict=True)]}


def _unit(image: torch.Tensor) -> np.ndarray:
    array = image.numpy().astype(np.float32) / 255
    return array[0] if array.shape[0] == 1 else array.transpose(1, 2, 0)


def test_image(entry, data, index: int | None) -> dict:
    """One test image of the run's data set (a random one when ``index`` is None), as PNG, with its
    label."""
    test = data.test
    count = len(test)
    if index is None:
        index = int(torch.randint(count, (1,)))
    if not 0 <= index < count:
        raise ConfigError(f"test image index {index} is outside 0…{count - 1}")
    label = int(test.labels[index])
    return {"index": index, "count": count, "class": entry.subject.classes[label], "label": label,
            "png": png_base64(_unit(test.images[index].cpu()))}



def prepare_upload(entry, image: Image.Image, prepare: bool = True) -> tuple[torch.Tensor, dict]:
    """A decoded upload or drawing as ``cnnzoo predict`` prepares an image file (MNIST-like runs:
    inverted, trimmed, centred as the data set's images were; ``prepare=False``: only resized), and
    the steps taken."""
    return prepare_image(entry.subject, image, prepare)


def model_card(entry) -> dict:
    """The model of a run: name, classes, input, its stages and ``cnnzoo summary``'s per-layer
    table."""
    from cnnzoo.inspect.summary import summary
    from cnnzoo.serve.stages import stage_of

    with entry.lock:
        if entry.card is None:
            subject = entry.subject
            table = summary(subject.model, tuple(subject.model.cfg.input_size))
            note = opaque_note(subject.model)  # a compiled program: no stages, no layer rows
            stages = {} if note else stage_of(subject.model)
            entry.card = {"model": subject.name, "variant": subject.variant,
                          "dataset": subject.dataset,
                          "classes": subject.classes,
                          "input": {"size": subject.input.size,
                                    "channels": subject.model.cfg.input_size[0],
                                    "data_size": subject.data_size, "mean": subject.input.mean,
                                    "std": subject.input.std},
                          "stages": [] if note else list(default_stages(subject.model)),
                          "note": note,
                          # the trainable count leads, as `cnnzoo list` and `summary` show it
                          "params": table.trainable_params, "fixed_params": table.fixed_params,
                          "total_params": table.total_params, "total_macs": table.total_macs,
                          "layers": [{"name": row.name, "type": row.type,
                                      "output_shape": row.output_shape,
                                      "params": row.params, "macs": row.macs,
                                      "receptive_field": row.receptive_field,
                                      "stage": stages.get(row.name)}
                                     for row in table.layers]}
        return entry.card
