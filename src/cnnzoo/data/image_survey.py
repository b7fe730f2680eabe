"""What an image folder's files are, read from their headers: the side and channels to read it at.

A folder of 28×28 grey PNGs should train a LeNet at 1×28×28, not at ImageNet's 3×224×224. So,
unless the caller says otherwise, a folder is read at its images' most common shorter side, at most
``MAX_DEFAULT_SIDE`` (beyond it a photo's detail costs memory and time a classic CNN does not
repay), and in grey when most of its images are grey. Only headers are read (Pillow decodes no pixel
to report a size and mode), and of a large folder an evenly spaced ``SURVEYED_FILES`` of them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

MAX_DEFAULT_SIDE = 224  # ImageNet's crop size, what the full-size models are built for
SURVEYED_FILES = 1000  # headers read at most: enough to find the common size, quick on any disk
# Pillow's modes without colour: bilevel, 8-bit, 16/32-bit integer and float grey, grey with alpha
GREY_MODES = frozenset({"1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"})


@dataclass(frozen=True)
class ImageSurvey:
    """The most common image size and kind (grey or colour) among the files surveyed."""

    size: tuple[int, int]  # (width, height) of the most images
    same_size: int  # images of that size
    grey: bool  # whether most images are grey
    same_kind: int  # images of that kind
    surveyed: int  # headers read

    @property
    def side(self) -> int:
        """The side to read the folder at: its images' shorter side, at most MAX_DEFAULT_SIDE."""
        return min(min(self.size), MAX_DEFAULT_SIDE)

    @property
    def channels(self) -> int:
        return 1 if self.grey else 3

    def sentence(self, folder: str, channels: int, side: int) -> str:
        """One line: what was found, and that the folder is read as channels × side × side."""
        width, height = self.size
        if side != self.side:
            why = " (--input-size)"
        elif min(self.size) > side:
            why = f" (their shorter side, at most {MAX_DEFAULT_SIDE}; --input-size sets another)"
        else:
            why = "; --input-size sets another side"
        kind = "grey" if self.grey else "colour"
        return (f"{folder}: most images are {width}×{height} ({self.same_size} of {self.surveyed}) "
                f"and {kind} ({self.same_kind} of {self.surveyed}), so they are read as "
                f"{channels}×{side}×{side}{why}")


def survey_images(files: Sequence[Path]) -> ImageSurvey | None:
    """The most common size and kind among ``files`` (an evenly spaced ``SURVEYED_FILES`` of
    them); None when no header could be read. A file that cannot be opened is passed over: decoding
    it later names it."""
    step = max(1, -(-len(files) // SURVEYED_FILES))
    sizes: Counter[tuple[int, int]] = Counter()
    grey = 0
    for path in files[::step]:
        try:
            with Image.open(path) as image:
                sizes[image.size] += 1
                grey += image.mode in GREY_MODES
        except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError):
            continue
    surveyed = sum(sizes.values())
    if not surveyed:
        return None
    size, same_size = sizes.most_common(1)[0]
    is_grey = grey * 2 > surveyed  # a tie reads colour: RGB keeps whatever colour there is
    return ImageSurvey(size, same_size, is_grey, grey if is_grey else surveyed - grey, surveyed)


__all__ = ["MAX_DEFAULT_SIDE", "ImageSurvey", "survey_images"]
