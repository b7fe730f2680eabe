"""``cnnzoo recipes`` and ``cnnzoo bench``: the measured training settings, and cnnzoo measured against plain
PyTorch in the same run (ratios, not absolute times, are the result)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from cnnzoo.console import print_json
from cnnzoo.errors import ConfigError

RESULTS = "docs/results.md"  # the table of the recipes measured on the reference machine


def cmd_recipes(args: argparse.Namespace) -> int:
    from cnnzoo.recipes import TIERS, list_recipes, measured_results, model_settings

    recipes, measured = list_recipes(), measured_results()
    if args.json:
        print_json([{"name": r.name, "model": r.config["model"], "model_kwargs": r.config.get("model_kwargs", {}),
                     "family": r.family, "tier": r.tier, "budget_seconds": r.budget_seconds,
                     "target_top1": r.target_top1, "measured_top1": measured.get(r.name, {}).get("test_top1"),
                     "description": r.description} for r in recipes])
        return 0
    print(f"{'recipe':<20} {'tier':<9} {'model':<52} {'budget':>7} {'target':>7} {'measured':>9}")
    for r in recipes:
        result = measured.get(r.name)
        shown = f"{result['test_top1']:.2%}" if result else "-"
        print(f"{r.name:<20} {r.tier:<9} {model_settings(r.config):<52.52} {r.budget_seconds:>6.0f}s "
              f"{r.target_top1:>7.0%} {shown:>9}")
    print("\ntiers: " + "; ".join(f"{name}: {text}" for name, text in TIERS.items()))
    print("budget: training wall time on 2 CPU cores; target: test accuracy meant to be reached within it; "
          "measured: docs/results.md (`cnnzoo bench recipes`). Run one: cnnzoo train --recipe NAME")
    return 0


def _fashion_mnist_images(data_dir: str | None, count: int):
    """The first ``count`` training images and labels, and all test images, of Fashion-MNIST."""
    from cnnzoo.data.loading import load_dataset

    data = load_dataset("fashion-mnist", data_dir)
    return data.train.images[:count], data.train.labels[:count], data.test.images


def _bench_training(args: argparse.Namespace) -> list[dict]:
    from cnnzoo.bench.training import training_throughput

    images, labels, _ = _fashion_mnist_images(args.data_dir, args.images)
    rows = []
    for name in args.models or ["lenet5", "convnet", "resnet20"]:
        print(f"training throughput: {name} ...", file=sys.stderr)
        for row in training_throughput(name, images, labels, batch_size=args.batch_size,
                                       images_per_run=args.images, repeats=args.repeats,
                                       device=args.device or "cpu"):
            print(f"  tutorial loop on a {row['baseline']} dataset {row['baseline_per_second']:,.0f} img/s, "
                  f"cnnzoo {row['cnnzoo_per_second']:,.0f} img/s: {row['ratio']}×", file=sys.stderr)
            rows.append(row)
    return rows


def _bench_inference(args: argparse.Namespace) -> list[dict]:
    from cnnzoo.bench.inference import IMAGENET_MODELS, inference_throughput

    _, _, test_images = _fashion_mnist_images(args.data_dir, 1)
    rows = []
    for name in args.models if args.what == "inference" and args.models else IMAGENET_MODELS:
        print(f"inference throughput: {name} ...", file=sys.stderr)
        row = inference_throughput(name, test_images, repeats=args.repeats, device=args.device or "cpu")
        print(f"  eager fp32 {row['baseline_per_second']:,.1f} img/s, cnnzoo {row['cnnzoo_per_second']:,.1f} "
              f"img/s: {row['ratio']}×, top-1 agreement {row['top1_agreement']:.1%}", file=sys.stderr)
        rows.append(row)
    return rows


HARDWARE_MODELS = ("lenet5_bn", "convnet", "resnet20", "vgg16_bn_small")


def _bench_hardware(args: argparse.Namespace) -> dict:
    """Each precision's matmul peak, then each model in the precision and layout the autotuner picks for it
    (measured, or from its cache), against the peak of that precision."""
    import torch

    from cnnzoo.bench.hardware import matmul_peaks, training_utilisation
    from cnnzoo.engine.machine import machine_name
    from cnnzoo.engine.runtime import resolve_device

    device = resolve_device(args.device or "cpu")
    peaks = matmul_peaks(device, args.peak_size, args.peak_seconds)
    print(f"{machine_name(device)}: matmul peak " + ", ".join(f"{name} {value / 1e9:,.1f}" for name, value in
                                                               peaks.items()) + " GFLOP/s", file=sys.stderr)
    rows = []
    for name in (args.models if args.what == "hardware" and args.models else HARDWARE_MODELS):
        tuning = _tuned_runtime(name, args.batch_size, device)
        row = training_utilisation(name, input_size=(1, 28, 28), batch_size=args.batch_size, steps=args.steps,
                                   precision=tuning.precision, channels_last=tuning.channels_last, device=device,
                                   peaks=peaks)
        row["chosen_by"], row["tuning_step_ms"] = tuning.source, tuning.to_dict()["step_ms"]
        print(f"  {name}: {tuning.precision}, {'channels-last' if tuning.channels_last else 'NCHW'} "
              f"({tuning.source}): {row['training_gflops']} GFLOP/s = {row['fraction_of_peak']:.1%} of the "
              f"{tuning.precision} peak", file=sys.stderr)
        rows.append(row)
    return {"machine": machine_name(device), "threads": torch.get_num_threads(), "torch": torch.__version__,
            "matmul_peaks_gflops": {name: round(value / 1e9, 2) for name, value in peaks.items()}, "models": rows}


def _tuned_runtime(name: str, batch_size: int, device):
    """The autotuner's precision and layout for ``name`` at ``batch_size`` on 28×28 grey images."""
    from cnnzoo.engine.autotune import tuned_for
    from cnnzoo.models.registry import create_model

    return tuned_for(name, create_model(name, in_channels=1), batch_size=batch_size, device=device)


def _bench_race(args: argparse.Namespace) -> dict:
    from cnnzoo.bench.race import TUTORIAL, race

    result = race(dataset=args.dataset, data_dir=args.data_dir, recipe=args.recipe, epochs=args.epochs or TUTORIAL["epochs"],
                  train_subset=args.train_subset, test_subset=args.test_subset,
                  cnnzoo_epochs=args.cnnzoo_epochs, out=Path(args.race_out))
    tutorial, cnnzoo = result["tutorial"], result["cnnzoo"]
    reached = cnnzoo["seconds_to_tutorial_accuracy"]
    print(f"tutorial {tutorial['test_top1']:.2%} in {tutorial['seconds']:.1f} s; cnnzoo {cnnzoo['recipe']} "
          f"{cnnzoo['test_top1']:.2%} in {cnnzoo['seconds']:.1f} s; "
          + (f"cnnzoo reached {tutorial['test_top1']:.2%} after {reached:.1f} s: {result['speedup']}× faster"
             if reached else f"cnnzoo did not reach {tutorial['test_top1']:.2%}") + f" ({result['machine']})",
          file=sys.stderr)
    return result


def cmd_bench(args: argparse.Namespace) -> int:
    results: dict = {"what": args.what}
    if args.what in ("training", "all"):
        results["training"] = _bench_training(args)
    if args.what in ("inference", "all"):
        results["inference"] = _bench_inference(args)
    if args.what in ("hardware", "all"):
        results["hardware"] = _bench_hardware(args)
    if args.what == "race":
        results["race"] = _bench_race(args)
    if args.what == "recipes":
        from cnnzoo.bench.recipes import run_recipes, write_results

        settings = {"device": args.device, "epochs": args.epochs, "train_subset": args.train_subset,
                    "test_subset": args.test_subset, "data_dir": args.data_dir}
        if args.results == RESULTS and any(settings[name] is not None for name in ("epochs", "train_subset",
                                                                                  "test_subset", "device")):
            raise ConfigError(f"--epochs, --train-subset, --test-subset and --device change what the recipes "
                              f"measure; write such results elsewhere with --results PATH, not to {RESULTS}")
        results["recipes"] = run_recipes(args.recipes, seeds=args.seeds,
                                         **{name: value for name, value in settings.items() if value is not None})
        write_results(results["recipes"], Path(args.results), args.device)
        print(f"wrote {args.results}", file=sys.stderr)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(results, indent=2))
    if args.json:
        print_json(results["race"] if args.what == "race" else results)
    return 0


def register(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("recipes", help="list the training recipes",
                            description="Named training settings, each with the budget and accuracy it was "
                                        "measured at; run one with `cnnzoo train --recipe NAME`.")
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=cmd_recipes)

    p = commands.add_parser(
        "bench", help="measure cnnzoo against plain PyTorch in the same run",
        description="training: images/s of cnnzoo's engine vs a tutorial-style DataLoader loop (same model, batch, "
                    "data). inference: ImageNet models with cnnzoo's inference path vs plain fp32 eager, with top-1 "
                    "agreement. hardware: each precision's matmul peak and the fraction of it training reaches in the "
                    "precision it runs in. recipes: re-run the recipes and write docs/results.md. race: the notes' "
                    "tutorial loop, then cnnzoo's fast recipe given the same time. Ratios, not absolute times, "
                    "are the result.")
    p.add_argument("what", choices=("training", "inference", "hardware", "recipes", "race", "all"))
    p.add_argument("--models", nargs="+", help="models to measure (default: a standard set)")
    p.add_argument("--recipes", nargs="+", help="recipes to run (default: all)")
    p.add_argument("--seeds", type=int, default=1, help="runs per recipe, seeds 0..N-1 (default: 1)")
    p.add_argument("--images", type=int, default=10_000, help="training images per timed run (default: 10000)")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--repeats", type=int, default=3, help="timed runs per side, interleaved (default: 3)")
    p.add_argument("--data-dir", help="where Fashion-MNIST is")
    p.add_argument("--device", help="where to measure: cpu or cuda (default: cpu; recipes: the recipe's, auto)")
    p.add_argument("--steps", type=int, default=10, help="hardware: timed training steps per model (default: 10)")
    p.add_argument("--peak-size", type=int, default=1024, help="hardware: matrix side of the peak (default: 1024)")
    p.add_argument("--peak-seconds", type=float, default=2.0, help="hardware: seconds per peak (default: 2)")
    p.add_argument("--dataset", default="fashion-mnist", help="race: the data set (default: fashion-mnist)")
    p.add_argument("--recipe", default="budgetnet-fast", help="race: cnnzoo's recipe (default: budgetnet-fast)")
    p.add_argument("--epochs", type=int, help="race: the tutorial's epochs (default: 10); recipes: the most "
                                              "epochs each runs (default: the recipe's)")
    p.add_argument("--cnnzoo-epochs", type=int, default=1000,
                   help="race: most epochs cnnzoo may run in the tutorial's time (default: as many as fit)")
    p.add_argument("--train-subset", type=int, help="race, recipes: train on a seeded random N images")
    p.add_argument("--test-subset", type=int, help="race, recipes: score on a seeded random N test images")
    p.add_argument("--race-out", default="runs/bench-race", help="race: cnnzoo's run directory")
    p.add_argument("--results", default=RESULTS, help="where `bench recipes` writes its table")
    p.add_argument("--out", help="also save the JSON results to this file")
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=cmd_bench)
