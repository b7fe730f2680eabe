"""``cnnzoo compare RUN_A RUN_B``: two trained runs side by side, as one report: ``compare.md`` and
the figure it shows, ``compare.png`` (``--json``: the numbers behind both). The numbers and the
drawing are ``cnnzoo.visualize.compare``'s.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from cnnzoo.commands import options
from cnnzoo.commands.options import positive_int, whole_number
from cnnzoo.commands.viewing import finish

SHOWN = 12  # disagreements listed in the markdown (the JSON has them all)


def _default_out(a, b) -> Path:
    def label(run) -> str:
        return run.run_dir.name if run.run_dir else run.checkpoint.stem

    return Path(f"compare-{label(a)}-vs-{label(b)}")


def cmd_compare(args: argparse.Namespace) -> int:
    from cnnzoo import rundir
    from cnnzoo.engine.run import load_run
    from cnnzoo.errors import ConfigError
    from cnnzoo.visualize import compare as c
    from cnnzoo.visualize.drawing import save
    from cnnzoo.visualize.source import load_data

    started = time.perf_counter()
    a, b = (load_run(source, run_code=args.run_code) for source in (args.run_a, args.run_b))
    c.check_comparable(a, b)
    runs = (a, b)
    tests = tuple(load_data(run, args.data_dir).test for run in runs)
    histories = tuple(rundir.read_metrics(run.run_dir) if run.run_dir else [] for run in runs)
    if args.image >= len(tests[0].images):
        raise ConfigError(f"--image {args.image}: the test set has {len(tests[0].images):,} images")
    comparison = c.compare_runs(a, b, tests, histories)
    names = comparison.names
    out = Path(args.out) if args.out else _default_out(a, b)
    figure = c.draw_comparison(
        comparison.sides,
        names,
        comparison.rows,
        comparison.images,
        image=args.image,
        count=args.count,
        title=f"{names[0]} and {names[1]} on {a.dataset}",
    )
    picture = save(figure, out / "compare.png")
    report = c.build_report(comparison, args.image)
    markdown = out / "compare.md"
    rundir.write_text(markdown, _markdown(report, names, picture.name))
    return finish(args, {**report, "wrote": [str(markdown), str(picture)]}, started)


def _markdown(report: dict, names: list[str], picture: str) -> str:
    a, b = report["runs"]
    lines = [
        f"# {names[0]} and {names[1]} on {report['dataset']}",
        "",
        f"![the comparison]({picture})",
        "",
        "| | " + " | ".join(names) + " |",
        "|---|---:|---:|",
        f"| test top-1 ({report['test_images']:,} images, centre view) | {a['test_top1']:.2%} | "
        f"{b['test_top1']:.2%} |",
        f"| epochs, seconds of training | {a['epochs']}, {a['train_seconds']:.0f} s | "
        f"{b['epochs']}, {b['train_seconds']:.0f} s |",
        f"| parameters | {a['params']:,} | {b['params']:,} |",
        f"| multiply-adds per image | {a['macs']:,} | {b['macs']:,} |",
        "",
    ]
    for run in report["runs"]:
        lines += [
            f"## {run['name']}: parameters and multiply-adds per layer",
            "",
            "| layer | type | output | params | MACs |",
            "|---|---|---|---:|---:|",
        ]
        lines += [
            f"| {layer['name']} | {layer['type']} | {'×'.join(map(str, layer['output']))} | "
            f"{layer['params']:,} | {layer['macs']:,} |"
            for layer in run["layers"]
        ]
        lines.append("")
    lines += [
        f"## Where they disagree: {report['disagree']:,} of {report['test_images']:,} test images",
        "",
        f"{names[0]} right: {report['a_right']:,}; {names[1]} right: {report['b_right']:,}; both "
        f"wrong: {report['both_wrong']:,}. They agree on the others: both right on "
        f"{report['both_right']:,}, both wrong alike on {report['both_wrong_alike']:,}.",
        "",
        f"| test image | true class | {names[0]} | {names[1]} |",
        "|---:|---|---|---|",
    ]
    lines += [
        f"| {row['index']} | {row['true']} | {row['a']} | {row['b']} |"
        for row in report["disagreements"][:SHOWN]
    ]
    more = report["disagree"] - SHOWN
    return (
        "\n".join(
            lines
            + (
                [f"\n…and {more:,} more (`cnnzoo compare --json` lists them all)."]
                if more > 0
                else []
            )
        )
        + "\n"
    )


def register(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser(
        "compare",
        help="two trained runs side by side: accuracy, cost per layer, kernels, maps",
        description="One report (compare.md and compare.png) on two runs of the same data set: "
                    "accuracy and curves, parameters and multiply-adds per layer, first-layer "
                    "kernels, one test image's feature maps in each, and the test images where "
                    "their predictions differ.",
    )
    p.add_argument("run_a", type=Path, metavar="RUN_A", help="a run directory or checkpoint")
    p.add_argument("run_b", type=Path, metavar="RUN_B", help="another, of the same data set")
    p.add_argument(
        "--image",
        type=whole_number(0, 10**7),
        default=0,
        metavar="N",
        help="the test image whose feature maps are drawn (default: 0)",
    )
    p.add_argument(
        "--count",
        type=positive_int,
        default=16,
        metavar="N",
        help="disagreements drawn in the figure (default: 16)",
    )
    options.add(p, "data_dir")
    options.add(
        p,
        "out_dir",
        help="where to write compare.md and compare.png (default: compare-A-vs-B in the working "
             "directory)",
    )
    options.add(p, "json", help="print the numbers behind the report")
    p.set_defaults(run=cmd_compare)
