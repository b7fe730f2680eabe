"""``cnnzoo export``: the model as ONNX, checked with onnxruntime on real test images, and with
``--int8`` an int8 file beside it, kept only if it keeps the accuracy
(``engine.precision_gate``)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from cnnzoo.commands import options
from cnnzoo.commands.options import positive_int
from cnnzoo.commands.viewing import finish, one_writer, open_source
from cnnzoo.task_progress import TaskProgress


def cmd_export(args: argparse.Namespace) -> int:
    import torch

    from cnnzoo.visualize.export import compare, export_onnx
    from cnnzoo.visualize.source import load_data, model_input

    started = time.perf_counter()
    run, _ = open_source(args)
    out = Path(args.out) if args.out else (run.run_dir or Path(".")) / f"{run.name}.onnx"
    c, side, _ = run.model.cfg.input_size
    progress = args.held.enter_context(TaskProgress("export"))
    progress.stage(f"writing {out} (torch.onnx traces the model)")
    expects = {"shape": [c, side, side], "pixels": "uint8 / 255, then (x - mean) / std per channel",
               "mean": list(run.input.mean), "std": list(run.input.std)}
    path = export_onnx(run.model, out, torch.zeros(2, c, side, side),
                       metadata={"cnnzoo.input": json.dumps(expects),
                                 "cnnzoo.classes": json.dumps(run.classes)})
    progress.stage("checking it with onnxruntime")
    if run.checkpoint is not None and run.dataset is not None:
        test = load_data(run, args.data_dir).test
        x, source = model_input(run, test.images[: args.images].cpu()), f"{run.dataset} test images"
    else:
        x, source = (
            torch.randn(args.images, c, side, side, generator=torch.Generator().manual_seed(0)),
            "random inputs",
        )
    check = compare(path, run.model, x)
    print(f"{run.name} → {path}: onnxruntime vs PyTorch on {check['images']} {source}: max "
          f"|Δlogit| {check['max_abs_logit_diff']:.2e}, top-1 agreement "
          f"{check['top1_agreement']:.1%}",
          file=sys.stderr)
    print(f"  its input: {c}×{side}×{side} images, {expects['pixels']}, with mean "
          f"{_rounded(expects['mean'])} and std {_rounded(expects['std'])} (also in the file's "
          "metadata, with the class names)", file=sys.stderr)
    report = {"model": run.name, "format": "onnx", "checked_on": source, **check,
              "input": expects, "classes": run.classes, "wrote": [str(path)]}
    if args.int8:
        report["int8"] = _export_int8(args, run, path, progress)
        report["wrote"] += report["int8"].pop("wrote")
    progress.close()
    code = finish(args, report, started)
    return code if not args.int8 or report["int8"]["kept"] else 1


def _rounded(values) -> str:
    return "[" + ", ".join(f"{value:.4g}" for value in values) + "]"


def _export_int8(args: argparse.Namespace, run, path: Path, progress: TaskProgress) -> dict:
    """ONNX Runtime's int8 file beside the fp32 one, kept only if the gate passes (or --force); the
    gate's figures go to a .json beside it either way, and to the run's verdicts, where `cnnzoo
    predict --precision int8` finds the file."""
    from cnnzoo.engine.precision_gate import gate, store_verdict, verdict
    from cnnzoo.errors import ConfigError

    if run.checkpoint is None:
        raise ConfigError("--int8 needs a trained run: the gate compares int8 with fp32 on its "
                          "test set")
    int8_path = path.with_name(path.stem + ".int8.onnx")
    progress.stage(f"int8: calibrating on training images, then the gate on {run.dataset}'s test "
                   "set")
    _, report = gate(run, "int8", data_dir=args.data_dir, force=args.force, onnx_path=int8_path)
    print(verdict(report), file=sys.stderr)
    figures = int8_path.with_suffix(".json")
    figures.write_text(json.dumps(report, indent=2) + "\n")
    if not report["kept"]:
        int8_path.unlink(missing_ok=True)
    if run.run_dir is not None:
        store_verdict(run.run_dir, {**report, "file": str(int8_path.resolve())})
    return {**report, "wrote": ([str(int8_path)] if report["kept"] else []) + [str(figures)]}


def register(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("export", help="write the model as ONNX (dynamic batch), checked with "
                                           "onnxruntime",
                            description="Export to ONNX and compare onnxruntime with PyTorch on "
                                        "real test images.")
    p.add_argument("source", metavar="RUN|MODEL")
    p.add_argument("--format", choices=("onnx",), default="onnx")
    options.add(p, "out_file", help="the .onnx file (default: RUN/MODEL.onnx)")
    p.add_argument("--images", type=positive_int, default=256,
                   help="test images to compare on (default: 256)")
    options.add(p, "data_dir")
    p.add_argument("--int8", action="store_true",
                   help="also write MODEL.int8.onnx (ONNX Runtime static int8, calibrated on "
                        "training images), kept only if its test top-1 is within 0.5 points of "
                        "fp32 and it is faster; the figures go to MODEL.int8.json")
    p.add_argument("--force", action="store_true",
                   help="with --int8: keep it even if the gate refuses")
    options.add(p, "json", help="print max |Δlogit|, top-1 agreement and the file written")
    p.set_defaults(run=one_writer(cmd_export))
