"""Reading IDX files, the format of MNIST and Fashion-MNIST, with NumPy only.

An IDX file is a 4-byte magic number ``00 00 <dtype> <ndim>``, then ``ndim`` big-endian uint32
sizes, then the values in row-major order. The MNIST family ships it gzipped; we look at the first
bytes, not the file name, to decide whether to decompress, because people rename and gunzip these
files freely.

Every check that can fail names the file and says what to do, since a half-downloaded file is by far
the most common way these loads go wrong. No torch here: the NumPy-only ``cnnzoo.scratch`` reads
these files too.
"""

from __future__ import annotations

import gzip
import math
import struct
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

import numpy as np

from cnnzoo.errors import DataFormatError

GZIP_MAGIC = b"\x1f\x8b"
IMAGES_MAGIC = 0x00000803  # unsigned bytes, 3 dimensions (N, rows, columns)
LABELS_MAGIC = 0x00000801  # unsigned bytes, 1 dimension (N,)
# The format allows 255 dimensions, NumPy 32 (64 since NumPy 2); MNIST's files have 1 (labels) or 3
# (images).
MAX_DIMENSIONS = 32

# The IDX type byte and the (big-endian) NumPy type it stands for.
IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

# Deflate cannot expand data by more than about 1032:1, so a gzip file of S bytes holds at most this
# many times S bytes. A header claiming more is corrupt, and we say so instead of allocating a huge
# array.
_MAX_DEFLATE_RATIO = 1032
_READ_CHUNK = 1 << 22


def is_gzip(path: str | Path) -> bool:
    """True when the file starts with gzip's magic bytes (whatever its name says)."""
    with open(path, "rb") as stream:
        return stream.read(2) == GZIP_MAGIC


def read_idx(path: str | Path, *, limit: int | None = None) -> np.ndarray:
    """Read an IDX file (gzipped or not) into an array of the shape its header gives.

    ``limit`` reads only the first ``limit`` items (images, labels) and stops decompressing there:
    the scratch demos take a few thousand images in milliseconds instead of a second for the whole
    file. Raises ``DataFormatError`` naming the file when the magic number, the dimension count or
    the byte count is wrong; a file whose data is shorter than its header promises is reported as
    truncated.
    """
    path = Path(path)
    with _gzip_errors_named(path):
        compressed = is_gzip(path)
        with (gzip.open(path, "rb") if compressed else open(path, "rb")) as stream:
            dtype, dims = _read_header(stream, path)
            _check_plausible_size(path, compressed, math.prod(dims) * dtype.itemsize, dims)
            if limit is not None:
                dims = (min(max(limit, 0), dims[0]), *dims[1:])
            expected = math.prod(dims) * dtype.itemsize
            values = np.empty(math.prod(dims), dtype=dtype)
            found, stream_ended_early = _read_into(stream, values.view(np.uint8))
            extra = len(stream.read(1)) if found == expected and limit is None else 0
    if found != expected:
        where = " before the gzip stream broke off" if stream_ended_early else ""
        raise DataFormatError(
            f"{path}: expected {expected:,} {_what(dims)} bytes for {_shape_text(dims)}, found "
            f"{found:,}{where}: the file is truncated; delete it and download it again"
        )
    if extra:
        raise DataFormatError(
            f"{path}: there are bytes after the {expected:,} {_what(dims)} bytes that its header "
            f"({_shape_text(dims)}) announces; this is not a valid IDX file, download it again"
        )
    return values.reshape(dims).astype(dtype.newbyteorder("="), copy=False)


def read_idx_images(path: str | Path, *, limit: int | None = None) -> np.ndarray:
    """An (N, rows, columns) uint8 array from an IDX image file, checking it is one (magic
    0x00000803)."""
    return _read_expecting(path, IMAGES_MAGIC, "images", limit)


def read_idx_labels(path: str | Path, *, limit: int | None = None) -> np.ndarray:
    """An (N,) uint8 array from an IDX label file, checking it is one (magic 0x00000801)."""
    return _read_expecting(path, LABELS_MAGIC, "labels", limit)


def read_idx_pair(
    images_path: str | Path, labels_path: str | Path, *, limit: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, H, W) uint8 and labels (N,) int64 from an MNIST-style pair, checking the counts
    agree (with ``limit``, the first ``limit`` of each)."""
    images = read_idx_images(images_path, limit=limit)
    labels = read_idx_labels(labels_path, limit=limit)
    image_count, label_count = idx_dims(images_path)[0], idx_dims(labels_path)[0]
    if image_count != label_count:
        raise DataFormatError(
            f"{images_path} holds {image_count:,} images but {labels_path} holds {label_count:,} "
            "labels; the two files are from different sets or one is damaged: download both again"
        )
    return images, labels.astype(np.int64)


def idx_dims(path: str | Path) -> tuple[int, ...]:
    """The dimensions an IDX file's header declares, read without reading (or decompressing) the
    data."""
    with _gzip_errors_named(Path(path)), _open_maybe_gzip(path) as stream:
        return _read_header(stream, Path(path))[1]


def write_idx(path: str | Path, array: np.ndarray, *, compress: bool | None = None) -> None:
    """Write ``array`` (uint8) as an IDX file, gzipped when ``compress`` (default: the name ends in
    .gz).

    Used to make test files and to export subsets in the format other tools read.
    """
    path = Path(path)
    array = np.ascontiguousarray(array)
    if array.dtype != np.uint8:
        raise ValueError(f"write_idx writes uint8 arrays; got {array.dtype}. Convert with "
                         "array.astype(np.uint8).")
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    compress = path.suffix == ".gz" if compress is None else compress
    with (gzip.open(path, "wb") if compress else open(path, "wb")) as stream:
        stream.write(header)
        stream.write(array.tobytes())


def _read_expecting(path: str | Path, magic: int, kind: str, limit: int | None) -> np.ndarray:
    with _gzip_errors_named(Path(path)), _open_maybe_gzip(path) as stream:
        head = stream.read(4)
    found = int.from_bytes(head, "big") if len(head) == 4 else None
    if found != magic:
        shown = f"0x{found:08X}" if found is not None else f"only {len(head)} bytes"
        raise DataFormatError(
            f"{path}: this is not an IDX {kind} file: its magic number is {shown}, expected "
            f"0x{magic:08X} (unsigned bytes, "
            f"{'3 dimensions' if kind == 'images' else '1 dimension'}). Check that the right file "
            "is in the right place, or download it again"
        )
    return read_idx(path, limit=limit)


@contextmanager
def _gzip_errors_named(path: Path) -> Iterator[None]:
    """What the gzip module raises on a damaged or cut-short file, as a ``DataFormatError`` naming
    the file.

    A gzip stream can break anywhere: in its header (``BadGzipFile``), in the deflate data
    (``zlib.error``), at its end (``EOFError``), so every read of a file that may be gzipped goes
    through here.
    """
    try:
        yield
    except (EOFError, gzip.BadGzipFile, zlib.error) as err:
        raise DataFormatError(
            f"{path}: the gzip data is damaged or cut short ({err}); delete the file and download "
            "it again"
        ) from None


def _open_maybe_gzip(path: str | Path) -> BinaryIO:
    return gzip.open(path, "rb") if is_gzip(path) else open(path, "rb")


def _read_header(stream: BinaryIO, path: Path) -> tuple[np.dtype, tuple[int, ...]]:
    head = stream.read(4)
    if len(head) < 4:
        raise DataFormatError(f"{path}: the file is {len(head)} bytes long, too short for an IDX "
                              "header; download it again")
    zero, type_code, ndim = struct.unpack(">HBB", head)
    if zero != 0 or type_code not in IDX_DTYPES:
        raise DataFormatError(
            f"{path}: not an IDX file: its magic number is 0x{int.from_bytes(head, 'big'):08X}, "
            "expected 0x000008NN (e.g. 0x00000803 for images, 0x00000801 for labels); check the "
            "file or download it again"
        )
    if not 0 < ndim <= MAX_DIMENSIONS:
        raise DataFormatError(
            f"{path}: the IDX header declares {ndim} dimensions (IDX data sets have 1 to "
            f"{MAX_DIMENSIONS}); the file is damaged, download it again"
        )
    size_bytes = stream.read(4 * ndim)
    if len(size_bytes) < 4 * ndim:
        raise DataFormatError(
            f"{path}: the IDX header declares {ndim} dimensions but the file ends inside the "
            "header; it is truncated: delete it and download it again"
        )
    dtype, dims = IDX_DTYPES[type_code], struct.unpack(f">{ndim}I", size_bytes)
    if math.prod(d for d in dims if d) * dtype.itemsize > np.iinfo(np.intp).max:
        # NumPy refuses such a shape even with a zero in it (an empty array of 0×2³²×2³²)
        raise DataFormatError(
            f"{path}: the IDX header declares a {_shape_text(dims)} array, larger than any array "
            "can be; the header is damaged, download the file again"
        )
    return dtype, dims


def _check_plausible_size(path: Path, compressed: bool, expected: int,
                          dims: tuple[int, ...]) -> None:
    """Refuse, before allocating, a header promising more data than the file can hold."""
    on_disk = path.stat().st_size
    if not compressed:
        found = max(on_disk - 4 - 4 * len(dims), 0)
        if expected > found:
            raise DataFormatError(
                f"{path}: expected {expected:,} {_what(dims)} bytes for {_shape_text(dims)}, found "
                f"{found:,}: the file is truncated; delete it and download it again"
            )
    elif expected > on_disk * _MAX_DEFLATE_RATIO + 1024:
        raise DataFormatError(
            f"{path}: expected {expected:,} {_what(dims)} bytes for {_shape_text(dims)}, but a "
            f"gzip file of {on_disk:,} bytes cannot hold that many: the file is truncated or its "
            "header is damaged; delete it and download it again"
        )


def _read_into(stream: BinaryIO, buffer: np.ndarray) -> tuple[int, bool]:
    """Fill ``buffer`` from ``stream``. Return how many bytes were read (fewer at end of file) and
    whether a gzip stream ended without its end marker, i.e. the compressed file itself was cut
    short."""
    view = memoryview(buffer)
    filled = 0
    while filled < len(view):
        try:
            count = stream.readinto(view[filled : filled + _READ_CHUNK])
        except EOFError:
            return filled, True
        if not count:
            break
        filled += count
    return filled, False


def _what(dims: tuple[int, ...]) -> str:
    return {3: "pixel", 1: "label"}.get(len(dims), "data")


def _shape_text(dims: tuple[int, ...]) -> str:
    return "×".join(str(d) for d in dims)


__all__ = [
    "IMAGES_MAGIC",
    "LABELS_MAGIC",
    "idx_dims",
    "is_gzip",
    "read_idx",
    "read_idx_images",
    "read_idx_labels",
    "read_idx_pair",
    "write_idx",
]
