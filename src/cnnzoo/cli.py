"""The ``cnnzoo`` command: builds the parser from the command modules and maps errors to exit codes.

Every subcommand lives in ``cnnzoo.commands`` and prints human-readable output on stderr (or a table
on stdout) and, with ``--json``, exactly one JSON object on stdout for scripts. An error the user
can fix (any ``cnnzoo.errors.CnnzooError``: an unknown model, missing data, a bad option value, a
damaged file) prints one line with the fix and exits with status 2; ``--debug`` shows its traceback.
Anything else is a bug in cnnzoo or below it, and keeps its traceback.
"""

from __future__ import annotations

import argparse
import difflib
import os
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import cnnzoo
from cnnzoo.commands import (
    bench,
    compare,
    data,
    evaluate,
    experiment,
    export,
    importing,
    models,
    recipes,
    scratch,
    serve,
    show,
    train,
)
from cnnzoo.errors import CnnzooError, Stopped

EXIT_USAGE = 2
RUN_CODE_HELP = ("load a run made by `cnnzoo import --code`: this runs that model's Python file "
                 "(checked unchanged since the import)")

# where parse_known_args marks which (sub-)command met an option it does not know
_REFUSED_BY = "_cnnzoo_refused_by"


class CommandLineParser(argparse.ArgumentParser):
    """argparse, with a usage error reported as one line like every other user error (the usage is a
    ``--help`` away); sub-commands are built with the same class, at every level.

    An option no parser knows is reported by the (sub-)command it was given to, with that command's
    ``--help`` and the option it most resembles, rather than by ``cnnzoo`` as argparse would."""

    def error(self, message: str):
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (`{self.prog} --help` lists the "
                              "options)\n")

    def parse_known_args(self, args=None, namespace=None):
        namespace, extras = super().parse_known_args(args, namespace)
        if extras and not hasattr(namespace, _REFUSED_BY):  # the innermost command returns first
            setattr(namespace, _REFUSED_BY, self)
        return namespace, extras

    def parse_args(self, args=None, namespace=None):
        namespace, extras = self.parse_known_args(args, namespace)
        refused_by = vars(namespace).pop(_REFUSED_BY, self)
        if extras:
            refused_by.error(f"unrecognized arguments: {' '.join(extras)}"
                             + _did_you_mean(refused_by, extras))
        return namespace


def _did_you_mean(parser: argparse.ArgumentParser, extras: list[str]) -> str:
    """``; did you mean --test-views?`` for the first unknown option that is a part of one of
    ``parser``'s (``--views``) or a near miss of one (``--jsn``), else nothing."""
    known = [option for action in parser._actions for option in action.option_strings
             if option.startswith("--")]
    for extra in (extra.split("=")[0] for extra in extras if extra.startswith("--")):
        words = extra[2:]
        close = ([option for option in known if f"-{words}" in option[1:]]
                 or difflib.get_close_matches(extra, known, n=1, cutoff=0.8))
        if close:
            return f"; did you mean {close[0]}?"
    return ""


def build_parser() -> argparse.ArgumentParser:
    parser = CommandLineParser(
        prog="cnnzoo",
        description="The classic CNNs of image classification: inspect, train, evaluate and "
                    "predict.",
        epilog="Run `cnnzoo COMMAND --help` for a command's options. Model names: `cnnzoo list`.",
    )
    parser.add_argument("--version", action="version", version=f"cnnzoo {cnnzoo.__version__}")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks for errors")
    parser.add_argument("--run-code", action="store_true", help=RUN_CODE_HELP)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in (models, train, evaluate, importing, data, recipes, bench, scratch, experiment,
                   show, export, compare, serve):
        module.register(commands)
    _accept_global_options(commands)
    return parser


def _accept_global_options(commands: argparse._SubParsersAction) -> None:
    """``--debug`` and ``--run-code`` anywhere on the line: after the command and after a
    sub-command too. Left unset unless given there, so a sub-parser does not undo the one given
    before the command."""
    for command in commands.choices.values():
        command.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                             help="show full tracebacks for errors")
        command.add_argument("--run-code", action="store_true", default=argparse.SUPPRESS,
                             help=RUN_CODE_HELP)
        for action in command._actions:
            if isinstance(action, argparse._SubParsersAction):
                _accept_global_options(action)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    with _stopped_by_sigterm():
        return _run(args)


@contextmanager
def _stopped_by_sigterm() -> Iterator[None]:
    """SIGTERM stops a command as Ctrl-C does (its ``finally`` blocks run, a run in progress is left
    resumable) instead of ending the process on the spot; the handler before is put back after."""
    def stop(signal_number: int, frame) -> None:
        raise Stopped("", signal_number)

    try:
        before = signal.signal(signal.SIGTERM, stop)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, before)


def _run(args: argparse.Namespace) -> int:
    try:
        return args.run(args)
    except CnnzooError as error:
        if args.debug:
            raise
        print(f"cnnzoo {args.command}: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt as interrupt:
        number = getattr(interrupt, "signal_number", signal.SIGINT)
        # under torchrun every process stops; process 0 says so
        if os.environ.get("RANK", "0") == "0":
            print(str(interrupt) or f"stopped by {signal.Signals(number).name}", file=sys.stderr)
        return 128 + number
    except BrokenPipeError:  # `cnnzoo list | head`: the reader left; nothing more to say
        sys.stderr.close()
        return 0
