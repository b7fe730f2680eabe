"""Your own images: ``folder:PATH`` with one sub-folder per class.

Two layouts are understood:

* ``PATH/train/<class>/…`` and ``PATH/val/<class>/…`` (or ``validation/`` or ``test/``): the split
  is yours;
* ``PATH/<class>/…``: we hold out a fraction of every class (default 20 %, the same files for the
  same seed), so the test set has the classes in the proportions of the whole.

Classes are the sorted sub-folder names, so label numbers do not depend on the file system's order.
Every image is decoded with Pillow, converted to grey or RGB, its shorter side resized to
``image_size`` and the centre square kept, giving uint8 (C, size, size) tensors like the built-in
data sets. Unless told, grey or RGB and the size follow the images' commonest kind and side
(``image_survey``).

A folder whose decoded images fit in a memory budget (2 GiB by default) is decoded once into an
``ImageTensors``; a bigger one becomes a ``StreamingImageFolder``, which decodes each batch anew in
DataLoader worker processes and yields the same ``(uint8 images, labels)`` batches, in the same
order for the same generator: both are ``dataset.ImageDataset``s, so training code and augmentation
do not care which one they got.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
import torch.utils.data
from PIL import Image, ImageOps

from cnnzoo.data.dataset import (
    Batch,
    DatasetSplits,
    ImageDataset,
    IndexedBatch,
    Shard,
    batch_plan,
    centred_padding,
    check_batch_size,
    pad_by,
)
from cnnzoo.data.folder_layout import (
    DEFAULT_HOLDOUT_FRACTION,
    FileList,
    scan_image_folder,
)
from cnnzoo.data.image_survey import survey_images
from cnnzoo.data.tensors import ImageTensors
from cnnzoo.errors import ConfigError, DataFormatError
from cnnzoo.files import check_regular_file

DEFAULT_IMAGE_SIZE = 224  # ImageNet's crop size, what the full-size models are built for
DEFAULT_MEMORY_BUDGET = 2 * 1024**3  # decoded uint8 bytes above which a folder is streamed
# Refuse images above 50 megapixels (e.g. 8660×5773) before decoding them: a photo for
# classification is far smaller, and a bigger one is either a mistake or a decompression bomb
# (Pillow's own limit is ~179 MP).
MAX_IMAGE_PIXELS = 50_000_000
_MODES = {1: "L", 3: "RGB"}


def load_image(path: str | Path, channels: int = 3, size: int = DEFAULT_IMAGE_SIZE) -> torch.Tensor:
    """Decode one image file into a uint8 (channels, size, size) tensor.

    The shorter side is resized to ``size`` (bilinear, antialiased by Pillow when shrinking) and the
    centre square kept; EXIF rotation is applied first, so phone photos come out upright. An
    unreadable, truncated or oversized (over ``MAX_IMAGE_PIXELS``) file raises ``DataFormatError``
    naming it, and so does anything but a regular file, refused before it is opened (opening a FIFO
    would wait for a writer forever); a missing file raises ``DataFilesMissing``.
    """
    return image_tensor(open_image(path, channels, draft_size=size), size)


def image_tensor(image: Image.Image, size: int) -> torch.Tensor:
    """A decoded grey or RGB image as uint8 (channels, size, size), as ``load_image`` makes it
    (uploads too)."""
    # a copy Pillow does not own
    tensor = torch.from_numpy(np.array(_resize_and_centre_crop(image, size)))
    return tensor.unsqueeze(0) if tensor.dim() == 2 else tensor.permute(2, 0, 1).contiguous()


def open_image(path: str | Path, channels: int = 3, draft_size: int | None = None) -> Image.Image:
    """The decoded image, upright (EXIF rotation applied) and converted to grey or RGB, with the
    checks of ``load_image``; ``draft_size`` lets a JPEG decode at a reduced scale still at least
    that large."""
    path = Path(path)
    if channels not in _MODES:
        raise ConfigError(f"channels must be 1 (grey) or 3 (RGB); got {channels}")
    check_regular_file(path, "image files")
    try:
        with Image.open(path) as image:
            width, height = image.size
            if width * height > MAX_IMAGE_PIXELS:
                raise DataFormatError(
                    f"{path}: {width}×{height} = {width * height:,} pixels, more than the "
                    f"{MAX_IMAGE_PIXELS:,} we decode (cnnzoo.data.folder.MAX_IMAGE_PIXELS); shrink "
                    "the image or remove it"
                )
            if draft_size:
                # JPEG: a reduced scale still ≥ size
                image.draft(_MODES[channels], (draft_size, draft_size))
            return ImageOps.exif_transpose(image).convert(_MODES[channels])
    except DataFormatError:
        raise
    except Image.DecompressionBombError as err:
        raise DataFormatError(f"{path}: refused as a possible decompression bomb ({err}); remove "
                              "the file") from None
    # a damaged chunk can declare gigabytes; an image within MAX_IMAGE_PIXELS never needs them
    except MemoryError:
        raise DataFormatError(
            f"{path}: decoding it asked for more memory than an image of at most "
            f"{MAX_IMAGE_PIXELS:,} pixels needs; the file is damaged: re-save it or leave it out"
        ) from None
    # Pillow's ways of saying "cannot decode"
    except (OSError, SyntaxError, ValueError, EOFError) as err:
        raise DataFormatError(
            f"{path}: cannot decode the image ({type(err).__name__}: {err}); the file is damaged, "
            "truncated or not an image: re-save it or leave it out"
        ) from None


def _resize_and_centre_crop(image: Image.Image, size: int) -> Image.Image:
    """Resize so the shorter side is ``size`` and keep the centre square, in one resampling step."""
    width, height = image.size
    side = min(width, height)
    left, top = (width - side) / 2, (height - side) / 2
    return image.resize((size, size), Image.Resampling.BILINEAR, box=(left, top, left + side,
                                                                      top + side))


# ----------------------------------------------------------------------------------------- decoding


class ImageFileDataset(torch.utils.data.Dataset):
    """Map-style dataset over image files, for DataLoader workers: item ``i`` is (image, label,
    error).

    A decoding error is returned, not raised, so the main process can raise a clean
    ``DataFormatError`` naming the file rather than DataLoader's re-wrapped worker traceback.
    """

    def __init__(self, files: FileList, channels: int, size: int):
        self.files, self.channels, self.size = files, channels, size

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int):
        try:
            return (
                load_image(self.files.files[index], self.channels, self.size),
                self.files.labels[index],
                None,
            )
        except DataFormatError as err:
            return None, self.files.labels[index], str(err)


def collate_decoded(items) -> tuple[torch.Tensor, torch.Tensor] | str:
    """Stack decoded items into a batch, or return the first error message (see
    ``ImageFileDataset``)."""
    for _, _, error in items:
        if error is not None:
            return error
    return torch.stack([image for image, _, _ in items]), torch.tensor(
        [label for _, label, _ in items], dtype=torch.int64
    )


def default_num_workers(file_count: int) -> int:
    """No worker processes for a few hundred files (starting them costs more); else up to 4, the
    cores shared among the training processes torchrun started on this machine (its
    LOCAL_WORLD_SIZE; see docs/distributed.md)."""
    sharing = max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    return 0 if file_count < 256 else max(1, min(4, (os.cpu_count() or 1) // sharing))


class StreamingImageFolder(ImageDataset):
    """An image folder too big to hold decoded: every batch is decoded anew by DataLoader workers.

    ``batches`` follows ``dataset.batch_plan``, so it yields the batches ``ImageTensors`` would, in
    the same order for the same generator. ``pad_to`` records a padding that each decoded batch then
    gets.
    """

    def __init__(
        self,
        files: FileList,
        channels: int = 3,
        image_size: int = DEFAULT_IMAGE_SIZE,
        num_workers: int | None = None,
        device: torch.device | str | None = None,
        *,
        padding: tuple[int, int] = (0, 0),
    ):
        self.files = files
        self.channels = channels
        self.size = image_size  # the side images are decoded at
        # zero rows and columns added (before, after) to every decoded image: pad_to
        self.padding = padding
        self.num_workers = default_num_workers(len(files)) if num_workers is None else num_workers
        self._device = torch.device(device) if device is not None else torch.device("cpu")
        self.labels = torch.tensor(files.labels, dtype=torch.int64)

    def _like(self, files: FileList | None = None, **changes) -> StreamingImageFolder:
        settings = {"channels": self.channels, "image_size": self.size,
                    "num_workers": self.num_workers,
                    "device": self.device, "padding": self.padding, **changes}
        return StreamingImageFolder(self.files if files is None else files, **settings)

    def __len__(self) -> int:
        return len(self.files)

    @property
    def num_channels(self) -> int:
        return self.channels

    @property
    def image_size(self) -> tuple[int, int]:
        side = self.size + sum(self.padding)
        return side, side

    @property
    def device(self) -> torch.device:
        return self._device

    def to(self, device: torch.device | str) -> StreamingImageFolder:
        """The same folder, with batches delivered on ``device``."""
        return self if torch.device(device) == self.device else self._like(device=device)

    def subset(self, indices: Sequence[int] | torch.Tensor) -> StreamingImageFolder:
        chosen = [int(i) for i in torch.as_tensor(indices).tolist()]
        return self._like(FileList(tuple(self.files.files[i] for i in chosen),
                                   tuple(self.files.labels[i] for i in chosen)))

    def pad_to(self, side: int) -> StreamingImageFolder:
        """The folder whose decoded batches are zero-padded to ``side`` as ``dataset.pad_images``
        pads."""
        before, after = centred_padding(self.image_size[0], side)
        if before == after == 0:
            return self
        return self._like(padding=(self.padding[0] + before, self.padding[1] + after))

    def batches(self, batch_size: int, *, shuffle: bool, generator: torch.Generator | None = None,
                drop_last: bool = False, shard: Shard = Shard(),
                indices: bool = False) -> Iterator[Batch] | Iterator[IndexedBatch]:
        """``dataset.batch_plan``'s batches of ``shard``: only their images are decoded. With
        ``indices``, each also carries its images' positions in the folder's file list."""
        check_batch_size(batch_size)
        return self._batches(batch_size, shuffle, generator, drop_last, shard, indices)

    def _batches(self, batch_size: int, shuffle: bool, generator: torch.Generator | None,
                 drop_last: bool, shard: Shard, indices: bool) -> Iterator[Batch | IndexedBatch]:
        order, slices = batch_plan(len(self), batch_size, shuffle=shuffle, generator=generator,
                                   drop_last=drop_last, shard=shard)
        order = torch.arange(len(self)) if order is None else order
        parts = [order[part] for part in slices]
        positions = iter(parts)  # the loader yields the batches in order
        loader = torch.utils.data.DataLoader(
            ImageFileDataset(self.files, self.channels, self.size),
            batch_sampler=[part.tolist() for part in parts],
            num_workers=self.num_workers,
            collate_fn=collate_decoded,
            pin_memory=self.device.type == "cuda",
            generator=torch.Generator(),  # its own: drawing from torch's shifts the model's init
        )
        for batch in loader:
            if isinstance(batch, str):
                raise DataFormatError(batch)
            images, labels = batch
            images = images.to(self.device, non_blocking=True)
            batch = pad_by(images, self.padding), labels.to(self.device, non_blocking=True)
            yield batch + ((next(positions).to(self.device),) if indices else ())

    def load_all(self) -> ImageTensors:
        """Decode every image into one ``ImageTensors`` (in file order, padded as the batches
        are)."""
        images = torch.empty((len(self), self.channels, *self.image_size), dtype=torch.uint8)
        start = 0
        for batch, _ in self.batches(256, shuffle=False):
            images[start : start + len(batch)] = batch.cpu()
            start += len(batch)
        return ImageTensors(images, self.labels.clone()).to(self.device)


def load_image_folder(
    path: str | Path,
    *,
    channels: int | None = None,
    image_size: int | None = None,
    holdout_fraction: float = DEFAULT_HOLDOUT_FRACTION,
    seed: int = 0,
    memory_budget_bytes: int | None = None,
    num_workers: int | None = None,
) -> DatasetSplits:
    """Load an image folder as ``DatasetSplits``, at ``channels`` and ``image_size`` or, where they
    are None, as its images suggest (``image_survey``: their most common kind and shorter side; the
    splits' ``note`` says so).

    Both parts are decoded into memory when together they fit in ``memory_budget_bytes`` of uint8
    (default ``DEFAULT_MEMORY_BUDGET``, read at the call; 0 always streams); otherwise both are
    ``StreamingImageFolder``s.
    """
    budget = DEFAULT_MEMORY_BUDGET if memory_budget_bytes is None else memory_budget_bytes
    layout = scan_image_folder(path, holdout_fraction, seed)
    surveyed = layout.train.files or layout.test.files  # a folder held out whole has no train
    found = survey_images(surveyed) if channels is None or image_size is None else None
    channels = (found.channels if found else 3) if channels is None else channels
    size = (found.side if found else DEFAULT_IMAGE_SIZE) if image_size is None else image_size
    parts = [
        StreamingImageFolder(part, channels, size, num_workers)
        for part in (layout.train, layout.test)
    ]
    decoded_bytes = (len(layout.train) + len(layout.test)) * channels * size * size
    train, test = parts if decoded_bytes > budget else [part.load_all() for part in parts]
    name = f"folder:{layout.root}"
    note = found.sentence(name, channels, size) if found else None
    return DatasetSplits(name, train, test, layout.classes, note)


__all__ = ["DEFAULT_IMAGE_SIZE", "DEFAULT_MEMORY_BUDGET", "MAX_IMAGE_PIXELS",
           "StreamingImageFolder", "load_image", "load_image_folder"]
