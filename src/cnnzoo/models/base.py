"""What every cnnzoo model shares: a default configuration, input checks, and one small surface.

Every model is a ``ZooModel``: ``forward(x) == forward_head(forward_features(x))``, so feature
extraction, inspection and training treat all families alike. ``forward_features`` returns the last
spatial feature map (N, C, H, W) where there is one; ``forward_head`` pools, flattens and
classifies; ``training_loss(outputs, targets)`` is the loss the model is trained on, given what
``forward`` returned in training mode.

Every builder takes ``input_size`` (the square side): ``check_fixed_side`` refuses any other side
for the networks whose head cannot be re-sized, ``check_min_side`` refuses sides the convolutions
would shrink to nothing; both raise ``InputShapeError`` with a one-line message.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from cnnzoo.errors import InputShapeError

# Channel statistics used when a model is built without a dataset to measure them from.
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
FASHION_MNIST_MEAN, FASHION_MNIST_STD = (0.2860,), (0.3530,)


def parameter_count(model: nn.Module) -> int:
    """The one parameter count every view shows (`cnnzoo list`, `summary`, `recipes`, a run's
    log, docs/results.md): the trainable parameters, as the papers count them. LeNet-5's 60,000
    leaves out its 840 fixed RBF prototypes; a budget network's whitening layer is fitted to the
    images, not learnt."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def default_normalisation(in_channels: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """ImageNet's statistics for 3 channels, Fashion-MNIST's for one, 0.5/0.5 otherwise."""
    if in_channels == 3:
        return IMAGENET_MEAN, IMAGENET_STD
    if in_channels == 1:
        return FASHION_MNIST_MEAN, FASHION_MNIST_STD
    return (0.5,) * in_channels, (0.5,) * in_channels


@dataclass(frozen=True)
class ModelConfig:
    """A built model's defaults: what it takes, how to normalise it, what it came from."""

    name: str
    input_size: tuple[int, int, int]  # (C, H, W) the model is built for
    num_classes: int
    # smallest square side it can be built for (the output-size formula gives ≥ 1 everywhere)
    min_size: int
    # True when the head is sized for exactly input_size (flatten into FC layers)
    fixed_size: bool = False
    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()
    # False when the builder cannot re-size the head (the papers' fixed networks)
    resizable: bool = True
    small_variant: str | None = None  # the registered name to suggest for 28–32 px images
    paper: str = ""

    def __post_init__(self) -> None:
        if not self.mean:
            mean, std = default_normalisation(self.input_size[0])
            object.__setattr__(self, "mean", mean)
            object.__setattr__(self, "std", std)


def _small_hint(small_variant: str | None) -> str:
    return f" Use {small_variant} for 28–32 px images." if small_variant else ""


def check_fixed_side(name: str, input_size: int, side: int,
                     small_variant: str | None = None) -> None:
    """Raise ``InputShapeError`` unless ``input_size == side``: for networks whose head is sized for
    one side."""
    if input_size != side:
        raise InputShapeError(f"{name} takes {side}×{side} images only (its fully connected head "
                              "is sized for them); got "
                              f"input_size={input_size}.{_small_hint(small_variant)}")


def check_min_side(name: str, input_size: int, min_size: int, small_variant: str | None = None,
                   reason: str = "") -> None:
    """Raise ``InputShapeError`` if ``input_size`` is below ``min_size`` (``reason`` says why, if
    not obvious)."""
    if input_size < min_size:
        raise InputShapeError(f"{name} needs images of at least {min_size}×{min_size}{reason}; got "
                              f"input_size={input_size}.{_small_hint(small_variant)}")


def check_input(cfg: ModelConfig, x: torch.Tensor) -> None:
    """Raise ``InputShapeError`` unless ``x`` is an (N, C, H, W) batch this model can take."""
    channels = cfg.input_size[0]
    side = cfg.input_size[1]
    if x.dim() != 4:
        raise InputShapeError(
            f"{cfg.name} takes a batch of images shaped (N, C, H, W); got a {x.dim()}-d tensor of "
            f"shape {tuple(x.shape)}. Add the batch dimension with x.unsqueeze(0)."
        )
    n, c, h, w = x.shape
    if c != channels:
        raise InputShapeError(
            f"{cfg.name} was built for {channels}-channel input; got {c} channels (shape "
            f"{tuple(x.shape)}). Convert the images "
            f"({'repeat the grey channel' if c == 1 else 'average to grey'}) or build the model "
            f"with in_channels={c}."
        )
    if cfg.fixed_size and (h, w) != tuple(cfg.input_size[1:]):
        raise InputShapeError(
            f"{cfg.name} takes exactly {side}×{cfg.input_size[2]} images (its fully connected head "
            f"is sized for them); got {h}×{w}. Resize or pad the images to "
            f"{side}×{cfg.input_size[2]}"
            + (f", or build it with input_size={h}" if cfg.resizable else "")
            + (f", or use {cfg.small_variant}" if cfg.small_variant else "")
            + "."
        )
    if min(h, w) < cfg.min_size:
        hint = (
            f", or use {cfg.small_variant}, made for 28–32 px images" if cfg.small_variant else ""
        )
        raise InputShapeError(
            f"{cfg.name} needs images of at least {cfg.min_size}×{cfg.min_size}; got {h}×{w}, "
            "which its convolutions and poolings would shrink to nothing. Resize or pad the "
            f"images{hint}."
        )


class ZooModel(nn.Module):
    """Base of every registered model. Subclasses set ``self.cfg`` and either define ``features``
    and ``classifier`` submodules or override ``forward_features`` / ``forward_head``."""

    cfg: ModelConfig
    fits_to_data = False  # True where fit_to_data derives something from the training images

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(x)

    def forward(self, x: torch.Tensor):
        check_input(self.cfg, x)
        return self.forward_head(self.forward_features(x))

    def fit_to_data(self, images: torch.Tensor) -> None:
        """Set what the model derives from its training data, given normalised training images (N,
        C, H, W), before training starts (where ``fits_to_data``; ``budgetnet_*`` fit their
        whitening layer)."""

    def training_loss(
        self, outputs, targets: torch.Tensor, *, label_smoothing: float = 0.0
    ) -> torch.Tensor:
        """The loss this model trains on, given what ``forward`` returned in training mode:
        cross-entropy, computed in float32 so that half-precision logits keep their small
        probabilities."""
        return F.cross_entropy(outputs.float(), targets, label_smoothing=label_smoothing)
