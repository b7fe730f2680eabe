"""Reading the CIFAR-10 and CIFAR-100 "python version" batches, with NumPy only, without running their code.

The official files are Python pickles, and unpickling an arbitrary file runs whatever code it names. A data
file from a mirror or a colleague's disk must not be able to do that, so we unpickle with an allow-list:
stand-ins for the few callables that rebuild NumPy arrays (what the real files contain) and nothing else.
Anything else is refused before it is called, with a ``DataFormatError`` naming the file.

Nor may a damaged file crash the reader or make it allocate more than the file's size: the C unpickler
allocates what a length field claims and sizes its memo by the largest index (a 9-byte file asked for 256 MB),
and NumPy trusts the type, flags and shape of a pickled array (a forged object dtype crashed it). So every
count and memo index is checked against the bytes first (``check_opcodes``), and arrays are rebuilt by our own
code from a plain number type, a shape and exactly as many bytes as those need.

Layout (from https://www.cs.toronto.edu/~kriz/cifar.html): every batch is a dict with bytes keys;
``b'data'`` is an N×3072 uint8 array, each row the 1024 red, then green, then blue values of a 32×32 image
in row-major order, so ``reshape(N, 3, 32, 32)`` gives images directly. CIFAR-10 batches hold
``b'labels'`` (10 classes, names in ``batches.meta`` under ``b'label_names'``); CIFAR-100's ``train`` and
``test`` hold ``b'fine_labels'`` (100 classes, names in ``meta`` under ``b'fine_label_names'``) and
``b'coarse_labels'`` (20 superclasses, which we do not use).
"""

from __future__ import annotations

import io
import math
import pickle
import pickletools
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cnnzoo.errors import DataFormatError

CIFAR_SIDE = 32
CIFAR_ROW_BYTES = 3 * CIFAR_SIDE * CIFAR_SIDE  # 3072

# The number types a pickled array may have: what data files hold (never objects, records or sub-arrays).
ARRAY_DTYPES = frozenset({"b1", "i1", "u1", "i2", "u2", "i4", "u4", "i8", "u8", "f2", "f4", "f8"})
LATIN1_NAMES = frozenset({"latin1", "latin-1", "latin_1", "iso-8859-1", "iso8859-1"})

# What unpickling a damaged file raises: bad opcodes or arguments, a cut stream, wrong calls, missing keys.
_DAMAGED = (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, LookupError, OverflowError)


class RefusedGlobal(pickle.UnpicklingError):
    """The pickle named a callable outside the allow-list: it would have run code on loading."""


class _Sealed:
    """No attribute can be set from outside: a pickle's BUILD cannot change an allowed callable for later files."""

    __slots__ = ()

    def __setattr__(self, name: str, value: object) -> None:
        raise RefusedGlobal(f"refusing to set the attribute {name!r} of {type(self).__name__}")


class _Allowed(_Sealed):
    """A callable of the allow-list as the pickle sees it: not a class, so NEWOBJ cannot skip its checks."""

    __slots__ = ("_function",)

    def __init__(self, function) -> None:
        object.__setattr__(self, "_function", function)

    def __call__(self, *args):
        return self._function(*args)


class _Dtype(_Sealed):
    """``numpy.dtype(name, align, copy)`` for a plain number type; BUILD's state gives its byte order."""

    __slots__ = ("dtype",)

    def __init__(self, name, align=False, copy=True) -> None:
        name = name.decode("latin1") if isinstance(name, bytes) else name  # Python 2 pickles: bytes
        if not isinstance(name, str) or name not in ARRAY_DTYPES:
            raise pickle.UnpicklingError(f"an array type {name!r:.40}, not a plain number type")
        object.__setattr__(self, "dtype", np.dtype(name))

    def __setstate__(self, state) -> None:
        # (version, byte order, subarray, names, fields, size, alignment, flags…): only the order is used
        order = state[1] if isinstance(state, tuple) and len(state) > 1 else None
        order = order.decode("latin1") if isinstance(order, bytes) else order
        if order not in ("<", ">", "|", "="):
            raise pickle.UnpicklingError(f"an array type with the byte order {order!r}")
        object.__setattr__(self, "dtype", self.dtype.newbyteorder(order) if order in "<>" else self.dtype)


class _Array(_Sealed):
    """An array being unpickled: ``_reconstruct`` makes it, BUILD gives it shape, type and bytes."""

    __slots__ = ("array",)

    def __init__(self) -> None:
        object.__setattr__(self, "array", None)

    def __setstate__(self, state) -> None:
        # (version, shape, dtype, Fortran order, raw bytes); NumPy before 1.0 left the version out
        if not isinstance(state, tuple) or len(state) not in (4, 5):
            raise pickle.UnpicklingError("an array whose state is not (version, shape, dtype, order, bytes)")
        shape, dtype, fortran, raw = state[-4:]
        object.__setattr__(self, "array", _array_from(raw, dtype, shape, "F" if fortran else "C"))


def _array_from(buffer, dtype, shape, order) -> np.ndarray:
    """The array of ``shape`` and ``dtype`` (a ``_Dtype``) whose bytes are exactly ``buffer``: nothing is
    allocated beyond what the file held."""
    if not isinstance(dtype, _Dtype):
        raise pickle.UnpicklingError(f"an array whose type is a {type(dtype).__name__}, not a plain number type")
    if not isinstance(buffer, (bytes, bytearray)):
        raise pickle.UnpicklingError(f"array contents given as {type(buffer).__name__}, not as bytes")
    if not (isinstance(shape, tuple) and len(shape) <= 32  # NumPy 1's most dimensions
            and all(type(n) is int and n >= 0 for n in shape)) or order not in ("C", "F"):
        raise pickle.UnpicklingError(f"an array of shape {shape!r:.80} in order {order!r:.10}")
    if math.prod(shape) * dtype.dtype.itemsize != len(buffer):
        raise pickle.UnpicklingError(f"an array of shape {shape} and type {dtype.dtype} given {len(buffer):,} bytes")
    return np.frombuffer(buffer, dtype=dtype.dtype).reshape(shape, order=order)


def _reconstruct(subtype, shape, typecode) -> _Array:
    # numpy's _reconstruct(ndarray, (0,), b'b'): an empty array that BUILD then fills
    if subtype is not _NDARRAY:
        raise pickle.UnpicklingError("_reconstruct of something other than numpy.ndarray")
    return _Array()


def _refuse_direct_ndarray(*args):
    raise pickle.UnpicklingError("numpy.ndarray called directly (it allocates whatever size it is given)")


def _scalar(dtype, data):
    # a NumPy scalar, e.g. a label saved as np.int64: multiarray.scalar(dtype, its bytes)
    return _array_from(data, dtype, (), "C")[()]


def _latin1_encode(text, encoding="latin1") -> bytes:
    """Python 3 pickles of ``bytes`` at protocol ≤ 2 call ``_codecs.encode(text, 'latin1')``; allow that
    codec only, since other codecs (zlib, bz2…) have no business in a data file."""
    if not isinstance(text, str) or encoding not in LATIN1_NAMES:
        raise RefusedGlobal(f"refusing _codecs.encode with {encoding!r:.40}: only latin1 text is allowed")
    return text.encode("latin1")


_NDARRAY = _Allowed(_refuse_direct_ndarray)


def _allowed_globals() -> dict[tuple[str, str], _Allowed]:
    allowed = {("numpy", "ndarray"): _NDARRAY, ("numpy", "dtype"): _Allowed(_Dtype),
               ("_codecs", "encode"): _Allowed(_latin1_encode)}
    # NumPy 2 moved numpy.core to numpy._core; files name one or the other
    for package in ("numpy.core", "numpy._core"):
        allowed[(f"{package}.multiarray", "_reconstruct")] = _Allowed(_reconstruct)
        allowed[(f"{package}.multiarray", "scalar")] = _Allowed(_scalar)
        allowed[(f"{package}.numeric", "_frombuffer")] = _Allowed(_array_from)  # protocol 5: same arguments
    return allowed


class SafeUnpickler(pickle.Unpickler):
    """An unpickler that can rebuild NumPy arrays of numbers, dicts, lists, strings and numbers, and nothing else.

    ``find_class`` is the only way a pickle reaches a callable, so refusing every name outside the
    allow-list means a crafted file cannot run code: it fails with ``UnpicklingError`` instead. On its own it
    does not bound memory: ``safe_load_pickle`` checks the opcodes first.
    """

    _ALLOWED = _allowed_globals()

    def find_class(self, module: str, name: str):
        try:
            return self._ALLOWED[(module, name)]
        except KeyError:
            shown = f"{module}.{name}".encode("unicode_escape").decode("ascii")[:120]  # one line, whatever it holds
            raise RefusedGlobal(f"refusing to load {shown}: only NumPy arrays are allowed") from None

    def persistent_load(self, pid):
        raise RefusedGlobal("refusing a persistent id: CIFAR files have none")

    def load(self):
        return _with_arrays(super().load())


def _with_arrays(value: object) -> object:
    """``value`` with its arrays built: itself, the values of a dict or the items of lists there (as in CIFAR)."""

    def built(item: object) -> object:
        if isinstance(item, _Array):
            if item.array is None:
                raise pickle.UnpicklingError("an array without its contents")
            return item.array
        return item.dtype if isinstance(item, _Dtype) else item

    if isinstance(value, dict):
        return {key: [built(v) for v in item] if isinstance(item, list) else built(item) for key, item in value.items()}
    return built(value)


# Opcodes whose argument is a byte count followed by that many bytes: the count's width and signedness.
_COUNTED = {pickletools.TAKEN_FROM_ARGUMENT1: (1, False), pickletools.TAKEN_FROM_ARGUMENT4: (4, True),
            pickletools.TAKEN_FROM_ARGUMENT4U: (4, False), pickletools.TAKEN_FROM_ARGUMENT8U: (8, False)}
_OPCODES = {op.code.encode("latin1"): op for op in pickletools.opcodes}


def check_opcodes(data: bytes) -> None:
    """Raise ``UnpicklingError`` (or ``ValueError``) unless every byte count and memo index in the pickle ``data``
    fits the bytes there. (``pickletools.genops`` checks counts too, but decodes each string: 1 s a CIFAR batch.)"""
    stream, stored = io.BytesIO(data), 0
    while True:
        position, code = stream.tell(), stream.read(1)
        op = _OPCODES.get(code)
        if op is None:
            raise pickle.UnpicklingError(f"unknown opcode {code!r} at byte {position}" if code else "no STOP opcode")
        if op.arg is None:
            arg = None
        elif op.arg.n in _COUNTED:
            width, signed = _COUNTED[op.arg.n]
            count_bytes = stream.read(width)
            arg = int.from_bytes(count_bytes, "little", signed=signed)
            if len(count_bytes) < width or not 0 <= arg <= len(data) - stream.tell():
                raise pickle.UnpicklingError(f"{op.name} at byte {position} claims {arg:,} bytes; the file has "
                                             f"{len(data) - stream.tell():,} left")
            stream.seek(arg, io.SEEK_CUR)
        else:
            arg = op.arg.reader(stream)  # fixed-size numbers and newline-terminated text
        if op.name in ("PUT", "BINPUT", "LONG_BINPUT") and arg > stored:
            # picklers number the memo 0, 1, 2…; the C unpickler makes room for twice the index it is given
            raise pickle.UnpicklingError(f"memo index {arg:,} at byte {position}, after {stored} entries")
        stored += op.name in ("PUT", "BINPUT", "LONG_BINPUT", "MEMOIZE")
        if op.name == "FRAME" and arg > len(data) - stream.tell():
            raise pickle.UnpicklingError(f"a frame of {arg:,} bytes at byte {position}, past the end of the file")
        if op.name == "STOP":
            return


def safe_load_pickle(path: str | Path) -> object:
    """Unpickle ``path`` with ``SafeUnpickler`` (keys of Python 2 pickles come back as bytes) once its opcodes
    are checked, in a few times the file's size. Any failure is a ``DataFormatError`` naming the file."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as err:
        raise DataFormatError(f"{path}: cannot be read ({err.strerror}); check it, or download it again") from None
    try:
        check_opcodes(data)
        return SafeUnpickler(io.BytesIO(data), encoding="bytes").load()
    except RefusedGlobal as err:
        raise DataFormatError(
            f"{path}: not a CIFAR data file that can be loaded safely ({err}); it would run code when loaded. "
            "Delete it and download the official archive again"
        ) from None
    except _DAMAGED as err:
        detail = (str(err).splitlines() or [""])[0][:200]
        raise DataFormatError(
            f"{path}: the pickle is damaged or truncated ({type(err).__name__}: {detail}); delete it and download "
            "the official archive again"
        ) from None


def read_cifar_batch(path: str | Path, label_key: str, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, 3, 32, 32) uint8 and labels (N,) int64 from one CIFAR batch file.

    ``label_key`` is ``"labels"`` (CIFAR-10) or ``"fine_labels"`` (CIFAR-100); every label must be below
    ``num_classes``.
    """
    path = Path(path)
    batch = _as_str_keyed_dict(safe_load_pickle(path), path)
    data = _require(batch, "data", path)
    labels = _require(batch, label_key, path)
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != CIFAR_ROW_BYTES:
        shown = f"{data.dtype} array of shape {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
        raise DataFormatError(
            f"{path}: 'data' should be an N×{CIFAR_ROW_BYTES} uint8 array (32×32 RGB images); found a {shown}. "
            "Download the official archive again"
        )
    try:
        labels = np.asarray(labels, dtype=np.int64)
    except (TypeError, ValueError, OverflowError):
        raise DataFormatError(f"{path}: {label_key!r} is not a list of integers; download the archive again") from None
    if labels.shape != (len(data),):
        raise DataFormatError(
            f"{path}: {len(data):,} images but {labels.size:,} {label_key!r}; the file is damaged, download it again"
        )
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise DataFormatError(
            f"{path}: labels must lie in 0..{num_classes - 1}; found values from {labels.min()} to {labels.max()}. "
            "Is this a CIFAR-100 file in a CIFAR-10 folder (or the other way round)?"
        )
    images = data.reshape(len(data), 3, CIFAR_SIDE, CIFAR_SIDE)
    return (images if images.flags.writeable else images.copy()), labels


def read_cifar_meta(path: str | Path, key: str) -> list[str]:
    """Class names from a CIFAR meta file: ``key`` is ``"label_names"`` or ``"fine_label_names"``."""
    path = Path(path)
    names = _require(_as_str_keyed_dict(safe_load_pickle(path), path), key, path)
    if not isinstance(names, (list, tuple)) or not all(isinstance(n, (bytes, str)) for n in names):
        raise DataFormatError(f"{path}: {key!r} should be a list of class names; download the archive again")
    try:
        return [n.decode("utf-8") if isinstance(n, bytes) else n for n in names]
    except UnicodeDecodeError:
        raise DataFormatError(f"{path}: a class name in {key!r} is not UTF-8 text; download it again") from None


@dataclass(frozen=True)
class CifarLayout:
    """Which files make up one CIFAR variant, and where its labels and class names live."""

    train_files: tuple[str, ...]
    test_files: tuple[str, ...]
    meta_file: str
    label_key: str
    names_key: str
    num_classes: int


CIFAR10 = CifarLayout(
    train_files=tuple(f"data_batch_{i}" for i in range(1, 6)),
    test_files=("test_batch",),
    meta_file="batches.meta",
    label_key="labels",
    names_key="label_names",
    num_classes=10,
)
CIFAR100 = CifarLayout(
    train_files=("train",),
    test_files=("test",),
    meta_file="meta",
    label_key="fine_labels",
    names_key="fine_label_names",
    num_classes=100,
)


def read_cifar(folder: str | Path, layout: CifarLayout):
    """Read a whole CIFAR folder: ``(train_images, train_labels, test_images, test_labels, class_names)``.

    Images are (N, 3, 32, 32) uint8, labels (N,) int64.
    """
    folder = Path(folder)
    classes = read_cifar_meta(folder / layout.meta_file, layout.names_key)
    if len(classes) != layout.num_classes:
        raise DataFormatError(
            f"{folder / layout.meta_file}: expected {layout.num_classes} class names, found {len(classes)}; "
            "is this the other CIFAR variant's meta file?"
        )
    train = [read_cifar_batch(folder / f, layout.label_key, layout.num_classes) for f in layout.train_files]
    test = [read_cifar_batch(folder / f, layout.label_key, layout.num_classes) for f in layout.test_files]
    return (*_concatenate(train), *_concatenate(test), classes)


def write_cifar_batch(
    path: str | Path, images: np.ndarray, labels, label_key: str = "labels", *, protocol: int = 2, **extra
) -> None:
    """Write a batch in the official layout (bytes keys), e.g. to make test data; ``images`` is (N, 3, 32, 32).

    Protocol 2 is what the official (Python 2) files use; ``extra`` adds entries such as ``batch_label``.
    """
    batch = {b"data": np.ascontiguousarray(images, dtype=np.uint8).reshape(len(images), -1),
             label_key.encode(): [int(v) for v in labels]}
    batch.update({k.encode(): v for k, v in extra.items()})
    with open(path, "wb") as stream:
        pickle.dump(batch, stream, protocol=protocol)


def _concatenate(parts: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    if len(parts) == 1:
        return parts[0]
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def _as_str_keyed_dict(obj: object, path: Path) -> dict[str, object]:
    if not isinstance(obj, dict):
        raise DataFormatError(
            f"{path}: expected a pickled dict (the CIFAR batch layout), found {type(obj).__name__}; "
            "download the official archive again"
        )
    # keys are bytes in the real files; a damaged one may be anything (str() of a huge int even raises)
    return {k.decode("latin1") if isinstance(k, bytes) else k if isinstance(k, str) else f"<{type(k).__name__}>": v
            for k, v in obj.items()}


def _require(batch: dict[str, object], key: str, path: Path) -> object:
    if key not in batch:
        raise DataFormatError(
            f"{path}: no {key!r} entry (it has {sorted(batch)[:8]}{'…' if len(batch) > 8 else ''}); this is not "
            "the CIFAR file expected here"
        )
    return batch[key]


__all__ = ["CIFAR10", "CIFAR100", "CifarLayout", "SafeUnpickler", "check_opcodes", "read_cifar", "read_cifar_batch",
           "read_cifar_meta", "safe_load_pickle", "write_cifar_batch"]
