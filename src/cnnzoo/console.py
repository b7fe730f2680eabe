"""What the commands print: progress lines on stderr, so stdout stays clean for ``--json``; JSON on
stdout.

Imports nothing heavy (no torch, no NumPy), so the NumPy-only demos and ``--help`` use it freely.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Callable

Log = Callable[[str], None]  # where a long job reports progress, one line at a time


def log_to_stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def to_jsonable(value):
    """``value`` in plain JSON types: NumPy scalars and arrays converted, tuples as lists, paths as
    strings, and NaN or infinite floats as None (JSON has no such numbers)."""
    if isinstance(value, dict):
        return {str(key): to_jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)) or type(value).__name__ == "ndarray":
        return [to_jsonable(item) for item in value]
    if type(value).__module__ == "numpy" and hasattr(value, "item"):
        return to_jsonable(value.item())  # NumPy scalars: bool_, integer, floating
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, (str, int, bool)) or value is None:
        return value
    return str(value)  # paths and anything else JSON cannot hold


def print_json(obj) -> None:
    """One JSON document on stdout (for ``--json``)."""
    json.dump(to_jsonable(obj), sys.stdout, indent=2)
    sys.stdout.write("\n")
