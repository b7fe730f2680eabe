"""The ``cnnzoo`` command: parses arguments and dispatches to the library's plain functions.

Every subcommand prints human-readable output on stderr (or a table on stdout) and, with ``--json``, exactly
one JSON object on stdout for scripts. Errors a user can fix (an unknown model, missing data, a bad image)
print one message with the fix and exit with status 2; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

EXIT_USAGE = 2


from cnnzoo.errors import ConfigError as CliError, CnnzooError


def _print_json(obj) -> None:
    json.dump(obj, sys.stdout, indent=2)
    sys.stdout.write("\n")


def _parse_input_size(text: str) -> tuple[int, int, int]:
    parts = text.replace("x", ",").split(",")
    try:
        values = tuple(int(p) for p in parts)
    except ValueError:
        values = ()
    if len(values) == 2:
        raise argparse.ArgumentTypeError(f"--input-size needs C,H,W (for example 1,28,28); got {text!r}")
    if len(values) != 3 or min(values) < 1:
        raise argparse.ArgumentTypeError(f"--input-size must be three positive integers C,H,W; got {text!r}")
    return values


# ---- list / summary ------------------------------------------------------------------------------------------


def cmd_list(args: argparse.Namespace) -> int:
    import torch

    from cnnzoo.registry import create_model, list_models

    rows = []
    for name in list_models(args.pattern):
        with torch.device("meta"):  # shapes and counts only: no memory for VGG's 140M weights, no init work
            model = create_model(name)
        rows.append({"name": name, "params": sum(p.numel() for p in model.parameters() if p.requires_grad),
                     "input_size": list(model.cfg.input_size), "num_classes": model.cfg.num_classes,
                     "paper": model.cfg.paper})
    if not rows:
        raise CliError(f"no model matches {args.pattern!r}; `cnnzoo list` shows them all")
    if args.json:
        _print_json(rows)
        return 0
    print(f"{'model':<22} {'params':>13}  {'input':<12} {'classes':>7}  paper")
    for row in rows:
        size = "×".join(map(str, row["input_size"]))
        print(f"{row['name']:<22} {row['params']:>13,}  {size:<12} {row['num_classes']:>7}  {row['paper']}")
    return 0


def cmd_summary(args: argparse.Namespace) -> int:
    from cnnzoo.inspect.summary import summary
    from cnnzoo.registry import build_for_size

    kwargs = {}
    if args.num_classes is not None:
        kwargs["num_classes"] = args.num_classes
    if args.input_size is not None:
        kwargs["in_channels"] = args.input_size[0]
    model = build_for_size(args.model, args.input_size[1] if args.input_size else None, **kwargs)
    result = summary(model, args.input_size)
    if args.json:
        _print_json(result.to_dict())
    else:
        print(result)
    return 0


# ---- parser -----------------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cnnzoo",
        description="The classic CNNs of image classification: inspect, train, evaluate and predict.",
        epilog="Run `cnnzoo COMMAND --help` for a command's options. Model names: `cnnzoo list`.",
    )
    parser.add_argument("--debug", action="store_true", help="show full tracebacks for errors")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = commands.add_parser("list", help="list the registered models",
                            description="List registered models with their parameters and default input size.")
    p.add_argument("pattern", nargs="?", default="*", help="shell-style filter, e.g. 'resnet*' (default: all)")
    p.add_argument("--json", action="store_true", help="print a JSON array on stdout")
    p.set_defaults(run=cmd_list)

    p = commands.add_parser(
        "summary", help="per-layer shapes, parameters, multiply-adds and receptive fields",
        description="Run one image through a model and report, for every layer: output shape, parameters, "
                    "multiply-adds, connections (LeCun's count) and receptive field.")
    p.add_argument("model", help="registered model name (see `cnnzoo list`)")
    p.add_argument("--input-size", type=_parse_input_size, metavar="C,H,W",
                   help="input shape (default: the model's own, e.g. 1,32,32 for lenet5_1998)")
    p.add_argument("--num-classes", type=int, help="number of output classes (default: the model's)")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    p.set_defaults(run=cmd_summary)

    from cnnzoo.experiments.commands import register as register_experiment
    from cnnzoo.scratch.commands import register as register_scratch

    for register in (_register_training_commands, _register_bench_commands, register_scratch, register_experiment):
        register(commands)
    return parser


# ---- train / eval / predict / data --------------------------------------------------------------------------------

# Help for each TrainConfig field; the options of `cnnzoo train` are generated from the dataclass, so the CLI and
# the Python API cannot drift apart.
TRAIN_HELP = {
    "model": "registered model name (see `cnnzoo list`)",
    "dataset": "fashion-mnist, mnist, cifar10, cifar100 or folder:PATH (one sub-folder per class)",
    "data_dir": "where the dataset files are (default: $CNNZOO_DATA, Debian's packages, ~/.cache/cnnzoo)",
    "train_subset": "train on the first N training images only",
    "test_subset": "evaluate on the first N test images only",
    "epochs": "number of passes over the training set",
    "time_budget": "stop after this many seconds of training (the schedule is stretched to fit it)",
    "batch_size": "images per optimiser step",
    "optimizer": "sgd, adam or adamw",
    "lr": "peak learning rate",
    "momentum": "SGD momentum",
    "nesterov": "Nesterov momentum for SGD",
    "weight_decay": "L2 penalty on weights (not on biases or BatchNorm scales)",
    "schedule": "learning-rate schedule: constant, step, plateau (AlexNet's ÷10), cosine, onecycle",
    "warmup_epochs": "linear warm-up length, in epochs (cosine, step, constant)",
    "step_epochs": "step schedule: divide the rate by 10 every N epochs",
    "plateau_patience": "plateau schedule: epochs without progress before dividing by 10",
    "label_smoothing": "label smoothing of the cross-entropy (e.g. 0.1)",
    "grad_clip": "clip the global gradient norm to this value",
    "ema_decay": "evaluate an exponential moving average of the weights (e.g. 0.999)",
    "input_size": "image side fed to the model (default: the data's, or the model's if it needs its own)",
    "crop_padding": "random crops after zero-padding each side by N pixels (0: off)",
    "flip": "random horizontal flips (off by default: wrong for digits)",
    "pca_noise": "AlexNet's PCA colour noise, std of α (the paper: 0.1); RGB data only",
    "test_views": "center, flip (average with the mirror image; for runs with --flip) or ten-crop (for runs with "
                  "--crop-padding)",
    "device": "auto, cpu, cuda or mps",
    "precision": "auto (fastest the hardware supports well), fp32, bf16 or fp16",
    "channels_last": "NHWC memory layout (faster convolutions on CPU and GPU)",
    "compile": "compile the model with torch.compile",
    "threads": "CPU threads (default: one per core)",
    "seed": "random seed for initialisation, data order and augmentation",
    "deterministic": "use deterministic algorithms only (slower on GPU)",
    "out": "run directory (default runs/<model>-<dataset>-<timestamp>)",
    "checkpoint_every": "write the `last` checkpoint every N epochs",
}


def _add_train_options(parser: argparse.ArgumentParser) -> None:
    import dataclasses

    from cnnzoo.engine.config import TrainConfig

    defaults = TrainConfig()
    for f in dataclasses.fields(TrainConfig):
        if f.name not in TRAIN_HELP:
            continue
        flag = "--" + f.name.replace("_", "-")
        default = getattr(defaults, f.name)
        kind = {"float | None": float, "int | None": int, "str | None": str}.get(str(f.type))
        if isinstance(default, bool):
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, help=TRAIN_HELP[f.name])
        else:
            kind = kind or type(default)
            shown = "" if default is None else f" (default: {default})"
            parser.add_argument(flag, type=kind, default=None, metavar=f.name.upper(),
                                help=TRAIN_HELP[f.name] + shown)
    parser.add_argument("--model-kwargs", type=json.loads, metavar="JSON",
                        help='extra builder arguments as JSON, e.g. \'{"dropout": 0.3}\'')


def config_from_args(args: argparse.Namespace, base: dict | None = None):
    """A TrainConfig from a recipe (``base``) overridden by every option given on the command line."""
    from cnnzoo.engine.config import TrainConfig

    values = dict(base or {})
    for name in (*TRAIN_HELP, "model_kwargs"):
        value = getattr(args, name, None)
        if value is not None:
            values[name] = value
    try:
        config = TrainConfig.from_dict(values)
        config.validate()
    except ValueError as error:
        raise CliError(str(error)) from None
    return config


def cmd_train(args: argparse.Namespace) -> int:
    from cnnzoo.engine.train import RESUMABLE_SETTINGS, train

    if args.resume is not None:
        given = {name: getattr(args, name) for name in (*TRAIN_HELP, "model_kwargs") if getattr(args, name, None) is not None}
        fixed = sorted(set(given) - set(RESUMABLE_SETTINGS))
        if args.recipe or fixed:
            raise CliError(f"--resume continues a run with its own settings; only "
                           f"{', '.join('--' + n.replace('_', '-') for n in RESUMABLE_SETTINGS)} can change "
                           f"(got {', '.join('--' + n.replace('_', '-') for n in fixed) or '--recipe'})")
        summary = train(None, resume=args.resume, overrides=given, progress=not args.no_progress)
    else:
        base = None
        if args.recipe:
            from cnnzoo.recipes import load_recipe

            base = load_recipe(args.recipe).config
        if base is None and args.model is None:
            raise CliError("say what to train: --model NAME (and --dataset), --recipe NAME, or --resume RUN_DIR")
        summary = train(config_from_args(args, base), progress=not args.no_progress)
    print(f"test accuracy {summary['test_top1']:.2%} (top-5 {summary['test_top5']:.2%}) after {summary['epochs']} "
          f"epochs, {summary['train_seconds']:.0f} s of training; plots and checkpoints in {summary['run_dir']}",
          file=sys.stderr)
    if args.json:
        _print_json(summary)
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from cnnzoo.engine.predict import evaluate_trained, load_trained

    loaded = load_trained(args.source, model_name=args.model, device=args.device)
    result = evaluate_trained(loaded, args.dataset, data_dir=args.data_dir, views=args.views, device=args.device)
    report = {**result.to_dict(), "model": loaded.name, "checkpoint": str(loaded.checkpoint),
              "dataset": args.dataset or loaded.dataset}
    print(f"{loaded.name} on {report['dataset']} ({result.images:,} images, {args.views} view): top-1 "
          f"{result.top1:.2%}, top-5 {result.top5:.2%}", file=sys.stderr)
    if args.json:
        _print_json(report)
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from cnnzoo.engine.predict import load_trained, predict_files

    loaded = load_trained(args.source, model_name=args.model, device=args.device)
    results = predict_files(loaded, args.images, top_k=args.top_k, views=args.views)
    if args.json:
        _print_json({"model": loaded.name, "checkpoint": str(loaded.checkpoint), "results": results})
        return 0
    for item in results:
        best = item["predictions"][0]
        others = ", ".join(f"{p['class']} {p['probability']:.1%}" for p in item["predictions"][1:])
        print(f"{item['file']}: {best['class']} ({best['probability']:.1%})" + (f"; then {others}" if others else ""))
    return 0


def cmd_data(args: argparse.Namespace) -> int:
    from cnnzoo.data.sources import describe_sources, verify_dataset

    if args.action == "list":
        rows = describe_sources(args.data_dir)
        if args.json:
            _print_json(rows)
        else:
            for row in rows:
                print(f"{row['name']:<15} {row.get('found') or 'not found'}")
        return 0
    names = [args.name] if args.name else [row["name"] for row in describe_sources(args.data_dir) if row.get("found")]
    reports = [verify_dataset(name, args.data_dir) for name in names]
    if args.json:
        _print_json(reports)
        return 0
    for report in reports:
        print(f"{report['name']} in {report.get('folder')}: {'OK' if report.get('ok') else 'PROBLEMS'}")
        for item in report.get("files", []):
            print(f"  {item['file']:<28} {item['status']:<11} {item.get('detail') or ''}")
        parse = report.get("parse") or {}
        if parse.get("ok"):
            print(f"  parses: {parse['train']:,} train / {parse['test']:,} test images of "
                  f"{'×'.join(map(str, parse['image_shape']))}, {parse['classes']} classes")
        elif parse:
            print(f"  does not parse: {parse.get('error')}")
    return 0 if all(report.get("ok") for report in reports) else 1


def _register_training_commands(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser(
        "train", help="train a model on a dataset (or run a recipe)",
        description="Train a model and write a run directory: config.json, metrics.csv, summary.json, "
                    "curves.png, confusion.png, per_class.csv and checkpoints/{last,best}.safetensors.",
        epilog="Examples:  cnnzoo train --model lenet5 --dataset fashion-mnist --epochs 5\n"
               "           cnnzoo train --recipe lenet5-fast --json\n"
               "           cnnzoo train --resume runs/lenet5-fashion-mnist-20260101-120000",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--recipe", help="start from a named recipe (see `cnnzoo recipes`); options given override it")
    p.add_argument("--resume", type=Path, metavar="RUN_DIR", help="continue an interrupted run exactly")
    p.add_argument("--json", action="store_true", help="print summary.json's contents on stdout")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (per-epoch lines only)")
    _add_train_options(p)
    p.set_defaults(run=cmd_train)

    p = commands.add_parser("eval", help="test accuracy of a trained model",
                            description="Evaluate a run's best checkpoint (or any checkpoint) on a test set.")
    p.add_argument("source", type=Path, metavar="RUN_DIR|CHECKPOINT")
    p.add_argument("--dataset", help="dataset to evaluate on (default: the one it was trained on)")
    p.add_argument("--data-dir", help="where the dataset files are")
    p.add_argument("--views", choices=("center", "flip", "ten-crop"), default="center",
                   help="test-time views averaged per image (default: center); flip helps models trained with "
                        "--flip and hurts others, ten-crop needs a model trained with --crop-padding")
    p.add_argument("--model", help="model name, for a bare state dict (.pt/.pth) that does not record it")
    p.add_argument("--device", default="cpu", help="cpu, cuda or mps (default: cpu)")
    p.add_argument("--json", action="store_true", help="print {top1, top5, loss, images, ...} on stdout")
    p.set_defaults(run=cmd_eval)

    p = commands.add_parser("predict", help="classify image files with a trained model",
                            description="Print the most likely classes of each image file (PNG, JPEG, ...).")
    p.add_argument("source", type=Path, metavar="RUN_DIR|CHECKPOINT")
    p.add_argument("images", type=Path, nargs="+", metavar="IMAGE")
    p.add_argument("--top-k", type=int, default=5, help="how many classes to show per image (default: 5)")
    p.add_argument("--views", choices=("center", "flip", "ten-crop"), default="center")
    p.add_argument("--model", help="model name, for a bare state dict (.pt/.pth)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    p.set_defaults(run=cmd_predict)

    p = commands.add_parser("data", help="show where datasets are found, verify their checksums",
                            description="`data list`: where each dataset was found. `data verify [NAME]`: "
                                        "checksums and a parse check of the files found.")
    p.add_argument("action", choices=("list", "verify"))
    p.add_argument("name", nargs="?", help="dataset to verify (default: every one found)")
    p.add_argument("--data-dir", help="also look here")
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=cmd_data)



# ---- recipes / bench ------------------------------------------------------------------------------------------------


def cmd_recipes(args: argparse.Namespace) -> int:
    from cnnzoo.recipes import list_recipes

    recipes = list_recipes()
    if args.json:
        _print_json([{"name": r.name, "model": r.config["model"], "family": r.family, "tier": r.tier,
                      "budget_seconds": r.budget_seconds, "target_top1": r.target_top1,
                      "description": r.description} for r in recipes])
        return 0
    print(f"{'recipe':<22} {'model':<18} {'budget':>7} {'target':>7}  description")
    for r in recipes:
        print(f"{r.name:<22} {r.config['model']:<18} {r.budget_seconds:>6.0f}s {r.target_top1:>7.0%}  {r.description}")
    return 0


def _fashion_mnist_images(data_dir: str | None, count: int):
    """The first ``count`` training images and labels, and all test images, of Fashion-MNIST."""
    from cnnzoo.data.tensors import load_dataset

    data = load_dataset("fashion-mnist", data_dir)
    return data.train.images[:count], data.train.labels[:count], data.test.images


def cmd_bench(args: argparse.Namespace) -> int:
    results: dict = {"what": args.what}
    if args.what in ("training", "all"):
        from cnnzoo.bench.training import training_throughput

        images, labels, _ = _fashion_mnist_images(args.data_dir, args.images)
        rows = []
        for name in args.models or ["lenet5", "convnet", "resnet20"]:
            print(f"training throughput: {name} ...", file=sys.stderr)
            for row in training_throughput(name, images, labels, batch_size=args.batch_size,
                                           images_per_run=args.images, repeats=args.repeats):
                print(f"  tutorial loop on a {row['baseline']} dataset {row['baseline_per_second']:,.0f} img/s, "
                      f"cnnzoo {row['cnnzoo_per_second']:,.0f} img/s: {row['ratio']}×", file=sys.stderr)
                rows.append(row)
        results["training"] = rows
    if args.what in ("inference", "all"):
        from cnnzoo.bench.inference import IMAGENET_MODELS, inference_throughput

        _, _, test_images = _fashion_mnist_images(args.data_dir, 1)
        rows = []
        for name in args.models if args.what == "inference" and args.models else IMAGENET_MODELS:
            print(f"inference throughput: {name} ...", file=sys.stderr)
            row = inference_throughput(name, test_images, repeats=args.repeats)
            print(f"  eager fp32 {row['baseline_per_second']:,.1f} img/s, cnnzoo {row['cnnzoo_per_second']:,.1f} "
                  f"img/s: {row['ratio']}×, top-1 agreement {row['top1_agreement']:.1%}", file=sys.stderr)
            rows.append(row)
        results["inference"] = rows
    if args.what in ("hardware", "all"):
        from cnnzoo.bench.hardware import training_utilisation

        row = training_utilisation("vgg16_bn_small", input_size=(1, 28, 28))
        print(f"matmul peak {row['matmul_peak_fp32_gflops']} GFLOP/s fp32, {row['matmul_peak_bf16_gflops']} bf16; "
              f"vgg16_bn_small trains at {row['training_gflops']} GFLOP/s = {row['fraction_of_fp32_peak']:.0%} of the "
              f"fp32 peak", file=sys.stderr)
        results["hardware"] = row
    if args.what == "recipes":
        from cnnzoo.bench.recipes import run_recipes, write_results

        rows = run_recipes(args.recipes, seeds=args.seeds)
        write_results(rows, Path(args.results))
        print(f"wrote {args.results}", file=sys.stderr)
        results["recipes"] = rows
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(results, indent=2))
    if args.json:
        _print_json(results)
    return 0


def _register_bench_commands(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("recipes", help="list the training recipes",
                            description="Named training settings, each with the budget and accuracy it was "
                                        "measured at; run one with `cnnzoo train --recipe NAME`.")
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=cmd_recipes)

    p = commands.add_parser(
        "bench", help="measure cnnzoo against plain PyTorch in the same run",
        description="training: images/s of cnnzoo's engine vs a tutorial-style DataLoader loop (same model, batch, "
                    "data). inference: ImageNet models with cnnzoo's inference path vs plain fp32 eager, with top-1 "
                    "agreement. hardware: the matmul peak and the fraction of it training reaches. recipes: re-run "
                    "the recipes and write docs/results.md. Ratios, not absolute times, are the result.")
    p.add_argument("what", choices=("training", "inference", "hardware", "recipes", "all"))
    p.add_argument("--models", nargs="+", help="models to measure (default: a standard set)")
    p.add_argument("--recipes", nargs="+", help="recipes to run (default: all)")
    p.add_argument("--seeds", type=int, default=1, help="runs per recipe, seeds 0..N-1 (default: 1)")
    p.add_argument("--images", type=int, default=10_000, help="training images per timed run (default: 10000)")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--repeats", type=int, default=3, help="timed runs per side, interleaved (default: 3)")
    p.add_argument("--data-dir", help="where Fashion-MNIST is")
    p.add_argument("--results", default="docs/results.md", help="where `bench recipes` writes its table")
    p.add_argument("--out", help="also save the JSON results to this file")
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=cmd_bench)



def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except CnnzooError as error:
        if args.debug:
            raise
        print(f"cnnzoo {args.command}: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `cnnzoo list | head`: the reader left; nothing more to say
        sys.stderr.close()
        return 0
