"""The ``cnnzoo`` command: parses arguments and dispatches to the library's plain functions.

Every subcommand prints human-readable output on stderr (or a table on stdout) and, with ``--json``, exactly
one JSON object on stdout for scripts. Errors a user can fix (an unknown model, missing data, a bad image)
print one message with the fix and exit with status 2; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable

EXIT_USAGE = 2


class CliError(Exception):
    """An error the user can fix; its message says how."""


def _print_json(obj) -> None:
    json.dump(obj, sys.stdout, indent=2)
    sys.stdout.write("\n")


def _parse_input_size(text: str) -> tuple[int, int, int]:
    parts = text.replace("x", ",").split(",")
    try:
        values = tuple(int(p) for p in parts)
    except ValueError:
        values = ()
    if len(values) == 2:
        raise argparse.ArgumentTypeError(f"--input-size needs C,H,W (for example 1,28,28); got {text!r}")
    if len(values) != 3 or min(values) < 1:
        raise argparse.ArgumentTypeError(f"--input-size must be three positive integers C,H,W; got {text!r}")
    return values


# ---- list / summary ------------------------------------------------------------------------------------------


def cmd_list(args: argparse.Namespace) -> int:
    from cnnzoo.registry import create_model, list_models

    rows = []
    for name in list_models(args.pattern):
        model = create_model(name)
        rows.append({"name": name, "params": sum(p.numel() for p in model.parameters() if p.requires_grad),
                     "input_size": list(model.cfg.input_size), "num_classes": model.cfg.num_classes,
                     "paper": model.cfg.paper})
    if not rows:
        raise CliError(f"no model matches {args.pattern!r}; `cnnzoo list` shows them all")
    if args.json:
        _print_json(rows)
        return 0
    print(f"{'model':<22} {'params':>13}  {'input':<12} {'classes':>7}  paper")
    for row in rows:
        size = "×".join(map(str, row["input_size"]))
        print(f"{row['name']:<22} {row['params']:>13,}  {size:<12} {row['num_classes']:>7}  {row['paper']}")
    return 0


def cmd_summary(args: argparse.Namespace) -> int:
    from cnnzoo.inspect.summary import summary
    from cnnzoo.registry import create_model

    kwargs = {}
    if args.num_classes is not None:
        kwargs["num_classes"] = args.num_classes
    if args.input_size is not None:
        kwargs["in_channels"] = args.input_size[0]
    model = _build_for_input(create_model, args.model, kwargs, args.input_size)
    result = summary(model, args.input_size)
    if args.json:
        _print_json(result.to_dict())
    else:
        print(result)
    return 0


def _build_for_input(create_model: Callable, name: str, kwargs: dict, input_size) -> object:
    """Build ``name``; models whose head depends on the image size are built for ``input_size``."""
    import inspect as pyinspect

    from cnnzoo.registry import get_builder

    accepted = pyinspect.signature(get_builder(name)).parameters
    kwargs = {k: v for k, v in kwargs.items() if k in accepted or k in ("num_classes", "in_channels")}
    if input_size is not None and "input_size" in accepted:
        kwargs["input_size"] = input_size[1]
    return create_model(name, **kwargs)


# ---- parser -----------------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cnnzoo",
        description="The classic CNNs of image classification: inspect, train, evaluate and predict.",
        epilog="Run `cnnzoo COMMAND --help` for a command's options. Model names: `cnnzoo list`.",
    )
    parser.add_argument("--debug", action="store_true", help="show full tracebacks for errors")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = commands.add_parser("list", help="list the registered models",
                            description="List registered models with their parameters and default input size.")
    p.add_argument("pattern", nargs="?", default="*", help="shell-style filter, e.g. 'resnet*' (default: all)")
    p.add_argument("--json", action="store_true", help="print a JSON array on stdout")
    p.set_defaults(run=cmd_list)

    p = commands.add_parser(
        "summary", help="per-layer shapes, parameters, multiply-adds and receptive fields",
        description="Run one image through a model and report, for every layer: output shape, parameters, "
                    "multiply-adds, connections (LeCun's count) and receptive field.")
    p.add_argument("model", help="registered model name (see `cnnzoo list`)")
    p.add_argument("--input-size", type=_parse_input_size, metavar="C,H,W",
                   help="input shape (default: the model's own, e.g. 1,32,32 for lenet5_1998)")
    p.add_argument("--num-classes", type=int, help="number of output classes (default: the model's)")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    p.set_defaults(run=cmd_summary)

    for register in _EXTRA_COMMANDS:
        register(commands)
    return parser


# Modules that add their own subcommands (training, data, scratch, ...) append a `register(subparsers)` here.
_EXTRA_COMMANDS: list[Callable[[argparse._SubParsersAction], None]] = []


def _user_errors() -> tuple[type[BaseException], ...]:
    from cnnzoo.models.base import InputShapeError
    from cnnzoo.registry import UnknownModelError

    errors: list[type[BaseException]] = [CliError, UnknownModelError, InputShapeError, FileNotFoundError]
    try:
        from cnnzoo.data.errors import DataFilesMissing, DataFormatError

        errors += [DataFilesMissing, DataFormatError]
    except ImportError:  # pragma: no cover - the data package is always installed
        pass
    return tuple(errors)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except _user_errors() as error:
        if args.debug:
            raise
        print(f"cnnzoo {args.command}: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
