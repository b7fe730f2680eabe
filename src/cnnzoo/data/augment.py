"""Batch-wise augmentation on tensors, the papers' recipes, reproducible from an explicit generator.

Everything works on a whole (N, C, H, W) batch at once: on a CPU one indexing operation for 256
images is far cheaper than 256 per-image calls. Every random draw comes from the ``torch.Generator``
passed in, never from the global RNG, so a run seeded once gives the same crops and flips every
time, and the model's own randomness (dropout) does not shift the data's.

The pieces: ``to_float``, ``resize``, ``center_crop``, ``random_crop`` (zero padding, per-image
offsets), ``random_flip`` (horizontal) and ``flip_where`` with ``flip_coins`` and
``alternating_flips`` (airbench's flips: each image mirrored every other epoch), ``pca_lighting``
with ``rgb_pca`` (AlexNet's colour noise), ``normalize`` and ``cutout``. ``TrainAugment`` composes
them the way the engine trains; the test-time views are in ``cnnzoo.data.views``.

A horizontal flip changes nothing about what a T-shirt or a car is, but it does about digits (a
flipped 2 or 7 is not a digit), so the caller decides: recipes turn ``flip`` on for CIFAR,
Fashion-MNIST and photos, and leave it off for MNIST.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

Size = int | tuple[int, int]


def side_pair(size: Size) -> tuple[int, int]:
    """(height, width) of a side given as one int or a pair."""
    return (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))


def check_batch(x: torch.Tensor, what: str) -> None:
    """Refuse anything but an (N, C, H, W) batch, naming the function ``what``."""
    if x.dim() != 4:
        raise ValueError(f"{what} takes an (N, C, H, W) batch; got shape {tuple(x.shape)}. Use "
                         "x.unsqueeze(0) for one image.")


def to_float(x: torch.Tensor) -> torch.Tensor:
    """uint8 images in 0..255 → float32 in [0, 1]; a floating tensor is returned unchanged."""
    if x.dtype == torch.uint8:
        return x.to(torch.float32).div_(255.0)
    if x.is_floating_point():
        return x
    raise TypeError(f"to_float expects uint8 or floating images; got {x.dtype}")


def resize(x: torch.Tensor, size: Size) -> torch.Tensor:
    """Bilinear resize of a batch to ``size`` (antialiased when shrinking, so no aliasing of fine
    detail).

    A uint8 batch is resized in float and rounded back to uint8.
    """
    check_batch(x, "resize")
    height, width = side_pair(size)
    if (height, width) == tuple(x.shape[-2:]):
        return x
    shrinking = height < x.shape[-2] or width < x.shape[-1]
    floats = x.float() if x.dtype == torch.uint8 else x
    out = F.interpolate(floats, size=(height, width), mode="bilinear", align_corners=False,
                        antialias=shrinking)
    return out.round_().clamp_(0, 255).to(torch.uint8) if x.dtype == torch.uint8 else out


def center_crop(x: torch.Tensor, size: Size) -> torch.Tensor:
    """The central ``size`` window of every image (a view)."""
    check_batch(x, "center_crop")
    height, width = side_pair(size)
    spare_h, spare_w = offsets_within(x, height, width, "center_crop")
    top, left = spare_h // 2, spare_w // 2
    return x[..., top : top + height, left : left + width]


def offsets_within(x: torch.Tensor, height: int, width: int, what: str) -> tuple[int, int]:
    """The room left for a crop window (H - height, W - width), checking the window fits."""
    spare_h, spare_w = x.shape[-2] - height, x.shape[-1] - width
    if spare_h < 0 or spare_w < 0:
        raise ValueError(
            f"{what}: a {height}×{width} window does not fit in {x.shape[-2]}×{x.shape[-1]} "
            "images; resize them first or crop smaller"
        )
    return spare_h, spare_w


def random_crop(
    x: torch.Tensor, size: Size, padding: int = 0, generator: torch.Generator | None = None
) -> torch.Tensor:
    """A random ``size`` window of every image, after zero-padding each side by ``padding``.

    Each image gets its own offset. The batch is padded once; ``unfold`` then views every possible
    window of every image without copying, and one advanced-indexing operation picks each image's
    window (no loop over images). The output is always exactly ``size``, with the input's dtype.
    """
    check_batch(x, "random_crop")
    height, width = side_pair(size)
    padded = F.pad(x, (padding,) * 4) if padding else x
    spare_h, spare_w = offsets_within(padded, height, width, "random_crop")
    if spare_h == 0 and spare_w == 0:
        return padded
    count = x.shape[0]
    tops = torch.randint(0, spare_h + 1, (count,), generator=generator).to(x.device)
    lefts = torch.randint(0, spare_w + 1, (count,), generator=generator).to(x.device)
    # (N, C, spare_h + 1, spare_w + 1, h, w), a view
    windows = padded.unfold(2, height, 1).unfold(3, width, 1)
    return windows[torch.arange(count, device=x.device), :, tops, lefts].contiguous()


def random_flip(
    x: torch.Tensor, generator: torch.Generator | None = None, p: float = 0.5
) -> torch.Tensor:
    """Mirror each image left-right with probability ``p`` (one draw per image, whatever ``p``)."""
    check_batch(x, "random_flip")
    return flip_where(x, torch.rand(x.shape[0], generator=generator) < p)


def cutout(x: torch.Tensor, size: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Zero a ``size``×``size`` square of every image (DeVries & Taylor, 2017, Cutout), centred on a
    random pixel of its own, so that near the border part of the square falls outside the image.
    Applied after normalising, zero is the training set's mean."""
    check_batch(x, "cutout")
    count, height, width = x.shape[0], x.shape[-2], x.shape[-1]
    rows = torch.randint(0, height, (count, 1, 1), generator=generator).to(x.device)
    cols = torch.randint(0, width, (count, 1, 1), generator=generator).to(x.device)
    start = size // 2
    ys = torch.arange(height, device=x.device)[None, :, None] - rows + start
    xs = torch.arange(width, device=x.device)[None, None, :] - cols + start
    inside = (ys >= 0) & (ys < size) & (xs >= 0) & (xs < size)  # (N, H, W)
    return x.masked_fill(inside[:, None], 0)


def flip_where(x: torch.Tensor, mirror: torch.Tensor) -> torch.Tensor:
    """Mirror left-right the images whose entry of the (N,) bool ``mirror`` is true."""
    check_batch(x, "flip_where")
    if mirror.shape != (x.shape[0],):
        raise ValueError(f"flip_where needs one bool per image: {x.shape[0]} images but a mask of "
                         f"shape {tuple(mirror.shape)}")
    return torch.where(mirror.to(x.device)[:, None, None, None], x.flip(-1), x)


def flip_coins(count: int, seed: int) -> torch.Tensor:
    """(count,) bool: one fixed coin per image of a training set, for ``alternating_flips``.

    The coins depend on ``seed`` and the image's index only, never on an epoch or a batch, so a
    resumed or a sharded run gives each image the coin an uninterrupted single process would. They
    are drawn from a generator of their own, seeded from a hash of ``seed``: the run's data order is
    drawn from ``seed`` itself, and sharing its stream could tie an image's coin to its place in
    the first epoch's order.
    """
    digest = hashlib.blake2b(f"cnnzoo flip coins {seed}".encode(), digest_size=8).digest()
    generator = torch.Generator().manual_seed(int.from_bytes(digest, "little") >> 1)
    return torch.rand(count, generator=generator) < 0.5


def alternating_flips(coins: torch.Tensor, epoch: int) -> torch.Tensor:
    """Which images to mirror in ``epoch`` (counted from 0): those whose coin differs from whether
    the epoch is odd. Each image is thus mirrored in every other epoch, half of them starting with
    the first (Keller Jordan's airbench, 2024): over two epochs the model sees every image both
    ways, where fresh coins show a quarter of them unmirrored twice and a quarter mirrored
    twice."""
    return coins ^ bool(epoch % 2)


def normalize(x: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """(x - mean) / std per channel, for a float batch."""
    check_batch(x, "normalize")
    if len(mean) != x.shape[1] or len(std) != x.shape[1]:
        raise ValueError(
            f"normalize: {x.shape[1]}-channel images need {x.shape[1]} means and stds; got "
            f"{len(mean)} and {len(std)}. Use the statistics of a data set with the same channels."
        )
    mean_t = torch.as_tensor(mean, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    std_t = torch.as_tensor(std, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    return (x - mean_t) / std_t


def rgb_pca(
    images: torch.Tensor, max_pixels: int = 1_000_000, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Eigenvalues (3,) descending and eigenvectors (3, 3), one per column, of the RGB pixel
    covariance.

    Computed on the [0, 1] scale from at most ``max_pixels`` pixels drawn at random (from
    ``generator``, or a fixed seed, so the result is reproducible): AlexNet's statistics, for
    ``pca_lighting``.
    """
    check_batch(images, "rgb_pca")
    if images.shape[1] != 3:
        raise ValueError(f"rgb_pca needs RGB images; got {images.shape[1]} channels. PCA lighting "
                         "is for colour data.")
    pixels = images.permute(0, 2, 3, 1).reshape(-1, 3)
    if len(pixels) > max_pixels:
        if generator is None:
            generator = torch.Generator().manual_seed(0)
        chosen = torch.randint(0, len(pixels), (max_pixels,), generator=generator).to(pixels.device)
        pixels = pixels[chosen]
    pixels = to_float(pixels).double()
    covariance = torch.cov(pixels.T)
    eigvals, eigvecs = torch.linalg.eigh(covariance)  # ascending
    return eigvals.flip(0).clamp_(min=0).float(), eigvecs.flip(1).float()


def pca_lighting(
    x: torch.Tensor,
    eigvals: torch.Tensor,
    eigvecs: torch.Tensor,
    std: float = 0.1,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """AlexNet's colour noise: add ``Σ_i α_i λ_i p_i`` to every pixel of an image, α_i ~ N(0, std²)
    per image.

    ``eigvals`` (λ) and ``eigvecs`` (columns p_i) come from ``rgb_pca``. The shift is the same for
    all the pixels of an image, so it changes the colour and brightness of the lighting, not the
    objects.
    """
    check_batch(x, "pca_lighting")
    if x.shape[1] != 3:
        raise ValueError(f"pca_lighting needs RGB images; got {x.shape[1]} channels")
    alphas = torch.randn(x.shape[0], 3, generator=generator).to(device=x.device,
                                                                dtype=x.dtype) * std
    values = eigvals.to(device=x.device, dtype=x.dtype)
    vectors = eigvecs.to(device=x.device, dtype=x.dtype)
    offsets = (alphas * values) @ vectors.T  # row n: Σ_i α_ni λ_i p_i
    return x + offsets[:, :, None, None]


# ---------------------------------------------------------------------------------------- pipelines


def check_statistics(mean: Sequence[float] | None, std: Sequence[float] | None) -> None:
    """Refuse a mean without a std (or the reverse) and a std that is not positive."""
    if (mean is None) != (std is None):
        raise ValueError("give both mean and std (to normalise) or neither")
    if std is not None and any(s <= 0 for s in std):
        raise ValueError(f"std values must be positive; got {tuple(std)}")


@dataclass
class TrainAugment:
    """The training-time pipeline: uint8 batch → float, augmented, normalised batch.

    In order: ``to_float``; resize to ``resize_to`` if given, else to ``out_size`` if the images
    differ; random crop of ``out_size`` after zero padding ``crop_padding`` (the CIFAR recipe: pad
    4, crop 32; AlexNet's: ``resize_to=256, out_size=224``); random horizontal flip when ``flip``
    (leave it off for digits); PCA colour noise when ``pca_std > 0`` (needs ``eigvals``/``eigvecs``
    from ``rgb_pca``); ``normalize`` when ``mean``/``std`` are given; ``cutout`` of a square of side
    ``cutout`` when it is above 0. ``out_size=None`` keeps the images' size.

    A call may say which images to mirror (``mirror``, from ``alternating_flips``) instead of
    leaving it to fresh coins, and at which ``side`` to train this step (progressive resizing:
    the augmented batch is then shrunk to it with ``resize``, before normalising).
    """

    out_size: int | None
    crop_padding: int = 0
    flip: bool = False
    pca_std: float = 0.0
    mean: Sequence[float] | None = None
    std: Sequence[float] | None = None
    eigvals: torch.Tensor | None = None
    eigvecs: torch.Tensor | None = None
    resize_to: int | None = None
    cutout: int = 0

    def __post_init__(self) -> None:
        check_statistics(self.mean, self.std)
        if self.cutout < 0:
            raise ValueError(f"cutout must be ≥ 0; got {self.cutout}")
        if self.pca_std > 0 and (self.eigvals is None or self.eigvecs is None):
            raise ValueError("pca_std > 0 needs eigvals and eigvecs; compute them with "
                             "rgb_pca(train images)")
        if self.crop_padding < 0:
            raise ValueError(f"crop_padding must be ≥ 0; got {self.crop_padding}")

    def __call__(
        self, batch: torch.Tensor, generator: torch.Generator | None = None, *,
        mirror: torch.Tensor | None = None, side: int | None = None,
    ) -> torch.Tensor:
        if mirror is not None and not self.flip:
            raise ValueError("a mirror mask was given to a pipeline without flip; build it with "
                             "flip=True")
        x = batch
        size = self.out_size or x.shape[-1]
        resize_target = self.resize_to or size
        if (resize_target, resize_target) != tuple(x.shape[-2:]):
            x = resize(to_float(x), resize_target)
        # Cropping and flipping only move values (padding adds zeros), so when no resize needed
        # floats they run on the uint8 batch, 4× fewer bytes, with exactly the result of converting
        # first.
        if self.crop_padding or x.shape[-1] != size or x.shape[-2] != size:
            x = random_crop(x, size, self.crop_padding, generator)
        if self.flip:
            x = random_flip(x, generator) if mirror is None else flip_where(x, mirror)
        x = to_float(x)
        if side is not None and side != size:
            x = resize(x, side)
        if self.pca_std > 0:
            x = pca_lighting(x, self.eigvals, self.eigvecs, self.pca_std, generator)
        if self.mean is not None:
            x = normalize(x, self.mean, self.std)
        if self.cutout:
            x = cutout(x, self.cutout, generator)
        return x


__all__ = [
    "TrainAugment",
    "alternating_flips",
    "center_crop",
    "cutout",
    "flip_coins",
    "flip_where",
    "normalize",
    "pca_lighting",
    "random_crop",
    "random_flip",
    "resize",
    "rgb_pca",
    "to_float",
]
