"""Test-time views: each image turned into the few views whose predictions are averaged, the
papers' test-time augmentation.

``flip_views`` (the image and its mirror), ``flip_shift_views`` (airbench's six: those two and both
moved a pixel each way) and ``ten_crop_views`` (AlexNet's corners and centre, and their mirrors);
``EvalViews`` turns a uint8 batch into normalised views of one of these kinds, the way ``eval``,
``predict`` and a run's own evaluation use them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F

from cnnzoo.data.augment import (
    Size,
    center_crop,
    check_batch,
    check_statistics,
    normalize,
    offsets_within,
    resize,
    side_pair,
    to_float,
)


def flip_views(x: torch.Tensor) -> torch.Tensor:
    """(2, N, C, H, W): the images and their mirror images."""
    check_batch(x, "flip_views")
    return torch.stack([x, x.flip(-1)])


def flip_shift_views(x: torch.Tensor) -> torch.Tensor:
    """(6, N, C, H, W): airbench's mirror-and-translate test views. View 0 is the image, view 1 its
    mirror; views 2 and 3 are those two moved one pixel up and left, views 4 and 5 the two moved
    one pixel down and right. A moved view loses the row and column pushed out and gets a zero row
    and column on the other side (the zero padding of training's random crops)."""
    check_batch(x, "flip_shift_views")
    both = torch.stack([x, x.flip(-1)])  # (2, N, C, H, W)
    padded = F.pad(both.flatten(0, 1), (1, 1, 1, 1)).unflatten(0, both.shape[:2])
    height, width = x.shape[-2:]
    up_left = padded[..., 2 : 2 + height, 2 : 2 + width]
    down_right = padded[..., 0:height, 0:width]
    return torch.cat([both, up_left, down_right])


def ten_crop_views(x: torch.Tensor, size: Size) -> torch.Tensor:
    """(10, N, C, h, w): AlexNet's test views. Views 0–4 are the top-left, top-right, bottom-left
    and bottom-right corners and the centre; views 5–9 are those five crops mirrored, in the same
    order."""
    check_batch(x, "ten_crop_views")
    height, width = side_pair(size)
    spare_h, spare_w = offsets_within(x, height, width, "ten_crop_views")
    corners = [(0, 0), (0, spare_w), (spare_h, 0), (spare_h, spare_w), (spare_h // 2, spare_w // 2)]
    crops = torch.stack([x[..., top : top + height, left : left + width] for top, left in corners])
    return torch.cat([crops, crops.flip(-1)])



# the test-time views EvalViews offers, and how many model inputs each makes of an image
VIEW_COUNTS = {"center": 1, "flip": 2, "flip-shift": 6, "ten-crop": 10}


@dataclass
class EvalViews:
    """The test-time pipeline: uint8 batch → (V, N, C, H, W) float views whose predictions get
    averaged.

    ``views``: ``"center"`` (V = 1), ``"flip"`` (the centre view and its mirror, V = 2),
    ``"flip-shift"`` (those two and each moved one pixel diagonally both ways, V = 6, see
    ``flip_shift_views``) or ``"ten-crop"`` (V = 10, see ``ten_crop_views``). With
    ``resize_to``, images are resized to it and the views are ``out_size`` crops of it (AlexNet:
    256 → 224); without, they are resized to ``out_size`` (ten crops then need images larger than
    ``out_size``, or all ten are the same window). Flip-shift views are moved before normalising,
    so the row and column they gain are black, like the padding of training's random crops.
    """

    out_size: int | None
    views: Literal["center", "flip", "flip-shift", "ten-crop"] = "center"
    mean: Sequence[float] | None = None
    std: Sequence[float] | None = None
    resize_to: int | None = None

    def __post_init__(self) -> None:
        check_statistics(self.mean, self.std)
        if self.views not in VIEW_COUNTS:
            raise ValueError(f"views must be one of {', '.join(map(repr, VIEW_COUNTS))}; got "
                             f"{self.views!r}")

    @property
    def num_views(self) -> int:
        return VIEW_COUNTS[self.views]

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        x = to_float(batch)
        size = self.out_size or x.shape[-1]
        if self.resize_to is not None:
            x = resize(x, self.resize_to)
        elif self.views != "ten-crop" or min(x.shape[-2:]) < size:
            x = resize(x, size)
        if self.views == "flip-shift":
            # moved before normalising, so the edge they gain is black, as training's padding was
            views = flip_shift_views(center_crop(x, size))
            if self.mean is None:
                return views
            return normalize(views.flatten(0, 1), self.mean, self.std).unflatten(0, views.shape[:2])
        if self.mean is not None:
            x = normalize(x, self.mean, self.std)
        if self.views == "ten-crop":
            return ten_crop_views(x, size)
        x = center_crop(x, size)
        return flip_views(x) if self.views == "flip" else x.unsqueeze(0)


__all__ = ["VIEW_COUNTS", "EvalViews", "flip_shift_views", "flip_views", "ten_crop_views"]
