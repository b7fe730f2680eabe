"""What each unit wants to see: activation maximisation, an input optimised from noise until one
unit (a channel of a convolutional stage, a hidden unit of an FC layer) or one class's logit is as
large as it can make it.

Erhan et al. ("Visualizing higher-layer features of a deep network", 2009) and Simonyan et al.
("Deep inside convolutional networks", 2014) optimise the pixels directly and get high-frequency
noise that fools the unit. What makes the result recognisable, after Olah, Mordvintsev & Schubert
("Feature visualization", Distill 2017) and Mordvintsev et al. ("Differentiable image
parameterizations", Distill 2018):

- a decorrelated parameterisation: the image is the inverse FFT of a spectrum whose coefficients are
  scaled by 1/frequency, so a gradient step changes low frequencies as much as high ones (plain
  pixels follow the gradient's high frequencies); three channels are mixed from an opponent colour
  basis (luminance, red–green, blue–yellow), so colour and brightness are learnt apart;
- robustness to transformations: every step sees the image jittered, scaled and rotated at random
  (one ``grid_sample`` per step, each image its own transformation), so the pattern must work
  wherever it lands;
- a total-variation penalty against the pixel noise that is left, and an L1 pull of every pixel
  towards the data set's mean, so that what the unit does not need stays plain background.

The image is ``sigmoid`` of that signal: always a valid picture in [0, 1], normalised as the model's
inputs were, so what is saved can be fed back to ``cnnzoo predict --no-prepare`` unchanged. Every
unit of a layer is optimised at once, one image each in one batch, and the forward pass stops at the
layer.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from cnnzoo.errors import ConfigError
from cnnzoo.visualize.layers import resolve_layers

CLASSES = "classes"  # the --layer that means the output layer, one image per class

# Luminance and two colour-opponent axes (orthonormal): channel mixing for 3-channel images.
OPPONENT = torch.tensor(
    [
        [1 / math.sqrt(3), 1 / math.sqrt(2), 1 / math.sqrt(6)],
        [1 / math.sqrt(3), 0.0, -2 / math.sqrt(6)],
        [1 / math.sqrt(3), -1 / math.sqrt(2), 1 / math.sqrt(6)],
    ]
)


@dataclass(frozen=True)
class Settings:
    """How hard to look; the defaults finish a whole lenet5 or alexnet_small layer in seconds on 2
    cores.
    """

    steps: int = 128  # Adam steps; the images change little after about 100 at 28–32 px
    lr: float = 0.05  # on the spectrum's coefficients, which the 1/f scaling makes comparable
    jitter: float = 0.08  # random shift, as a fraction of the side (±2 px at 28 px)
    scale: float = 0.1  # random zoom in [1 − scale, 1 + scale]
    degrees: float = 10.0  # random rotation in [−degrees, degrees]
    tv: float = 0.05  # total-variation weight, relative to the objective
    # weight of |pixel − the data set's mean|, relative to the objective: keeps the background plain
    l1: float = 1.0
    decay: float = 1.0  # the spectrum's amplitude falls as 1/frequency^decay
    batch: int = 128  # images optimised together
    seed: int = 0


class _Reached(Exception):
    """Raised by the hook at the layer being maximised: nothing after it needs computing."""


def _frequency_scale(side: int, decay: float) -> torch.Tensor:
    """1/|f|^decay for the half spectrum of an image side×side (|f| at least one cycle per image).
    """
    fy = torch.fft.fftfreq(side)[:, None]
    fx = torch.fft.rfftfreq(side)[None, :]
    return 1.0 / torch.sqrt(fx**2 + fy**2).clamp_min(1.0 / side) ** decay


class SpectrumImage(nn.Module):
    """``count`` images of ``channels``×side×side in [0, 1], parameterised by a scaled,
    colour-decorrelated spectrum (see the module docstring); ``forward()`` gives the pixels.
    """

    def __init__(
        self,
        count: int,
        channels: int,
        side: int,
        *,
        decay: float,
        generator: torch.Generator,
        start: torch.Tensor | None = None,
    ):
        super().__init__()
        # the signal starts where sigmoid gives ``start`` (the data set's mean colour), not mid-grey
        start = (
            torch.full((1, channels, 1, 1), 0.5)
            if start is None
            else start.reshape(1, channels, 1, 1)
        )
        self.register_buffer("offset", torch.logit(start.clamp(0.05, 0.95)), persistent=False)
        shape = (count, channels, side, side // 2 + 1, 2)
        self.spectrum = nn.Parameter(0.01 * torch.randn(shape, generator=generator))
        # scaled so its inverse FFT has a standard deviation near 1 at any side ("ortho" norm)
        scale = _frequency_scale(side, decay)
        self.register_buffer("scale", scale / scale.square().mean().sqrt(), persistent=False)
        self.side = side

    def forward(self) -> torch.Tensor:
        spectrum = torch.view_as_complex(self.spectrum) * self.scale
        signal = torch.fft.irfft2(spectrum, s=(self.side, self.side), norm="ortho")
        if signal.shape[1] == 3:  # opponent axes → RGB
            signal = torch.einsum("nchw,rc->nrhw", signal, OPPONENT)
        return torch.sigmoid(signal + self.offset)


def random_transform(
    images: torch.Tensor, settings: Settings, generator: torch.Generator
) -> torch.Tensor:
    """Each image shifted, zoomed and rotated at random (one affine warp, reflected at the borders).
    """
    n = images.shape[0]

    def uniform(low: float, high: float) -> torch.Tensor:
        return low + (high - low) * torch.rand(n, generator=generator)

    angle = torch.deg2rad(uniform(-settings.degrees, settings.degrees))
    zoom = uniform(1 - settings.scale, 1 + settings.scale)
    shift = (
        2 * settings.jitter * torch.stack([uniform(-1, 1), uniform(-1, 1)], 1)
    )  # in [−1, 1] coordinates
    cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
    theta = torch.stack(
        [torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1
    )
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    return F.grid_sample(
        images, grid, mode="bilinear", padding_mode="reflection", align_corners=False
    )


def total_variation(images: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference between neighbouring pixels, per image: (N,)."""
    dy = (images[..., 1:, :] - images[..., :-1, :]).abs().flatten(1).mean(1)
    dx = (images[..., :, 1:] - images[..., :, :-1]).abs().flatten(1).mean(1)
    return dy + dx


def unit_values(output: torch.Tensor) -> torch.Tensor:
    """What is maximised for each unit of a layer's output: a channel's mean over the map, or an FC
    unit's value: (N, units).
    """
    return output.flatten(2).mean(2) if output.dim() > 2 else output


def layer_values(
    model: nn.Module, x: torch.Tensor, path: str | None, *, slope: float = 0.0
) -> torch.Tensor:
    """``unit_values`` at module ``path`` (the logits when None), the forward pass stopped there. At
    a ReLU the value is taken from its input as ``leaky_relu(z, slope)``: with ``slope`` 0 exactly
    the ReLU's output; the optimisation uses 1 (the pre-activation, as Olah et al. do), since a unit
    that is off everywhere, as many are on the starting image, has no gradient after its ReLU.
    """
    if path is None:
        return model(x)
    module = dict(model.named_modules())[path]
    captured = {}

    def stop(module, inputs, output=None):
        captured["output"] = inputs[0] if is_relu else output
        raise _Reached

    is_relu = isinstance(module, nn.ReLU)
    handle = (
        module.register_forward_pre_hook(stop) if is_relu else module.register_forward_hook(stop)
    )
    try:
        model(x)
    except _Reached:
        pass
    finally:
        handle.remove()
    output = F.leaky_relu(captured["output"], slope) if is_relu else captured["output"]
    return unit_values(output)


def resolve_target(model: nn.Module, layer: str | None) -> tuple[str, str | None, int]:
    """(name, module path or None for the logits, number of units) of what ``--layer`` names."""
    c, side, _ = model.cfg.input_size
    if layer in (None, CLASSES):
        return CLASSES, None, model.cfg.num_classes
    try:
        path = resolve_layers(model, [layer])[layer]
    except ConfigError as error:
        raise ConfigError(f"{error}, or {CLASSES!r} for the output layer") from None
    with torch.no_grad():
        units = layer_values(model, torch.zeros(1, c, side, side), path).shape[1]
    return layer, path, units


def unit_labels(classes: list[str], result: dict) -> list[str]:
    """What each synthesised image is called: its class for the output layer, else "unit N"."""
    if result["layer"] == CLASSES:
        return [classes[u] for u in result["units"]]
    return [f"unit {u}" for u in result["units"]]


def _normaliser(mean: list[float], std: list[float]) -> Callable[[torch.Tensor], torch.Tensor]:
    mean_t, std_t = torch.tensor(mean).view(1, -1, 1, 1), torch.tensor(std).view(1, -1, 1, 1)

    def normalise(pixels: torch.Tensor) -> torch.Tensor:
        return (pixels - mean_t) / std_t

    normalise.mean = mean_t
    return normalise


def _optimise(
    model: nn.Module,
    path: str | None,
    units: list[int],
    normalise,
    settings: Settings,
    generator: torch.Generator,
    tick: Callable[[], None],
) -> torch.Tensor:
    """Images (len(units), C, s, s) in [0, 1], each maximising its own unit."""
    c, side, _ = model.cfg.input_size
    image = SpectrumImage(
        len(units), c, side, decay=settings.decay, generator=generator, start=normalise.mean
    )
    optimiser = torch.optim.Adam(image.parameters(), lr=settings.lr)
    rows = torch.arange(len(units))
    background = normalise.mean
    for _ in range(settings.steps):
        pixels = image()
        values = layer_values(
            model, normalise(random_transform(pixels, settings, generator)), path, slope=1.0
        )
        objective = values[rows, units]
        # penalties scaled by the objective's size, so one weight suits layers of any magnitude
        size = objective.detach().abs().clamp_min(1e-3)
        penalty = settings.tv * total_variation(pixels) * side + settings.l1 * (
            pixels - background
        ).abs().flatten(1).mean(1)
        loss = (size * penalty - objective).sum()
        optimiser.zero_grad(set_to_none=True)
        (gradient,) = torch.autograd.grad(loss, [image.spectrum])
        image.spectrum.grad = gradient
        optimiser.step()
        tick()
    with torch.no_grad():
        return image()


def synthesise(
    model: nn.Module,
    layer: str | None,
    *,
    mean: list[float],
    std: list[float],
    units: list[int] | None = None,
    settings: Settings = Settings(),
    tick: Callable[[], None] = lambda: None,
) -> dict:
    """Activation maximisation for ``units`` (default: all) of ``layer`` (a stage name, a module
    path, or ``"classes"``/None for the logits): {"layer", "module", "units", "images": uint8 (N, C,
    s, s), "values": each unit's value on its own saved image}. ``tick`` is called once per
    optimisation step of each batch.
    """
    name, path, count = resolve_target(model, layer)
    chosen = list(range(count)) if units is None else units
    bad = [u for u in chosen if not 0 <= u < count]
    if bad:
        raise ConfigError(f"{name} has units 0…{count - 1}; there is no unit {bad[0]}")
    generator = torch.Generator().manual_seed(settings.seed)
    normalise = _normaliser(mean, std)
    was_training = model.training
    model.eval()
    try:
        batches = [chosen[i : i + settings.batch] for i in range(0, len(chosen), settings.batch)]
        pixels = torch.cat(
            [_optimise(model, path, b, normalise, settings, generator, tick) for b in batches]
        )
        images = (pixels * 255).round().to(torch.uint8)  # what is saved, and so what is measured
        with torch.no_grad():
            values = layer_values(model, normalise(images.float() / 255), path)[
                torch.arange(len(chosen)), chosen
            ]
    finally:
        model.train(was_training)
    return {
        "layer": name,
        "module": path or "logits",
        "units": chosen,
        "images": images,
        "values": values,
    }


@torch.no_grad()
def dataset_statistics(model: nn.Module, path: str | None, x_batches, units: list[int]) -> dict:
    """Each unit's mean and maximum of ``unit_values`` over model inputs (an iterable of batches).
    """
    model.eval()
    values = torch.cat([layer_values(model, x, path)[:, units] for x in x_batches])
    return {"mean": values.mean(0), "max": values.amax(0), "images": len(values)}


def grid_columns(count: int) -> int:
    """As many columns as ``show filters`` gives the same number of kernels, so units sit where they
    do there.
    """
    return math.ceil(math.sqrt(count * 1.5))


def as_drawable(images: torch.Tensor) -> np.ndarray:
    """uint8 (N, C, s, s) to (N, s, s, 3) floats in [0, 1] (grey repeated)."""
    tiles = images.float().div(255).permute(0, 2, 3, 1).numpy()
    return np.repeat(tiles, 3, axis=-1) if tiles.shape[-1] == 1 else tiles


def draw_features(result: dict, *, labels: list[str], title: str, stats: dict | None = None):
    """The synthesised images in ``show filters``' order, each titled with its label and its value
    on its own image (and the test set's maximum, when known); a single mosaic past 48 units.
    """
    from cnnzoo.visualize.drawing import grid_figure, hide_unused, mosaic, show_image

    tiles, count = as_drawable(result["images"]), len(result["units"])
    columns = grid_columns(count)
    if count > 48:
        figure, axes = grid_figure(1, 1, cell=min(0.5 * columns, 12.0), extra_height=0.8)
        show_image(
            axes[0][0],
            mosaic(tiles, columns=columns, gap=max(1, tiles.shape[1] // 8)),
            title=f"{count} units, row by row",
        )
    else:
        rows = math.ceil(count / columns)
        figure, axes = grid_figure(rows, columns, cell=1.3, extra_height=0.9)
        flat = list(np.ravel(axes))
        for index, (ax, tile) in enumerate(zip(flat, tiles, strict=False)):
            value = f"{float(result['values'][index]):.3g}"
            if stats is not None:
                value += f" (test max {float(stats['max'][index]):.3g})"
            show_image(ax, tile, title=f"{labels[index]}\n{value}", fontsize=6.5)
        hide_unused(axes, count)
    figure.suptitle(title, fontsize=10)
    return figure
