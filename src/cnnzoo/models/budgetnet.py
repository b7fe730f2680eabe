"""Budget networks: small convolutional networks designed for a training-time budget on a CPU.

Not from one paper. They were designed, by timing candidates on a 2-core CPU, for the ``fast`` and
``balanced`` recipes (≥ 91% on Fashion-MNIST in 30 s, ≥ 93% in 2 min), taking their ideas from
Keller Jordan's airbench (2024), which trains CIFAR-10 networks in seconds on a GPU:

- **A frozen patch-whitening first layer.** Its filters are the eigenvectors of the covariance of
  the training images' k×k patches, each divided by the square root of its eigenvalue, and their
  negatives (so that the ReLU after it keeps both signs): every output channel is a decorrelated,
  unit-variance view of the patch. They are computed from the data once, before training
  (``fit_to_data``), and never trained, so the one layer that runs at full resolution needs no
  backward pass; on a 2-core CPU that backward was the largest cost of a step.
- **Pool early, normalise after pooling.** A 2×2 max-pool follows the whitening at once; in later
  stages the pool comes between the convolution and its BatchNorm, which then normalises a quarter
  of the values.
- **A global max-pool and a bias-free linear classifier whose logits are scaled by 1/8**, a fixed
  temperature that lets the recipes use large learning rates.

Layout at 28×28 (``widths=(a, b, c)``): whitening 3×3 → 2·C·9 maps, ReLU, pool (14×14); conv a, BN,
ReLU, pool (7×7); conv b, pool (3×3), BN, ReLU; conv c, BN, ReLU; global max-pool; linear.
``budgetnet_s`` is (24, 48, 96), ``budgetnet_m`` (32, 64, 128) and ``budgetnet_l`` (64, 128, 256).
``depths=(p, q, r)`` gives the three stages p, q and r convolutions (one each by default): the
added ones keep their stage's width and resolution (conv, BN, ReLU), as in airbench's blocks of two.
``full_resolution=True`` moves the first pool after stage 1's first convolution, between it and its
BatchNorm as in stage 2: that convolution then sees the whitened image at 28×28, as airbench's
first block sees its 32×32 images, for four times its multiply-adds (budgetnet_l with depths
(2, 1, 1): 21.8 M an image instead of 15.7 M).
Until ``fit_to_data`` runs (the training engine calls it with a sample of the normalised training
images) the whitening filters are random.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn

from cnnzoo.errors import ConfigError
from cnnzoo.layers.initialisation import on_meta
from cnnzoo.models.base import ModelConfig, ZooModel, check_min_side
from cnnzoo.models.registry import register_model

LOGIT_SCALE = 1 / 8
MIN_SIDE = 8  # three 2×2 pools: 8 -> 4 -> 2 -> 1
# patches unfolded at once while fitting the whitening (≈ 70 MB for 3×3 grey)
PATCHES_PER_CHUNK = 1_000_000


def patch_covariance(images: torch.Tensor, kernel_size: int) -> torch.Tensor:
    """The covariance (C·k², C·k²) of the k×k patches of ``images`` (N, C, H, W), in float64,
    accumulated a few images at a time so that large images never hold all their patches in memory
    at once."""
    size = images.shape[1] * kernel_size ** 2
    per_image = max(1, (images.shape[-2] - kernel_size + 1) * (images.shape[-1] - kernel_size + 1))
    total = torch.zeros(size, dtype=torch.float64)
    products = torch.zeros(size, size, dtype=torch.float64)
    for part in images.split(max(1, PATCHES_PER_CHUNK // per_image)):
        patches = F.unfold(part.double(), kernel_size).transpose(1, 2).reshape(-1, size)
        total += patches.sum(0)
        products += patches.T @ patches
    count = len(images) * per_image
    mean = total / count
    return products / count - torch.outer(mean, mean)


def patch_whitening(images: torch.Tensor, kernel_size: int, eps: float = 5e-4) -> torch.Tensor:
    """Filters (C·k², C, k, k) that whiten the k×k patches of ``images`` (N, C, H, W): the
    eigenvectors of the patch covariance, largest eigenvalue first, each divided by √(eigenvalue +
    ``eps``)."""
    channels = images.shape[1]
    # ascending
    eigenvalues, eigenvectors = torch.linalg.eigh(patch_covariance(images.cpu(), kernel_size))
    filters = eigenvectors.T / torch.sqrt(eigenvalues.clamp(min=0) + eps)[:, None]
    return filters.flip(0).reshape(-1, channels, kernel_size, kernel_size).float()


class PatchWhitening(nn.Conv2d):
    """A k×k 'same' convolution whose filters are ``patch_whitening``'s and their negatives, fitted
    once by ``fit`` and frozen (weight and bias are not trained)."""

    def __init__(self, in_channels: int, kernel_size: int = 3) -> None:
        super().__init__(in_channels, 2 * in_channels * kernel_size ** 2, kernel_size,
                         padding=kernel_size // 2)
        self.requires_grad_(False)

    @torch.no_grad()
    def fit(self, images: torch.Tensor) -> None:
        filters = patch_whitening(images, self.kernel_size[0]).to(self.weight)
        self.weight.copy_(torch.cat([filters, -filters]))
        self.bias.zero_()


def _conv_bn_relu(
    cin: int, cout: int, *, pool_before_norm: bool = False
) -> OrderedDict[str, nn.Module]:
    layers: OrderedDict[str, nn.Module] = OrderedDict(conv=nn.Conv2d(cin, cout, 3, padding=1,
                                                                     bias=False))
    if pool_before_norm:
        layers["pool"] = nn.MaxPool2d(2)
    layers["bn"] = nn.BatchNorm2d(cout)
    layers["relu"] = nn.ReLU(inplace=True)
    return layers


def _stage(cin: int, cout: int, depth: int, *,
           pool_before_norm: bool = False) -> OrderedDict[str, nn.Module]:
    """A stage of ``depth`` convolutions: the first changes the width (and pools, when asked), the
    others (conv2, bn2, relu2, ...) keep it and the resolution."""
    layers = _conv_bn_relu(cin, cout, pool_before_norm=pool_before_norm)
    for i in range(2, depth + 1):
        layers.update((f"{key}{i}", layer) for key, layer in _conv_bn_relu(cout, cout).items())
    return layers


class BudgetNet(ZooModel):
    fits_to_data = True

    def __init__(self, *, name: str, num_classes: int, in_channels: int, input_size: int,
                 widths: tuple[int, int, int], depths: tuple[int, int, int],
                 full_resolution: bool = False) -> None:
        super().__init__()
        widths, depths = tuple(widths), tuple(depths)
        for option, values in (("widths", widths), ("depths", depths)):
            if len(values) != 3 or any(not isinstance(v, int) or v < 1 for v in values):
                raise ConfigError(f"{name}: {option} must be three positive whole numbers; got "
                                  f"{values!r}")
        if not isinstance(full_resolution, bool):
            raise ConfigError(f"{name}: full_resolution must be true or false; got "
                              f"{full_resolution!r}")
        check_min_side(name, input_size, MIN_SIDE, reason=" (three 2×2 poolings)")
        self.cfg = ModelConfig(name, (in_channels, input_size, input_size), num_classes,
                               min_size=MIN_SIDE,
                               paper="a budget design after Jordan, 2024, airbench")
        a, b, c = widths
        whitening = PatchWhitening(in_channels)
        stem: OrderedDict[str, nn.Module] = OrderedDict(whitening=whitening,
                                                        relu=nn.ReLU(inplace=True))
        if not full_resolution:
            stem["pool"] = nn.MaxPool2d(2)
        self.features = nn.Sequential(OrderedDict(
            **stem,
            stage1=nn.Sequential(_stage(whitening.out_channels, a, depths[0],
                                        pool_before_norm=full_resolution)),
            pool1=nn.MaxPool2d(2),
            stage2=nn.Sequential(_stage(a, b, depths[1], pool_before_norm=True)),
            stage3=nn.Sequential(_stage(b, c, depths[2])),
        ))
        self.classifier = nn.Sequential(OrderedDict(pool=nn.AdaptiveMaxPool2d(1),
                                                    flatten=nn.Flatten(),
                                                    fc=nn.Linear(c, num_classes, bias=False)))
        if not on_meta(self):
            for m in self.modules():
                if isinstance(m, nn.Conv2d) and not isinstance(m, PatchWhitening):
                    nn.init.kaiming_normal_(m.weight, nonlinearity="relu")

    def fit_to_data(self, images: torch.Tensor) -> None:
        """Fit the whitening filters to normalised training images (N, C, H, W); a few thousand
        suffice."""
        self.features.whitening.fit(images)

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(x) * LOGIT_SCALE


@register_model
def budgetnet_s(*, num_classes: int = 10, in_channels: int = 1, input_size: int = 28,
                widths: tuple[int, int, int] = (24, 48, 96),
                depths: tuple[int, int, int] = (1, 1, 1),
                full_resolution: bool = False) -> BudgetNet:
    """Budget network, 24-48-96 wide: the ``fast`` recipe's (≥ 91% in 30 s on 2 cores)."""
    return BudgetNet(name="budgetnet_s", num_classes=num_classes, in_channels=in_channels,
                     input_size=input_size, widths=widths, depths=depths,
                     full_resolution=full_resolution)


@register_model
def budgetnet_m(*, num_classes: int = 10, in_channels: int = 1, input_size: int = 28,
                widths: tuple[int, int, int] = (32, 64, 128),
                depths: tuple[int, int, int] = (1, 1, 1),
                full_resolution: bool = False) -> BudgetNet:
    """Budget network, 32-64-128 wide: the ``balanced`` recipe's (≥ 93% in 2 min on 2 cores)."""
    return BudgetNet(name="budgetnet_m", num_classes=num_classes, in_channels=in_channels,
                     input_size=input_size, widths=widths, depths=depths,
                     full_resolution=full_resolution)


@register_model
def budgetnet_l(*, num_classes: int = 10, in_channels: int = 1, input_size: int = 28,
                widths: tuple[int, int, int] = (64, 128, 256),
                depths: tuple[int, int, int] = (1, 1, 1),
                full_resolution: bool = False) -> BudgetNet:
    """Budget network, 64-128-256 wide: the ``strong`` and ``best`` recipes' (depths 2, 1, 1)."""
    return BudgetNet(name="budgetnet_l", num_classes=num_classes, in_channels=in_channels,
                     input_size=input_size, widths=widths, depths=depths,
                     full_resolution=full_resolution)
