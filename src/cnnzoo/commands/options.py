"""The options several commands share, each declared once (flag, type, metavar, help), and the
argparse types that check a value when it is parsed.

A type refuses a bad value with ``argparse.ArgumentTypeError``; argparse prefixes its message with
the option's name, so the user reads one line such as ``argument --repeats: must be a whole number
from 1 to 1,000; got '0'`` and the command exits with status 2 before it has created anything.
Options that are also training settings take their allowed values from ``TrainConfig``'s declaration
(``setting``), so a bound lives in one place. Nothing here imports torch until a ``--device`` value
has to be checked against the machine.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import re
from collections.abc import Callable
from pathlib import Path

from cnnzoo.engine.config import TrainConfig, value_problem

_FIELDS = {f.name: f for f in dataclasses.fields(TrainConfig)}


def whole_number(low: int, high: int) -> Callable[[str], int]:
    """An argparse type: a whole number from ``low`` to ``high``."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be a whole number from {low:,} to {high:,}; "
                                             f"got {text!r}")
        return value
    parse.__name__ = "whole number"
    return parse


def number(*, above: float | None = None, low: float | None = None,
           high: float) -> Callable[[str], float]:
    """An argparse type: a finite number greater than ``above`` (or at least ``low``) and at most
    ``high``."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        fits = value > above if above is not None else value >= low
        if not (math.isfinite(value) and fits and value <= high):
            bound = f"> {above:g}" if above is not None else f"≥ {low:g}"
            raise argparse.ArgumentTypeError(f"must be a number {bound} and ≤ {high:,g}; got "
                                             f"{text!r}")
        return value
    parse.__name__ = "number"
    return parse


def json_arguments(text: str) -> list | dict:
    """An argparse type: a JSON list or object of a constructor's arguments (``--code-args``)."""
    import json

    try:
        value = json.loads(text)
    except ValueError:
        value = None
    if not isinstance(value, (list, dict)):
        raise argparse.ArgumentTypeError("must be a JSON list or object of the constructor's "
                                         f"arguments, e.g. '{{\"num_classes\": 10}}'; got {text!r}")
    return value


def json_object(text: str) -> dict:
    """An argparse type: a JSON object of a model builder's arguments (``--model-kwargs``)."""
    import json

    try:
        value = json.loads(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"not JSON ({error}); e.g. '{{\"dropout\": 0.3}}'") \
            from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("must be a JSON object of builder arguments, e.g. "
                                         f"'{{\"dropout\": 0.3}}'; got {text!r}")
    return value


# a count of things shown or computed: classes, images, neighbours
positive_int = whole_number(1, 1_000_000)


def setting(name: str, convert: Callable[[str], object] | None = None) -> Callable[[str], object]:
    """An argparse type for the training setting ``name``: ``convert`` (by default the field's own
    type) turns the text into a value, and ``TrainConfig``'s declaration says whether it is
    allowed."""
    f = _FIELDS[name]
    convert = convert or {"int": int, "float": float}.get(str(f.type).split(" ")[0], str)

    def parse(text: str):
        try:
            value = convert(text)
        except ValueError:
            kind = "a whole number" if convert is int else "a number"
            raise argparse.ArgumentTypeError(f"must be {kind}; got {text!r}") from None
        problem = value_problem(f, value)
        if problem:
            raise argparse.ArgumentTypeError(problem.replace(f"got {value!r}", f"got {text!r}"))
        return value
    parse.__name__ = name
    return parse


def available_devices() -> tuple[str, ...]:
    """The devices this machine and this PyTorch build can run on (``gpu.sh --dry-run`` replaces it,
    to parse its commands as a GPU machine would)."""
    import torch

    names = ["auto", "cpu"]
    if torch.cuda.is_available():
        names += ["cuda"] + [f"cuda:{index}" for index in range(torch.cuda.device_count())]
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        names.append("mps")
    return tuple(names)


def device_name(text: str) -> str:
    """An argparse type: ``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``mps``, and one this machine
    has."""
    if text.split(":")[0].lower() == "gpu":
        raise argparse.ArgumentTypeError(
            f"PyTorch calls a GPU 'cuda' (or 'cuda:N'), not {text!r}: use --device cuda"
        )
    if not re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", text):
        raise argparse.ArgumentTypeError(f"must be auto, cpu, cuda, cuda:N or mps; got {text!r}")
    available = available_devices()
    if text not in available:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not available on this machine (this PyTorch build sees "
            f"{', '.join(name for name in available if name != 'auto')})"
        )
    return text


def existing_folder(text: str) -> str:
    """An argparse type: a folder that exists (``~`` expanded when it is used)."""
    path = Path(text).expanduser()
    if path.is_symlink() and not path.exists():
        raise argparse.ArgumentTypeError(f"is a broken symbolic link: {text!r}")
    if not path.exists():
        raise argparse.ArgumentTypeError(f"no such folder: {text!r}")
    if not path.is_dir():
        raise argparse.ArgumentTypeError(f"is a file, not a folder: {text!r}")
    return text


def _creatable(path: Path, text: str) -> None:
    """Refuse ``path`` unless it, or the folder it would be made in, is a folder this process may
    write."""
    if path.is_symlink() and not path.exists():
        raise argparse.ArgumentTypeError(f"is a broken symbolic link: {text!r}")
    ancestor = next(p for p in (path, *path.parents) if p.exists())
    if not ancestor.is_dir():
        raise argparse.ArgumentTypeError(f"{str(ancestor)!r} is a file, so nothing can be written "
                                         f"inside it; got {text!r}")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise argparse.ArgumentTypeError(f"the folder {str(ancestor)!r} is not writable; got "
                                         f"{text!r}")


def writable_folder(text: str) -> str:
    """An argparse type: a folder to write into, existing or not, that is not a file and can be
    written."""
    path = Path(text).expanduser()
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(f"names a file, not a folder: {text!r}")
    _creatable(path, text)
    return text


def writable_file(text: str) -> str:
    """An argparse type: a file to write, not a folder, in a folder that can be made and written."""
    path = Path(text).expanduser()
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"names a folder; give a file name inside it: {text!r}")
    if path.is_symlink() and not path.exists():
        raise argparse.ArgumentTypeError(f"is a broken symbolic link: {text!r}")
    _creatable(path.parent, text)
    return text


# Each shared option once: `add(parser, name)` declares it; a command may give its own help (its
# default differs).
SHARED: dict[str, dict] = {
    "data_dir": dict(flags=("--data-dir",), type=existing_folder, metavar="DIR",
                     help="where the dataset files are (default: $CNNZOO_DATA, Debian's packages, "
                          "~/.cache/cnnzoo)"),
    "device": dict(flags=("--device",), type=device_name, metavar="DEVICE",
                   help="auto, cpu, cuda, cuda:N or mps (default: cpu)"),
    "out_dir": dict(flags=("--out",), type=writable_folder, metavar="DIR",
                    help="folder to write into"),
    "out_file": dict(flags=("--out",), type=writable_file, metavar="FILE",
                     help="also save the JSON results to this file"),
    "model_kwargs": dict(flags=("--model-kwargs",), type=json_object, metavar="JSON",
                         help="extra builder arguments as a JSON object, e.g. "
                              '\'{"dropout": 0.3}\''),
    "json": dict(flags=("--json",), action="store_true", help="print one JSON document on stdout"),
    "prepare": dict(flags=("--prepare",), action=argparse.BooleanOptionalAction, default=True,
                    help="for models trained on MNIST or Fashion-MNIST, prepare each image as "
                         "those datasets were: invert a light background, trim, resize the "
                         "longest side, pad to a square (default: on; --no-prepare: the pixels as "
                         "they are)"),
    "seed": dict(flags=("--seed",), type=setting("seed"), metavar="N",
                 help=_FIELDS["seed"].metadata["help"]),
    "threads": dict(flags=("--threads",), type=setting("threads"), metavar="N",
                    help=_FIELDS["threads"].metadata["help"]),
    "repeats": dict(flags=("--repeats",), type=whole_number(1, 1000), default=3, metavar="N",
                    help="timed runs per side, interleaved (default: 3)"),
    "seeds": dict(flags=("--seeds",), type=whole_number(1, 100), metavar="N",
                  help="runs with seeds 0..N-1"),
    "models": dict(flags=("--models",), nargs="+", metavar="MODEL",
                   help="models to measure (default: a standard set)"),
    "batch_size": dict(flags=("--batch-size",), type=setting("batch_size"), default=128,
                       metavar="N", help="images per step (default: 128)"),
    "epochs": dict(flags=("--epochs",), type=setting("epochs"), metavar="N",
                   help=_FIELDS["epochs"].metadata["help"]),
    "train_subset": dict(flags=("--train-subset",), type=setting("train_subset"), metavar="N",
                         help=_FIELDS["train_subset"].metadata["help"]),
    "test_subset": dict(flags=("--test-subset",), type=setting("test_subset"), metavar="N",
                        help=_FIELDS["test_subset"].metadata["help"]),
    "memory_budget": dict(flags=("--memory-budget",), type=setting("memory_budget"), metavar="MIB",
                          help=_FIELDS["memory_budget"].metadata["help"]),
    "test_views": dict(flags=("--test-views",), choices=_FIELDS["test_views"].metadata["choices"],
                       default="center",
                       help="test-time views averaged per image (default: center); flip and "
                            "flip-shift (mirror plus one-pixel shifts, 6 views) help models "
                            "trained with --flip and hurt others, ten-crop needs a model trained "
                            "with --crop-padding"),
}


def add(parser, name: str, **changes) -> argparse.Action:
    """Declare the shared option ``name`` on ``parser`` (or an argument group), with ``changes`` (a
    command's own help or default) on top."""
    spec = {"dest": "out" if name.startswith("out_") else name, **SHARED[name], **changes}
    return parser.add_argument(*spec.pop("flags"), **spec)
