"""``cnnzoo scratch NAME``: run one of the NumPy-only demos from the command line.

``register(subparsers)`` adds the subcommand to the ``cnnzoo`` parser. The demo's progress goes to
stderr; ``--json`` prints its figures as one JSON object on stdout. Neither this module nor the
demos import torch.
"""

from __future__ import annotations

import argparse
import sys
import textwrap
from pathlib import Path

from cnnzoo.commands import options
from cnnzoo.console import log_to_stderr, print_json
from cnnzoo.rundir import timestamped_run_dir

# One line per demo for --help; the names are those of cnnzoo.scratch.run.NAMES.
DEMOS = {
    "linreg": "linear regression: the one-variable closed form, the normal equation against "
              "numpy.linalg.lstsq, batch and mini-batch gradient descent",
    "gd": "gradient descent on raw, centred and standardised features: condition numbers and "
          "steps to converge",
    "mlp": "one logistic neuron on a toy task, then a 784-128-10 MLP with hand-written "
           "backpropagation on Fashion-MNIST",
    "cnn": "a LeNet-sized CNN built from NumPy layers (im2col convolution, max-pooling), trained "
           "with SGD and momentum on Fashion-MNIST",
}


def default_out_dir(name: str) -> Path:
    return timestamped_run_dir(f"scratch-{name}")


def cmd_scratch(args: argparse.Namespace) -> int:
    from cnnzoo.scratch.run import run

    out_dir = Path(args.out) if args.out else default_out_dir(args.demo)
    figures = run(args.demo, out_dir=out_dir, quick=args.quick, data_dir=args.data_dir,
                  log=log_to_stderr)
    if args.json:
        print_json({"demo": args.demo, "quick": args.quick, "out_dir": str(out_dir), **figures})
    else:
        print(f"scratch {args.demo}: done; plot in {figures['plot']}", file=sys.stderr)
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``cnnzoo scratch {linreg,gd,mlp,cnn}`` to the ``cnnzoo`` command."""
    demos = "\n".join(textwrap.fill(text, width=100, initial_indent=f"  {name:<8}",
                                    subsequent_indent=" " * 10)
                      for name, text in DEMOS.items())
    p = subparsers.add_parser(
        "scratch", help="deep-learning fundamentals in NumPy only (no torch): regression, GD, "
                        "MLP, CNN",
        description=textwrap.fill("Run one of the from-scratch demos of cnnzoo.scratch, written "
                                  "in NumPy without torch. Each logs what it does on stderr, "
                                  "saves one plot and reports its figures.",
                                  width=100),
        epilog=f"demos:\n{demos}\n\nmlp and cnn read Fashion-MNIST (see --data-dir). --quick "
               "shrinks the data and epochs so that each demo takes seconds.",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("demo", choices=list(DEMOS), metavar="{" + ",".join(DEMOS) + "}",
                   help="which demo to run")
    options.add(p, "out_dir", help="folder for the plot (default: runs/scratch-NAME-TIMESTAMP)")
    p.add_argument("--quick", action="store_true",
                   help="a few seconds: 1,000 training images and 2 epochs for mlp and cnn")
    options.add(p, "data_dir", help="folder holding Fashion-MNIST's four IDX files (default: "
                                    "$CNNZOO_DATA, /usr/share/datasets/fashion-mnist, "
                                    "~/.cache/cnnzoo/fashion-mnist)")
    options.add(p, "json", help="print the demo's figures as one JSON object on stdout")
    p.set_defaults(run=cmd_scratch)
