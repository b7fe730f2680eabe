"""Unpickling a data file without running its code: an allow-list unpickler, NumPy only.

CIFAR's files are Python pickles, and unpickling an arbitrary file runs whatever code it names.
A data file from a mirror or a colleague's disk must not be able to do that, so we unpickle with an
allow-list: stand-ins for the few callables that rebuild NumPy arrays (what the real files contain)
and nothing else. Anything else is refused before it is called, with a ``DataFormatError`` naming
the file.

Nor may a damaged file crash the reader or make it allocate more than the file's size: the C
unpickler allocates what a length field claims and sizes its memo by the largest index (a 9-byte
file asked for 256 MB), and NumPy trusts the type, flags and shape of a pickled array (a forged
object dtype crashed it). So every count and memo index is checked against the bytes first
(``check_opcodes``), and arrays are rebuilt by our own code from a plain number type, a shape and
exactly as many bytes as those need.
"""

from __future__ import annotations

import io
import math
import pickle
import pickletools
from pathlib import Path

import numpy as np

from cnnzoo.errors import DataFormatError

# The number types a pickled array may have: what data files hold (never objects, records or
# sub-arrays).
ARRAY_DTYPES = frozenset({"b1", "i1", "u1", "i2", "u2", "i4", "u4", "i8", "u8", "f2", "f4", "f8"})
LATIN1_NAMES = frozenset({"latin1", "latin-1", "latin_1", "iso-8859-1", "iso8859-1"})

# What unpickling a damaged file raises: bad opcodes or arguments, a cut stream, wrong calls,
# missing keys.
_DAMAGED = (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, LookupError,
            OverflowError)


class RefusedGlobal(pickle.UnpicklingError):
    """The pickle named a callable outside the allow-list: it would have run code on loading."""


class _Sealed:
    """No attribute can be set from outside: a pickle's BUILD cannot change an allowed callable for
    later files."""

    __slots__ = ()

    def __setattr__(self, name: str, value: object) -> None:
        raise RefusedGlobal(f"refusing to set the attribute {name!r} of {type(self).__name__}")


class _Allowed(_Sealed):
    """A callable of the allow-list as the pickle sees it: not a class, so NEWOBJ cannot skip its
    checks."""

    __slots__ = ("_function",)

    def __init__(self, function) -> None:
        object.__setattr__(self, "_function", function)

    def __call__(self, *args):
        return self._function(*args)


class _Dtype(_Sealed):
    """``numpy.dtype(name, align, copy)`` for a plain number type; BUILD's state gives its byte
    order."""

    __slots__ = ("dtype",)

    def __init__(self, name, align=False, copy=True) -> None:
        name = name.decode("latin1") if isinstance(name, bytes) else name  # Python 2 pickles: bytes
        if not isinstance(name, str) or name not in ARRAY_DTYPES:
            raise pickle.UnpicklingError(f"an array type {name!r:.40}, not a plain number type")
        object.__setattr__(self, "dtype", np.dtype(name))

    def __setstate__(self, state) -> None:
        # (version, byte order, subarray, names, fields, size, alignment, flags…): only the order is
        # used
        order = state[1] if isinstance(state, tuple) and len(state) > 1 else None
        order = order.decode("latin1") if isinstance(order, bytes) else order
        if order not in ("<", ">", "|", "="):
            raise pickle.UnpicklingError(f"an array type with the byte order {order!r}")
        object.__setattr__(self, "dtype",
                           self.dtype.newbyteorder(order) if order in "<>" else self.dtype)


class _Array(_Sealed):
    """An array being unpickled: ``_reconstruct`` makes it, BUILD gives it shape, type and bytes."""

    __slots__ = ("array",)

    def __init__(self) -> None:
        object.__setattr__(self, "array", None)

    def __setstate__(self, state) -> None:
        # (version, shape, dtype, Fortran order, raw bytes); NumPy before 1.0 left the version out
        if not isinstance(state, tuple) or len(state) not in (4, 5):
            raise pickle.UnpicklingError("an array whose state is not (version, shape, dtype, "
                                         "order, bytes)")
        shape, dtype, fortran, raw = state[-4:]
        object.__setattr__(self, "array", _array_from(raw, dtype, shape, "F" if fortran else "C"))


def _array_from(buffer, dtype, shape, order) -> np.ndarray:
    """The array of ``shape`` and ``dtype`` (a ``_Dtype``) whose bytes are exactly ``buffer``:
    nothing is allocated beyond what the file held."""
    if not isinstance(dtype, _Dtype):
        raise pickle.UnpicklingError(f"an array whose type is a {type(dtype).__name__}, not a "
                                     "plain number type")
    if not isinstance(buffer, (bytes, bytearray)):
        raise pickle.UnpicklingError(f"array contents given as {type(buffer).__name__}, not as "
                                     "bytes")
    if not (isinstance(shape, tuple) and len(shape) <= 32  # NumPy 1's most dimensions
            and all(type(n) is int and n >= 0 for n in shape)) or order not in ("C", "F"):
        raise pickle.UnpicklingError(f"an array of shape {shape!r:.80} in order {order!r:.10}")
    if math.prod(shape) * dtype.dtype.itemsize != len(buffer):
        raise pickle.UnpicklingError(f"an array of shape {shape} and type {dtype.dtype} given "
                                     f"{len(buffer):,} bytes")
    return np.frombuffer(buffer, dtype=dtype.dtype).reshape(shape, order=order)


def _reconstruct(subtype, shape, typecode) -> _Array:
    # numpy's _reconstruct(ndarray, (0,), b'b'): an empty array that BUILD then fills
    if subtype is not _NDARRAY:
        raise pickle.UnpicklingError("_reconstruct of something other than numpy.ndarray")
    return _Array()


def _refuse_direct_ndarray(*args):
    raise pickle.UnpicklingError("numpy.ndarray called directly (it allocates whatever size it is "
                                 "given)")


def _scalar(dtype, data):
    # a NumPy scalar, e.g. a label saved as np.int64: multiarray.scalar(dtype, its bytes)
    return _array_from(data, dtype, (), "C")[()]


def _latin1_encode(text, encoding="latin1") -> bytes:
    """Python 3 pickles of ``bytes`` at protocol ≤ 2 call ``_codecs.encode(text, 'latin1')``; allow
    that codec only, since other codecs (zlib, bz2…) have no business in a data file."""
    if not isinstance(text, str) or encoding not in LATIN1_NAMES:
        raise RefusedGlobal(f"refusing _codecs.encode with {encoding!r:.40}: only latin1 text is "
                            "allowed")
    return text.encode("latin1")


_NDARRAY = _Allowed(_refuse_direct_ndarray)


def _allowed_globals() -> dict[tuple[str, str], _Allowed]:
    allowed = {("numpy", "ndarray"): _NDARRAY, ("numpy", "dtype"): _Allowed(_Dtype),
               ("_codecs", "encode"): _Allowed(_latin1_encode)}
    # NumPy 2 moved numpy.core to numpy._core; files name one or the other
    for package in ("numpy.core", "numpy._core"):
        allowed[(f"{package}.multiarray", "_reconstruct")] = _Allowed(_reconstruct)
        allowed[(f"{package}.multiarray", "scalar")] = _Allowed(_scalar)
        # protocol 5: same arguments
        allowed[(f"{package}.numeric", "_frombuffer")] = _Allowed(_array_from)
    return allowed


class SafeUnpickler(pickle.Unpickler):
    """An unpickler that can rebuild NumPy arrays of numbers, dicts, lists, strings and numbers, and
    nothing else.

    ``find_class`` is the only way a pickle reaches a callable, so refusing every name outside the
    allow-list means a crafted file cannot run code: it fails with ``UnpicklingError`` instead. On
    its own it does not bound memory: ``safe_load_pickle`` checks the opcodes first.
    """

    _ALLOWED = _allowed_globals()

    def find_class(self, module: str, name: str):
        try:
            return self._ALLOWED[(module, name)]
        except KeyError:
            # one line, whatever it holds
            shown = f"{module}.{name}".encode("unicode_escape").decode("ascii")[:120]
            raise RefusedGlobal(
                f"refusing to load {shown}: only NumPy arrays are allowed"
            ) from None

    def persistent_load(self, pid):
        raise RefusedGlobal("refusing a persistent id: CIFAR files have none")

    def load(self):
        return _with_arrays(super().load())


def _with_arrays(value: object) -> object:
    """``value`` with its arrays built: itself, the values of a dict or the items of lists there (as
    in CIFAR)."""

    def built(item: object) -> object:
        if isinstance(item, _Array):
            if item.array is None:
                raise pickle.UnpicklingError("an array without its contents")
            return item.array
        return item.dtype if isinstance(item, _Dtype) else item

    if isinstance(value, dict):
        return {key: [built(v) for v in item] if isinstance(item, list) else built(item) for key,
                item in value.items()}
    return built(value)


# Opcodes whose argument is a byte count followed by that many bytes: the count's width and
# signedness.
_COUNTED = {pickletools.TAKEN_FROM_ARGUMENT1: (1, False),
            pickletools.TAKEN_FROM_ARGUMENT4: (4, True),
            pickletools.TAKEN_FROM_ARGUMENT4U: (4, False),
            pickletools.TAKEN_FROM_ARGUMENT8U: (8, False)}
_OPCODES = {op.code.encode("latin1"): op for op in pickletools.opcodes}


def check_opcodes(data: bytes) -> None:
    """Raise ``UnpicklingError`` (or ``ValueError``) unless every byte count and memo index in the
    pickle ``data`` fits the bytes there. (``pickletools.genops`` checks counts too, but decodes
    each string: 1 s a CIFAR batch.)"""
    stream, stored = io.BytesIO(data), 0
    while True:
        position, code = stream.tell(), stream.read(1)
        op = _OPCODES.get(code)
        if op is None:
            raise pickle.UnpicklingError(
                f"unknown opcode {code!r} at byte {position}" if code else "no STOP opcode"
            )
        if op.arg is None:
            arg = None
        elif op.arg.n in _COUNTED:
            width, signed = _COUNTED[op.arg.n]
            count_bytes = stream.read(width)
            arg = int.from_bytes(count_bytes, "little", signed=signed)
            if len(count_bytes) < width or not 0 <= arg <= len(data) - stream.tell():
                raise pickle.UnpicklingError(f"{op.name} at byte {position} claims {arg:,} bytes; "
                                             f"the file has {len(data) - stream.tell():,} left")
            stream.seek(arg, io.SEEK_CUR)
        else:
            arg = op.arg.reader(stream)  # fixed-size numbers and newline-terminated text
        if op.name in ("PUT", "BINPUT", "LONG_BINPUT") and arg > stored:
            # picklers number the memo 0, 1, 2…; the C unpickler makes room for twice the index it
            # is given
            raise pickle.UnpicklingError(f"memo index {arg:,} at byte {position}, after {stored} "
                                         "entries")
        stored += op.name in ("PUT", "BINPUT", "LONG_BINPUT", "MEMOIZE")
        if op.name == "FRAME" and arg > len(data) - stream.tell():
            raise pickle.UnpicklingError(f"a frame of {arg:,} bytes at byte {position}, past the "
                                         "end of the file")
        if op.name == "STOP":
            return


def safe_load_pickle(path: str | Path) -> object:
    """Unpickle ``path`` with ``SafeUnpickler`` (keys of Python 2 pickles come back as bytes) once
    its opcodes are checked, in a few times the file's size. Any failure is a ``DataFormatError``
    naming the file."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as err:
        raise DataFormatError(f"{path}: cannot be read ({err.strerror}); check it, or download it "
                              "again") from None
    try:
        check_opcodes(data)
        return SafeUnpickler(io.BytesIO(data), encoding="bytes").load()
    except RefusedGlobal as err:
        raise DataFormatError(
            f"{path}: not a CIFAR data file that can be loaded safely ({err}); it would run code "
            "when loaded. Delete it and download the official archive again"
        ) from None
    except _DAMAGED as err:
        detail = (str(err).splitlines() or [""])[0][:200]
        raise DataFormatError(
            f"{path}: the pickle is damaged or truncated ({type(err).__name__}: {detail}); delete "
            "it and download the official archive again"
        ) from None


__all__ = ["ARRAY_DTYPES", "RefusedGlobal", "SafeUnpickler", "check_opcodes", "safe_load_pickle"]
