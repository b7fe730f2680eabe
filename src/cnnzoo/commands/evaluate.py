"""``cnnzoo eval`` and ``cnnzoo predict``: use a trained model from a run directory or checkpoint file."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cnnzoo.commands import options
from cnnzoo.commands.options import positive_int
from cnnzoo.console import print_json


def cmd_eval(args: argparse.Namespace) -> int:
    from cnnzoo.engine.evaluate import evaluate_run
    from cnnzoo.engine.run import load_run
    from cnnzoo.task_progress import TaskProgress

    run = load_run(args.source, model_name=args.model, device=args.device,
                   run_code=args.run_code)
    with TaskProgress("eval") as progress:
        result = evaluate_run(run, args.dataset, data_dir=args.data_dir, views=args.views,
                              device=args.device, memory_budget=args.memory_budget,
                              progress=progress)
    report = {**result.to_dict(), "model": run.name, "checkpoint": str(run.checkpoint),
              "dataset": args.dataset or run.dataset}
    print(f"{run.name} on {report['dataset']} ({result.images:,} images, {args.views} view, fp32): top-1 "
          f"{result.top1:.2%}, top-5 {result.top5:.2%}{_precision_note(run)}", file=sys.stderr)
    if args.json:
        print_json(report)
    return 0


def _precision_note(run) -> str:
    """Why this figure may differ from the run's own: training evaluated in its training precision."""
    from cnnzoo import rundir
    from cnnzoo.errors import CnnzooError

    if run.run_dir is None or not (run.run_dir / rundir.SUMMARY).exists():
        return ""
    try:
        precision = rundir.read_json(run.run_dir / rundir.SUMMARY, "summary").get("precision", "fp32")
    except CnnzooError:
        return ""
    return "" if precision == "fp32" else (f" (the run's summary.json was evaluated in {precision}, as it trained, "
                                           f"so it can differ by a few tenths of a point)")


def cmd_predict(args: argparse.Namespace) -> int:
    from cnnzoo.engine.predict import predict_files
    from cnnzoo.engine.run import load_run

    run = load_run(args.source, model_name=args.model, device=args.device,
                   run_code=args.run_code)
    results = predict_files(run, args.images, top_k=args.top_k, views=args.views, prepare=args.prepare)
    if args.json:
        print_json({"model": run.name, "checkpoint": str(run.checkpoint), "results": results})
        return 0
    for item in results:
        best = item["predictions"][0]
        others = ", ".join(f"{p['class']} {p['probability']:.1%}" for p in item["predictions"][1:])
        print(f"{item['file']}: {best['class']} ({best['probability']:.1%})" + (f"; then {others}" if others else ""))
        if item.get("prepared"):
            print(f"  prepared as the training images were: {', '.join(item['prepared'])} (--no-prepare: as is)",
                  file=sys.stderr)
        if item.get("warning"):
            print(f"  warning: {item['warning']}", file=sys.stderr)
    return 0


def register(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("eval", help="test accuracy of a trained model",
                            description="Evaluate a run's best checkpoint (or any checkpoint) on a test set.")
    p.add_argument("source", type=Path, metavar="RUN_DIR|CHECKPOINT")
    p.add_argument("--dataset", help="dataset to evaluate on (default: the one it was trained on)")
    options.add(p, "data_dir")
    options.add(p, "test_views", dest="views")
    options.add(p, "memory_budget")
    p.add_argument("--model", help="model name, for a bare state dict (.pt/.pth) that does not record it")
    options.add(p, "device", default="cpu")
    options.add(p, "json", help="print {top1, top5, loss, images, ...} on stdout")
    p.set_defaults(run=cmd_eval)

    p = commands.add_parser("predict", help="classify image files with a trained model",
                            description="Print the most likely classes of each image file (PNG, JPEG, ...).")
    p.add_argument("source", type=Path, metavar="RUN_DIR|CHECKPOINT")
    p.add_argument("images", type=Path, nargs="+", metavar="IMAGE")
    p.add_argument("--top-k", type=positive_int, default=5, metavar="K",
                   help="how many classes to show per image (default: 5)")
    options.add(p, "test_views", dest="views")
    p.add_argument("--prepare", action=argparse.BooleanOptionalAction, default=True,
                   help="for models trained on MNIST or Fashion-MNIST, prepare each photo as those datasets were: "
                        "invert a light background, trim, resize the longest side, pad to a square (default: on)")
    p.add_argument("--model", help="model name, for a bare state dict (.pt/.pth)")
    options.add(p, "device", default="cpu")
    options.add(p, "json")
    p.set_defaults(run=cmd_predict)
