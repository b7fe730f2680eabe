"""``cnnzoo experiment NAME``: re-check one claim of the papers and say whether it held.

``register(subparsers)`` adds the subcommand to the ``cnnzoo`` parser. Training progress goes to
stderr; the result (claim, held or not, verdict, files) is printed on stdout, or with ``--json`` as
one JSON object. Importing this module imports neither torch nor the experiments.
"""

from __future__ import annotations

import argparse
import textwrap

from cnnzoo.commands import options
from cnnzoo.console import log_to_stderr, print_json
from cnnzoo.experiments.catalog import EXPERIMENTS


def cmd_experiment(args: argparse.Namespace) -> int:
    from cnnzoo.experiments.catalog import run_experiment

    result = run_experiment(args.name, quick=args.quick, out=args.out, seeds=args.seeds,
                            data_dir=args.data_dir, log=log_to_stderr, budget=args.budget)
    if args.json:
        print_json(result)
        return 0
    from cnnzoo.experiments.base import markdown_table

    print(f"{result['experiment']}: {result['claim']}\n")
    print(markdown_table(result["rows"]) + "\n")
    quick = " (quick mode: not evidence)" if result["quick"] else ""
    print(f"verdict: {result['finding'].upper()}{quick}. {result['verdict']}")
    for effect in result["effects"]:
        interval = ("no interval" if effect["low"] is None
                    else f"[{effect['low']:+.3g}, {effect['high']:+.3g}]")
        print(f"  {effect['measure']}: {effect['mean']:+.3g} {interval} over {effect['seeds']} "
              f"seed(s); paper: {effect['paper_figure']}")
    print(f"table: {result['results_md']}  plot: {result['plot']}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``cnnzoo experiment NAME`` to the ``cnnzoo`` command."""
    width = max(map(len, EXPERIMENTS))
    listing = "\n".join(textwrap.fill(e.checks, width=100, initial_indent=f"  {name:<{width}}  ",
                                       subsequent_indent=" " * (width + 4)) for name,
                        e in EXPERIMENTS.items())
    p = subparsers.add_parser(
        "experiment", help="re-check a claim of the papers on Fashion-MNIST (relu-vs-tanh, "
                           "dropout, depth, ...)",
        description=textwrap.fill(
            "Train the arms of one experiment (the same network with one choice changed, over "
            "several seeds where the effect is small), write results.csv, results.md and plot.png "
            "into the run directory, and say whether the paper's claim held here, did not hold, "
            "or is not resolvable at this budget, from a 95% confidence interval of the effect "
            "over seeds. A full experiment says its expected time up front (minutes to an hour on "
            "two CPU cores); --budget MINUTES sets its seeds to fit.",
            width=100),
        epilog=f"experiments:\n{listing}\n\nExample: cnnzoo experiment lrn --seeds 5 --out "
               "runs/lrn",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("name", choices=list(EXPERIMENTS), metavar="NAME",
                   help="which experiment (listed below)")
    p.add_argument("--quick", action="store_true",
                   help="a smoke test of under a minute: a few hundred images, one or two epochs, "
                        "one seed; its numbers are not evidence")
    options.add(p, "out_dir", help="run directory (default: runs/experiment-NAME-TIMESTAMP)")
    options.add(p, "seeds",
                help="train every arm with seeds 0..N-1 (default: the experiment's own, 1 to 5; 1 "
                     "with --quick)")
    options.add(p, "data_dir",
                help="folder holding Fashion-MNIST (default: $CNNZOO_DATA, "
                     "/usr/share/datasets/fashion-mnist, ~/.cache/cnnzoo)")
    p.add_argument("--budget", type=options.number(above=0, high=10_000), metavar="MINUTES",
                   default=None,
                   help="time the full run may take: as many seeds as fit (at least 2); --seeds "
                        "overrides")
    options.add(p, "json", help="print the result as one JSON object on stdout")
    p.set_defaults(run=cmd_experiment)
