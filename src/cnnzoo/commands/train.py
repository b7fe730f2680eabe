"""``cnnzoo train``: train a model, run a recipe, or resume a run.

Its options are generated from ``TrainConfig``'s fields (name, type, help text and default all come
from the field's declaration), so the command line and the Python API cannot drift apart.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from cnnzoo.commands import options
from cnnzoo.console import print_json
from cnnzoo.engine.config import TrainConfig, flag
from cnnzoo.errors import ConfigError

# The settings declared in commands.options, shared with other commands: their name there.
_SHARED = {"data_dir": "data_dir", "device": "device", "out": "out_dir", "seed": "seed",
           "threads": "threads",
           "memory_budget": "memory_budget", "test_views": "test_views", "epochs": "epochs",
           "train_subset": "train_subset", "test_subset": "test_subset", "batch_size": "batch_size"}


def add_config_options(parser: argparse.ArgumentParser) -> None:
    """One option per ``TrainConfig`` field; each defaults to None, meaning "not given". A number is
    checked against the field's declaration as it is parsed; the options other commands share keep
    their shared checks (a data folder that exists, a device this machine has, an output folder that
    can be written)."""
    defaults = TrainConfig()
    groups: dict[str, argparse._ArgumentGroup] = {}
    for f in dataclasses.fields(TrainConfig):
        group_name = f.metadata["group"]
        if group_name not in groups:
            groups[group_name] = parser.add_argument_group(group_name)
        group = groups[group_name]
        default = getattr(defaults, f.name)
        shown = "" if default is None or f.name == "model" else f" (default: {default})"
        if f.name == "model_kwargs":
            options.add(group, "model_kwargs", default=None,
                        help=options.SHARED["model_kwargs"]["help"] + " (with --recipe, merged key "
                             "by key into the recipe's)")
        elif isinstance(default, bool) or str(f.type) == "bool | None":
            shown = "" if default is None else f" (default: {'on' if default else 'off'})"
            group.add_argument(flag(f.name), action=argparse.BooleanOptionalAction, default=None,
                               help=f.metadata["help"] + shown)
        elif f.name in _SHARED:
            options.add(
                group,
                _SHARED[f.name],
                default=None,
                help=f.metadata["help"] + shown,
                **(
                    {"type": options.setting("device", options.device_name)}
                    if f.name == "device"
                    else {}
                ),
            )
        else:
            numeric = str(f.type).split(" ")[0] in ("int", "float")
            group.add_argument(flag(f.name), type=options.setting(f.name) if numeric else str,
                               default=None,
                               metavar=f.name.upper(), help=f.metadata["help"] + shown)


def given_options(args: argparse.Namespace) -> dict:
    """The ``TrainConfig`` settings given on the command line (those left out are absent)."""
    names = [f.name for f in dataclasses.fields(TrainConfig)]
    return {name: getattr(args, name) for name in names if getattr(args, name, None) is not None}


def cmd_train(args: argparse.Namespace) -> int:
    from cnnzoo.engine.distributed import is_main_process
    from cnnzoo.engine.resume import AUTO
    from cnnzoo.engine.train import train
    from cnnzoo.recipes import train_config

    options = given_options(args)
    auto = args.resume is not None and str(args.resume) == AUTO
    # the run's own settings; what may change is engine.resume's call
    if args.resume is not None and not auto:
        if args.recipe or args.overwrite:
            raise ConfigError("--resume continues a run with its own settings, so it takes no "
                              f"{'--recipe' if args.recipe else '--overwrite'}")
        config = None
    else:
        if args.recipe is None and "model" not in options:
            raise ConfigError("say what to train: --model NAME (and --dataset), --recipe NAME, or "
                              "--resume RUN_DIR")
        config = train_config(args.recipe, options)
    summary = train(config, resume=AUTO if auto else args.resume,
                    overrides=options if config is None else None,
                    overwrite=args.overwrite, progress=not args.no_progress)
    # under torchrun, process 0 reports for the job: one result, one JSON document
    if not is_main_process():
        return 0
    print(result_sentence(summary), file=sys.stderr)
    if args.json:
        print_json(summary)
    return 0


def result_sentence(summary: dict) -> str:
    """``test accuracy 91.2% (top-5 99.7%) after 3 epochs, 41 s of training; …`` (saying when the
    time budget, not the epochs, stopped it: its last epoch may have been cut short)."""
    epochs = summary["epochs"]
    cut = "; the time budget stopped the run" if summary.get("stopped_by") == "time_budget" else ""
    return (f"test accuracy {summary['test_top1']:.2%} (top-5 {summary['test_top5']:.2%}) after "
            f"{epochs} epoch{'s' if epochs != 1 else ''}{cut}, {summary['train_seconds']:.0f} s of "
            f"training; plots and checkpoints in {summary['run_dir']}")


def register(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser(
        "train", help="train a model on a dataset (or run a recipe)",
        usage="cnnzoo train (--model NAME | --recipe NAME | --resume RUN_DIR) [options]",
        description="Train a model and write a run directory: config.json, metrics.csv, "
                    "summary.json, curves.png, confusion.png, per_class.csv and "
                    "checkpoints/{last,best}.safetensors.",
        epilog="Examples:  cnnzoo train --model lenet5 --dataset fashion-mnist --epochs 5\n       "
               "    cnnzoo train --recipe budgetnet-fast --json\n           cnnzoo train --resume "
               "runs/lenet5-fashion-mnist-20260101-120000\n           cnnzoo train --model lenet5 "
               "--out runs/mine --overwrite",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--recipe", help="start from a named recipe (see `cnnzoo recipes`); options "
                                    "given override it")
    p.add_argument("--resume", type=Path, metavar="RUN_DIR",
                   help="continue an interrupted run exactly; `--resume auto` continues the run "
                        "in --out if it has a checkpoint, else starts it (what a process torchrun "
                        "restarted does)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace the run already in --out (its files go once the new run has "
                        "written its config); without it, a directory holding a run is refused")
    options.add(p, "json", help="print summary.json's contents on stdout")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (per-epoch lines "
                                                              "only)")
    add_config_options(p)
    p.set_defaults(run=cmd_train)
