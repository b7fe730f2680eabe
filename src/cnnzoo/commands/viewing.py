"""What every ``cnnzoo show`` view does first and last: open the run (or fresh model) and the folder
to write, holding the run's writer lock, then report what was written (``--json``: one document on
stdout).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import sys
import time
from pathlib import Path

from cnnzoo.console import print_json


def open_source(args: argparse.Namespace):
    """The run (or fresh model) and where to write; writing into a run directory takes its writer
    lock (held until the command ends, see ``one_writer``), so a view never writes beside a training
    that is under way.
    """
    from cnnzoo.engine.run import open_run
    from cnnzoo.rundir import writer_lock

    run = open_run(args.source, run_code=getattr(args, "run_code", False))
    out = Path(args.out) if args.out else run.default_out()
    if run.run_dir is not None and out.resolve().is_relative_to(run.run_dir.resolve()):
        args.held.enter_context(writer_lock(run.run_dir))
    return run, out


def one_writer(command):
    """``command`` with a place (``args.held``) for the locks it takes, released when it returns."""

    @functools.wraps(command)
    def run(args: argparse.Namespace) -> int:
        with contextlib.ExitStack() as args.held:
            return command(args)

    return run


def finish(args: argparse.Namespace, report: dict, started: float) -> int:
    report["seconds"] = round(time.perf_counter() - started, 3)
    if report.get("prepared"):
        print(f"prepared: {'; '.join(report['prepared'])}", file=sys.stderr)
    if report.get("warning"):
        print(f"warning: {report['warning']}", file=sys.stderr)
    for path in report.get("wrote", []):
        print(f"wrote {path}", file=sys.stderr)
    if args.json:
        print_json(report)
    return 0


def class_index(value: str | None, classes: list[str]) -> int | None:
    """A class given by name or index; None means the predicted class."""
    from cnnzoo.errors import ConfigError

    if value is None:
        return None
    if value in classes:
        return classes.index(value)
    if value.isdigit() and int(value) < len(classes):
        return int(value)
    raise ConfigError(
        f"unknown class {value!r}; the classes are {', '.join(classes)} (or 0…{len(classes) - 1})"
    )
