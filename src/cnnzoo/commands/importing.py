"""``cnnzoo import``: a model trained elsewhere as a run directory that every command then takes.

The work is in ``cnnzoo.engine.importing``; this module only reads the options.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cnnzoo.commands import options
from cnnzoo.commands.models import parse_input_size
from cnnzoo.commands.options import json_arguments, number
from cnnzoo.console import print_json

DESCRIPTION = """\
Make a run directory from a model trained anywhere: weights for a cnnzoo architecture (--model;
cnnzoo's or torchvision's key layout), a TorchScript file, a torch.export ExportedProgram (.pt2),
or weights for a class in your own Python file (--code). eval, predict, export, scoremap, serve,
summary and every `show` view then take the run as they take one that cnnzoo trained.

Weights are read with torch.load(weights_only=True) or safetensors, and TorchScript and .pt2
files hold graphs of PyTorch operations: none of them runs Python from the file. --code RUNS
YOUR FILE'S PYTHON, now and whenever the run is loaded (which then needs --run-code).

Normalisation is what you state with --mean/--std, or none (pixels in [0, 1]): a --dataset
gives class names only. torchvision-layout weights for a cnnzoo architecture default to
ImageNet's statistics, as torchvision's weights expect, and the import says so."""


def cmd_import(args: argparse.Namespace) -> int:
    from cnnzoo.engine.importing import ImportSettings, import_run

    out = args.out or Path("runs") / f"{args.name or args.source.stem.split('.')[0]}-imported"
    settings = ImportSettings(args.source, Path(out), model=args.model, code=args.code,
                              code_args=args.code_args, input_size=args.input_size,
                              mean=args.mean, std=args.std, classes=args.classes,
                              dataset=args.dataset, name=args.name, overwrite=args.overwrite)
    report = import_run(settings)
    print(f"imported {args.source} ({report['format']}) as {report['model']}: input "
          f"{'×'.join(map(str, report['input_size']))}, {report['classes']} classes, "
          f"{report['parameters']:,} parameters; normalisation: {report['normalisation']}",
          file=sys.stderr)
    flag = " --run-code" if args.code else ""
    print(f"wrote {report['run']} (try `cnnzoo summary {report['run']}{flag}`)", file=sys.stderr)
    if args.json:
        print_json(report)
    return 0


def register(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("import", help="a model trained elsewhere as a run directory "
                                           "(weights, TorchScript, .pt2, or your own class)",
                            description=DESCRIPTION,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("source", type=Path, metavar="FILE",
                   help="weights (.pt, .pth, .safetensors), TorchScript (.pt) or ExportedProgram "
                        "(.pt2)")
    p.add_argument("--model", metavar="NAME",
                   help="the cnnzoo architecture the weights are for (`cnnzoo list`)")
    p.add_argument("--code", metavar="FILE.py:NAME",
                   help="the class (or function) in your own file that builds the model; THIS "
                        "RUNS THE FILE'S PYTHON, now and whenever the run is loaded")
    p.add_argument("--code-args", type=json_arguments, metavar="JSON",
                   help="arguments for --code's NAME: a JSON list or object")
    p.add_argument("--input-size", type=parse_input_size, metavar="C,H,W",
                   help="the input the model takes (default: the architecture's own, or the "
                        ".pt2's exported shape; needed for TorchScript and --code)")
    p.add_argument("--mean", type=number(low=0, high=1), nargs="+", metavar="M",
                   help="per-channel mean (of pixels in [0, 1]) the inputs were normalised with "
                        "(default: none)")
    p.add_argument("--std", type=number(above=0, high=1), nargs="+", metavar="S",
                   help="per-channel standard deviation (default: none)")
    p.add_argument("--classes", type=Path, metavar="FILE", help="class names, one a line")
    p.add_argument("--dataset", metavar="NAME",
                   help="the data set it was trained on: its class names, and what eval and the "
                        "data views use (never a normalisation)")
    p.add_argument("--name", help="the model's name in figures and lists (default: the class or "
                                  "file name)")
    options.add(p, "out_dir", help="the run directory to write (default: runs/NAME-imported)")
    p.add_argument("--overwrite", action="store_true", help="replace a run already in --out")
    options.add(p, "json", help="print the run written, its input, classes and provenance")
    p.set_defaults(run=cmd_import)
