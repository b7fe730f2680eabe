"""argparse types shared by the commands: each refuses a bad value with a message argparse prefixes with the
option's name, so the user reads e.g. ``argument --top-k: must be a whole number ≥ 1; got '0'``."""

from __future__ import annotations

import argparse


def positive_int(text: str) -> int:
    """An argparse type: a whole number ≥ 1 (argparse names the option in its message)."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number ≥ 1; got {text!r}")
    return value


def mebibytes(text: str) -> float:
    """An argparse type: a size in MiB, a number ≥ 0."""
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be a number of MiB ≥ 0; got {text!r}")
    return value
