"""``cnnzoo eval`` and ``cnnzoo predict``: use a trained model from a run directory or checkpoint
file."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cnnzoo.commands import options
from cnnzoo.commands.options import positive_int
from cnnzoo.console import print_json
from cnnzoo.engine.config import ANSWER_PRECISIONS


def cmd_eval(args: argparse.Namespace) -> int:
    from cnnzoo.engine.evaluate import evaluate_run
    from cnnzoo.engine.memory import keep_freed_memory
    from cnnzoo.engine.run import load_run
    from cnnzoo.task_progress import TaskProgress

    keep_freed_memory()  # each batch's buffers reused rather than faulted in again (as training)
    run = load_run(args.source, model_name=args.model, device=args.device,
                   run_code=args.run_code)
    if args.precision != "fp32":
        return _eval_reduced(args, run)
    with TaskProgress("eval") as progress:
        result = evaluate_run(run, args.dataset, data_dir=args.data_dir, views=args.views,
                              device=args.device, memory_budget=args.memory_budget,
                              progress=progress)
    dataset = args.dataset or run.dataset
    recorded = _recorded_top1(run, result.views, dataset)
    report = {**result.to_dict(), "model": run.name, "checkpoint": str(run.checkpoint),
              "dataset": dataset, "epoch": run.recorded.get("epoch"), "recorded_top1": recorded}
    print(
        f"{run.variant}, {_checkpoint_name(run)}, on {dataset} ({result.images:,} images, "
        f"{result.views} view, fp32): top-1 {result.top1:.2%}, top-5 {result.top5:.2%}"
        f"{_recorded_note(run, recorded)}",
        file=sys.stderr,
    )
    if args.json:
        print_json(report)
    return 0


def _checkpoint_name(run) -> str:
    """``checkpoint best (epoch 9)``, or the file's name where training recorded no epoch."""
    epoch = run.recorded.get("epoch")
    return f"checkpoint {run.checkpoint.stem}" + (f" (epoch {epoch})" if epoch is not None else "")


def _recorded_top1(run, views: str, dataset: str) -> float | None:
    """The test top-1 training recorded for this checkpoint, where it scored the same images the
    same way (None elsewhere: another data set, other views, a test subset)."""
    from cnnzoo.data.names import same_dataset

    top1 = run.recorded.get("test_top1")
    if (views != run.test_views or not same_dataset(dataset, run.dataset)
            or run.config.get("test_subset")):
        return None
    return top1


def _recorded_note(run, top1: float | None) -> str:
    """The figure to compare with, and why it may differ a little: it was evaluated in the
    precision the run trained in."""
    if top1 is None:
        return ""
    precision = run.recorded["precision"]
    how = "" if precision == "fp32" else (f" in {precision}, as it trained (the two can differ "
                                          "by a few tenths of a point)")
    return f"; the run recorded {top1:.2%}{how}"


def _eval_reduced(args: argparse.Namespace, run) -> int:
    """bf16 or int8 beside fp32 on the test set (centre view), through the gate of
    ``engine.precision_gate``; its verdict is printed and stored in the run directory."""
    from cnnzoo.engine.precision_gate import gate, store_verdict, verdict
    from cnnzoo.errors import ConfigError
    from cnnzoo.task_progress import TaskProgress

    if args.views not in (None, "center") or args.dataset:
        raise ConfigError("--precision bf16/int8 is checked on the run's own test set, centre view")
    with TaskProgress("eval") as progress:
        progress.stage(f"{args.precision}: building it, then fp32 and it on the test set")
        _, report = gate(run, args.precision, data_dir=args.data_dir, force=args.force,
                         int8_backend=args.int8_backend)
    print(f"{run.name}: {verdict(report)}", file=sys.stderr)
    if run.run_dir is not None:
        store_verdict(run.run_dir, report)
    if args.json:
        print_json({**report, "model": run.name, "checkpoint": str(run.checkpoint)})
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from cnnzoo.engine.predict import predict_files_in
    from cnnzoo.engine.run import load_run

    run = load_run(args.source, model_name=args.model, device=args.device,
                   run_code=args.run_code)
    # fp32's output is as it always was; a reduced precision says what it traded
    results, traded = predict_files_in(run, args.images, args.precision,
                                       data_dir=args.data_dir, top_k=args.top_k,
                                       views=args.views, prepare=args.prepare)
    if args.json:
        print_json({"model": run.name, "checkpoint": str(run.checkpoint), **traded,
                    "results": results})
        return 0
    if traded:
        print(_traded(run, args.precision, traded["gate"]), file=sys.stderr)
    for item in results:
        best = item["predictions"][0]
        others = ", ".join(f"{p['class']} {p['probability']:.1%}" for p in item["predictions"][1:])
        print(
            f"{item['file']}: {best['class']} ({best['probability']:.1%})"
            + (f"; then {others}" if others else "")
        )
        if item["prepared"]:
            hint = " (--no-prepare: the pixels as they are, only resized)" if args.prepare else ""
            print(f"  prepared: {'; '.join(item['prepared'])}{hint}", file=sys.stderr)
        if item.get("warning"):
            print(f"  warning: {item['warning']}", file=sys.stderr)
    return 0


def _traded(run, precision: str, figures: dict) -> str:
    """One line: the precision used and what the accuracy gate measured it to cost."""
    if not figures:
        return (f"{precision} (autocast): not measured yet; `cnnzoo eval {run.run_dir or 'RUN_DIR'}"
                f" --precision {precision}` says what it costs in top-1")
    backend = f" ({figures['backend']})" if figures.get("backend") else ""
    line = (f"{precision}{backend}: the gate measured top-1 {figures['top1']:.2%} against fp32 "
            f"{figures['fp32_top1']:.2%} ({figures['accuracy_drop_points']:+.2f} points lost), "
            f"agreement with fp32 {figures['top1_agreement_with_fp32']:.1%} on "
            f"{figures['images']:,} test images")
    return line + ("; kept because --force was given" if figures.get("forced") else "")


def register(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("eval", help="test accuracy of a trained model",
                            description="Evaluate a run's best checkpoint (or any checkpoint) on "
                                        "a test set, with the test-time views the run scored "
                                        "itself with, so that its figure can be checked.")
    p.add_argument("source", type=Path, metavar="RUN_DIR|CHECKPOINT")
    p.add_argument("--dataset", help="dataset to evaluate on (default: the one it was trained "
                                     "on); another folder:PATH is scored on all its images (its "
                                     "val/ part if it has one), each class folder named after a "
                                     "class the model predicts")
    options.add(p, "data_dir")
    options.add(p, "test_views", dest="views", default=None,
                help="test-time views averaged per image (default: the run's own, from its "
                     "config.json, else center); flip and flip-shift (mirror plus one-pixel "
                     "shifts, 6 views) suit models trained with --flip, ten-crop models trained "
                     "with --crop-padding")
    options.add(p, "memory_budget")
    p.add_argument("--model", help="model name, for a bare state dict (.pt/.pth) that does not "
                                   "record it")
    p.add_argument("--precision", choices=ANSWER_PRECISIONS, default="fp32",
                   help="fp32 (default), or bf16/int8 evaluated beside fp32 and kept only within "
                        "0.5 points of its top-1 and faster (bf16: fp32 where the CPU has no "
                        "native bf16)")
    p.add_argument("--int8-backend", choices=("auto", "pt2e", "onnxruntime"), default="auto",
                   help="int8 toolchain: torchao PT2E, ONNX Runtime, or the faster here (default: "
                        "auto)")
    p.add_argument("--force", action="store_true",
                   help="keep bf16/int8 even if the gate refuses it")
    options.add(p, "device", default="cpu")
    options.add(p, "json", help="print {top1, top5, loss, images, ..., recorded_top1} on stdout "
                                "(recorded_top1: training's figure for the same images and views, "
                                "else null)")
    p.set_defaults(run=cmd_eval)

    p = commands.add_parser("predict", help="classify image files with a trained model",
                            description="Print the most likely classes of each image file (PNG, "
                                        "JPEG, ...).")
    p.add_argument("source", type=Path, metavar="RUN_DIR|CHECKPOINT")
    p.add_argument("images", type=Path, nargs="+", metavar="IMAGE")
    p.add_argument("--top-k", type=positive_int, default=5, metavar="K",
                   help="how many classes to show per image (default: 5)")
    options.add(p, "test_views", dest="views")
    options.add(p, "prepare")
    p.add_argument("--model", help="model name, for a bare state dict (.pt/.pth)")
    p.add_argument("--precision", choices=ANSWER_PRECISIONS, default="fp32",
                   help="fp32 (default); bf16 (autocast, where the CPU has native bf16) or int8 "
                        "(the model `cnnzoo eval --precision int8` or `export --int8` kept), "
                        "printed with the accuracy gate's figures")
    options.add(p, "data_dir", help="with --precision int8: where the run's training images are "
                                    "(int8 is rebuilt from them unless export wrote its file)")
    options.add(p, "device", default="cpu")
    options.add(p, "json")
    p.set_defaults(run=cmd_predict)
