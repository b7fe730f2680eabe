"""``cnnzoo bench``: cnnzoo measured against plain PyTorch in the same run (ratios, not absolute
times, are the result), and the recipes re-run."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from cnnzoo.bench.timing import caution
from cnnzoo.commands import options
from cnnzoo.commands.options import number, whole_number, writable_file
from cnnzoo.console import print_json
from cnnzoo.errors import ConfigError
from cnnzoo.task_progress import TaskProgress

RESULTS = "docs/results.md"  # the table of the recipes measured on the reference machine


def _fashion_mnist_images(data_dir: str | None, count: int):
    """The first ``count`` training images and labels, and all test images, of Fashion-MNIST."""
    from cnnzoo.data.loading import load_dataset

    data = load_dataset("fashion-mnist", data_dir)
    return data.train.images[:count], data.train.labels[:count], data.test.images


def _bench_training(args: argparse.Namespace) -> list[dict]:
    from cnnzoo.bench.training import training_throughput

    images, labels, _ = _fashion_mnist_images(args.data_dir, args.images)
    rows = []
    names = args.models or ["lenet5", "convnet", "resnet20"]
    with TaskProgress("bench training") as progress:
        for index, name in enumerate(names):
            progress.step(f"training throughput: {name}", index, len(names))
            for row in training_throughput(name, images, labels, batch_size=args.batch_size,
                                           images_per_run=args.images, repeats=args.repeats,
                                           device=args.device or "cpu"):
                progress.note(f"  tutorial loop on a {row['baseline']} dataset "
                              f"{row['baseline_per_second']:,.0f} img/s, cnnzoo "
                              f"{row['cnnzoo_per_second']:,.0f} img/s: {row['ratio']}×")
                rows.append(row)
    return rows


def _bench_inference(args: argparse.Namespace) -> list[dict]:
    from cnnzoo.bench.inference import IMAGENET_MODELS, inference_variants, trained_run_variants
    from cnnzoo.engine.machine import machine_name

    variants = args.variants or None
    if args.trained_run:
        from cnnzoo.engine.run import load_run

        run = load_run(Path(args.trained_run), device=args.device or "cpu",
                       run_code=args.run_code)
        with TaskProgress("bench inference") as progress:
            progress.stage(f"every variant of {run.name}, and its test accuracy")
            rows = trained_run_variants(run, data_dir=args.data_dir, repeats=args.repeats,
                                        test_images=args.test_images,
                                        **({"variants": variants} if variants else {}))
    else:
        train_images, _, test_images = _fashion_mnist_images(args.data_dir, 128)
        names, rows = args.models or IMAGENET_MODELS, []
        with TaskProgress("bench inference") as progress:
            for index, name in enumerate(names):
                progress.step(f"inference variants: {name}", index, len(names))
                rows += inference_variants(name, train_images, test_images, repeats=args.repeats,
                                           device=args.device or "cpu",
                                           **({"variants": variants} if variants else {}))
    machine = machine_name(args.device or "cpu")
    for row in rows:
        row["machine"] = machine
        print("  " + _variant_line(row), file=sys.stderr)
    return rows


def _variant_line(row: dict) -> str:
    if "skipped" in row:
        return f"{row['model']} {row['variant']}: skipped ({row['skipped']})"
    accuracy = (f", test top-1 {row['test_top1']:.2%} ({row['test_views']} view)"
                if "test_top1" in row else "")
    return (f"{row['model']} {row['variant']}: batch 1 {row['batch1_latency_ms']:.2f} ms "
            f"({row['speedup_batch1']}x), batch 64 {row['batch64_images_per_second']:,.1f} img/s "
            f"({row['speedup_batch64']}x), agreement {row['top1_agreement_with_fp32']:.1%}"
            + accuracy)


HARDWARE_MODELS = ("lenet5_bn", "convnet", "resnet20", "vgg16_bn_small")


def _bench_hardware(args: argparse.Namespace) -> dict:
    """Each precision's peak (matrix products and convolutions), then each model trained in the
    precision and layout the autotuner picks for it, and run for inference in bf16 where native
    (else fp32), against the peak of that precision."""
    import torch

    from cnnzoo.bench.hardware import inference_utilisation, measured_peaks, training_utilisation
    from cnnzoo.engine.machine import machine_name
    from cnnzoo.engine.runtime import resolve_device

    device = resolve_device(args.device or "cpu")
    progress = TaskProgress("bench hardware")
    progress.stage("peak of each precision: matrix products and a convolution")
    measured = measured_peaks(device, args.peak_seconds, tuple(sorted({1024, args.peak_size})))
    peaks = {name: peak["flops"] for name, peak in measured.items()}
    print(f"{machine_name(device)}: peak " + ", ".join(
        f"{name} {p['flops'] / 1e9:,.1f} ({p['from']})" for name, p in measured.items())
        + " GFLOP/s", file=sys.stderr)
    inference_precision = "bf16" if "bf16" in peaks else "fp32"
    rows = []
    names = args.models or HARDWARE_MODELS
    for index, name in enumerate(names):
        progress.step(f"training and inference utilisation: {name}", index, len(names))
        tuning = _tuned_runtime(name, args.batch_size, device)
        row = training_utilisation(name, input_size=(1, 28, 28), batch_size=args.batch_size,
                                   steps=args.steps, precision=tuning.precision,
                                   channels_last=tuning.channels_last, device=device, peaks=peaks,
                                   compiled=args.compile == "on", repeats=args.repeats)
        row["chosen_by"], row["tuning_step_ms"] = tuning.source, tuning.to_dict()["step_ms"]
        row.update(inference_utilisation(name, input_size=(1, 28, 28), peaks=peaks,
                                         precision=inference_precision, steps=args.steps,
                                         device=device))
        compiled = (f" (compiled: {row['compiled_fraction_of_peak']:.1%}, after compiling for "
                    f"{row['compile_seconds']:.0f} s)" if "compile_seconds" in row else "")
        print(f"  {name}: training {tuning.precision} ({tuning.source}) {row['training_gflops']} "
              f"GFLOP/s = {row['fraction_of_peak']:.1%} of its peak{compiled}; inference "
              f"{inference_precision} {row['inference_gflops']} GFLOP/s = "
              f"{row['inference_fraction_of_peak']:.1%}", file=sys.stderr)
        for operator in row.get("training_top_operators", [])[:5]:
            print(f"    training time in {operator['operator']}: {operator['share']:.0%}",
                  file=sys.stderr)
        rows.append(row)
    progress.close()
    return {"machine": machine_name(device), "threads": torch.get_num_threads(),
            "torch": torch.__version__,
            "peaks_gflops": {name: round(value / 1e9, 2) for name, value in peaks.items()},
            "peaks": {name: {**p, "flops": round(p["flops"] / 1e9, 2)}
                      for name, p in measured.items()},
            "models": rows}


def _tuned_runtime(name: str, batch_size: int, device):
    """The autotuner's precision and layout for ``name`` at ``batch_size`` on 28×28 grey images."""
    from cnnzoo.engine.autotune import tuned_for
    from cnnzoo.models.registry import create_model

    return tuned_for(name, create_model(name, in_channels=1), batch_size=batch_size, device=device)


def _bench_race(args: argparse.Namespace) -> dict:
    from cnnzoo.bench.race import TUTORIAL, race

    with TaskProgress("bench race") as progress:
        result = race(dataset=args.dataset, data_dir=args.data_dir, recipe=args.recipe,
                      epochs=args.epochs or TUTORIAL["epochs"], train_subset=args.train_subset,
                      test_subset=args.test_subset, cnnzoo_epochs=args.cnnzoo_epochs,
                      out=Path(args.race_out), log=progress.note, stage=progress.stage)
    tutorial, cnnzoo = result["tutorial"], result["cnnzoo"]
    reached = cnnzoo["seconds_to_tutorial_accuracy"]
    print(
        f"tutorial {tutorial['test_top1']:.2%} in {tutorial['seconds']:.1f} s; cnnzoo "
        f"{cnnzoo['recipe']} {cnnzoo['test_top1']:.2%} in {cnnzoo['seconds']:.1f} s; "
        + (
            f"cnnzoo reached {tutorial['test_top1']:.2%} after {reached:.1f} s: "
            f"{result['speedup']}× faster"
            if reached
            else f"cnnzoo did not reach {tutorial['test_top1']:.2%}"
        )
        + f" ({result['machine']})",
        file=sys.stderr,
    )
    return result


def _bench_recipes(args: argparse.Namespace) -> list[dict]:
    from cnnzoo.bench.recipes import run_recipes, write_results

    settings = {"device": args.device, "epochs": args.epochs, "train_subset": args.train_subset,
                "test_subset": args.test_subset, "data_dir": args.data_dir}
    if args.results == RESULTS and any(
        settings[name] is not None for name in ("epochs", "train_subset", "test_subset", "device")
    ):
        raise ConfigError("--epochs, --train-subset, --test-subset and --device change what the "
                          "recipes measure; write such results elsewhere with --results PATH, not "
                          f"to {RESULTS}")
    with TaskProgress("bench recipes") as progress:
        rows = run_recipes(args.recipes, seeds=args.seeds, log=progress.note, step=progress.step,
                           **{name: value for name, value in settings.items() if value is not None})
    write_results(rows, Path(args.results), args.device)
    print(f"wrote {args.results}", file=sys.stderr)
    return rows


def _bench_ablation(args: argparse.Namespace) -> dict:
    from cnnzoo.bench.ablation import run_ablation
    from cnnzoo.bench.recipes import write_ablation

    settings = {"device": args.device, "epochs": args.epochs, "time_budget": args.time_budget,
                "train_subset": args.train_subset, "test_subset": args.test_subset,
                "data_dir": args.data_dir}
    changed = [name for name in ("epochs", "time_budget", "train_subset", "test_subset")
               if settings[name] is not None]
    with TaskProgress("bench ablation") as progress:
        result = run_ablation(args.recipe, args.tricks, seeds=args.seeds, log=progress.note,
                              step=progress.step,
                              **{name: value for name, value in settings.items()
                                 if value is not None})
    if changed and args.results == RESULTS:
        print(f"not written to {RESULTS}: {', '.join(changed)} changed what the recipe measures "
              "(--results PATH writes such results elsewhere)", file=sys.stderr)
    else:
        write_ablation(result, Path(args.results), args.device)
        print(f"wrote {args.results}", file=sys.stderr)
    return result


def _bench_all(args: argparse.Namespace) -> dict:
    return {"training": _bench_training(args), "inference": _bench_inference(args),
            "hardware": _bench_hardware(args)}


RUNS = {"training": _bench_training, "inference": _bench_inference, "hardware": _bench_hardware,
        "race": _bench_race, "recipes": _bench_recipes, "ablation": _bench_ablation,
        "all": _bench_all}


def cmd_bench(args: argparse.Namespace) -> int:
    measured = RUNS[args.what](args)
    results = {"what": args.what, **(measured if args.what == "all" else {args.what: measured}),
               "caution": caution(getattr(args, "repeats", None))}
    for line in results["caution"]:
        print(f"bench: caution: {line}", file=sys.stderr)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(results, indent=2))
    if args.json:
        print_json({**results["race"], "caution": results["caution"]} if args.what == "race"
                   else results)
    return 0


def register(commands: argparse._SubParsersAction) -> None:
    bench = commands.add_parser(
        "bench", help="measure cnnzoo against plain PyTorch in the same run",
        description="cnnzoo measured against plain PyTorch in the same run: ratios, not absolute "
                    "times, are the result. `cnnzoo bench BENCHMARK --help` shows a benchmark's "
                    "options.")
    benchmarks = bench.add_subparsers(dest="what", metavar="BENCHMARK", required=True)
    for name, (summary, description, declare) in BENCHMARKS.items():
        p = benchmarks.add_parser(name, help=summary, description=description)
        declare(p)
        options.add(p, "out_file")
        options.add(p, "json")
        p.set_defaults(run=cmd_bench)


def _training_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--images", type=whole_number(1, 10**7), default=10_000, metavar="N",
                   help="training images per timed run (default: 10000)")
    options.add(p, "batch_size")
    options.add(p, "repeats")
    options.add(p, "data_dir", help="where Fashion-MNIST is")
    options.add(p, "device")


def _hardware_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--steps", type=whole_number(1, 10**5), default=10, metavar="N",
                   help="training steps per timed round (default: 10)")
    p.add_argument("--peak-size", type=whole_number(1, 16_384), default=2048, metavar="N",
                   help="largest matrix side measured for the peaks, beside 1024 (default: 2048)")
    p.add_argument("--peak-seconds", type=number(above=0, high=3600), default=2.0, metavar="S",
                   help="seconds per precision's peak, shared by its shapes (default: 2)")
    p.add_argument("--compile", choices=("on", "off"), default="on",
                   help="also time each model's training step through torch.compile, as a run "
                   "long enough for the autotuner's compile trial may train (default: on)")


def _declare_training(p: argparse.ArgumentParser) -> None:
    options.add(p, "models", help="models to train (default: lenet5, convnet, resnet20)")
    _training_options(p)


def _declare_inference(p: argparse.ArgumentParser) -> None:
    from cnnzoo.bench import INFERENCE_VARIANTS as VARIANTS

    options.add(p, "models", help="models to run (default: five ImageNet models, resnet18 to "
                                  "vgg11)")
    p.add_argument("--run", dest="trained_run", metavar="RUN",
                   help="a trained run instead: its own data, and each variant's test accuracy")
    p.add_argument("--variants", nargs="+", choices=VARIANTS, metavar="VARIANT",
                   help="which variants beside eager fp32 (default: all: "
                        + ", ".join(VARIANTS) + ")")
    p.add_argument("--test-images", type=whole_number(1, 10**7), metavar="N",
                   help="with --run: test images to measure accuracy on (default: all)")
    options.add(p, "repeats")
    options.add(p, "data_dir", help="where Fashion-MNIST is")
    options.add(p, "device")


def _declare_hardware(p: argparse.ArgumentParser) -> None:
    options.add(p, "models", help="models to train (default: " + ", ".join(HARDWARE_MODELS) + ")")
    options.add(p, "batch_size")
    _hardware_options(p)
    options.add(p, "repeats")  # bench all takes it from the training options
    options.add(p, "device")


def _declare_all(p: argparse.ArgumentParser) -> None:
    _training_options(p)
    _hardware_options(p)
    p.set_defaults(trained_run=None, variants=None, test_images=None)
    # each benchmark its standard models: one --models would mean three things here
    p.set_defaults(models=None)


def _declare_race(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", default="fashion-mnist",
                   help="the data set (default: fashion-mnist)")
    options.add(p, "data_dir")
    p.add_argument("--recipe", default="budgetnet-fast", help="cnnzoo's recipe (default: "
                                                              "budgetnet-fast)")
    options.add(p, "epochs", help="the tutorial's epochs (default: 10)")
    options.add(p, "epochs", dest="cnnzoo_epochs", flags=("--cnnzoo-epochs",), default=1000,
                help="most epochs cnnzoo may run in the tutorial's time (default: as many as fit)")
    options.add(p, "train_subset")
    options.add(p, "test_subset")
    options.add(p, "out_dir", flags=("--race-out",), dest="race_out", default="runs/bench-race",
                help="cnnzoo's run directory (default: runs/bench-race)")


def _declare_recipes(p: argparse.ArgumentParser) -> None:
    p.add_argument("--recipes", nargs="+", metavar="RECIPE", help="recipes to run (default: all)")
    options.add(p, "seeds", default=1, help="runs per recipe, seeds 0..N-1 (default: 1)")
    options.add(p, "epochs", help="the most epochs each recipe runs (default: the recipe's)")
    options.add(p, "train_subset")
    options.add(p, "test_subset")
    options.add(p, "data_dir", help="where Fashion-MNIST is")
    options.add(p, "device", help="auto, cpu, cuda, cuda:N or mps (default: the recipe's, auto)")
    p.add_argument("--results", type=writable_file, default=RESULTS, metavar="FILE",
                   help=f"where the table is written (default: {RESULTS})")


def _declare_ablation(p: argparse.ArgumentParser) -> None:
    from cnnzoo.bench.ablation import TRICKS

    p.add_argument("--recipe", default="budgetnet-fast",
                   help="the recipe each trick is added to (default: budgetnet-fast)")
    p.add_argument("--tricks", nargs="+", choices=list(TRICKS), metavar="TRICK",
                   help="tricks to measure, each alone (default: those the recipe does not use "
                        "already, of " + ", ".join(TRICKS) + ")")
    options.add(p, "seeds", default=3, help="runs per arm, seeds 0..N-1, the same for every arm "
                                            "(default: 3)")
    options.add(p, "epochs", help="the most epochs each run takes (default: the recipe's)")
    p.add_argument("--time-budget", type=number(above=0, high=10**7), metavar="SECONDS",
                   help="each run's training seconds (default: the recipe's)")
    options.add(p, "train_subset")
    options.add(p, "test_subset")
    options.add(p, "data_dir", help="where Fashion-MNIST is")
    options.add(p, "device", help="auto, cpu, cuda, cuda:N or mps (default: the recipe's, auto)")
    p.add_argument("--results", type=writable_file, default=RESULTS, metavar="FILE",
                   help=f"the results table the ablation is written into (default: {RESULTS}; "
                        "not written there when --epochs, --time-budget or a subset changes the "
                        "recipe)")


# name: (one line for `cnnzoo bench --help`, the description of `cnnzoo bench NAME --help`, its
# options)
BENCHMARKS = {
    "training": ("cnnzoo's training loop vs a tutorial DataLoader loop",
                 "Images/s of cnnzoo's engine against tutorial-style Dataset + DataLoader loops: "
                 "the same model, batch and data, timed interleaved.", _declare_training),
    "inference": ("each inference variant (compiled, bf16, int8) vs eager fp32",
                  "Batch-1 latency and batch-64 throughput of eager fp32, compiled fp32, bf16 "
                  "(where native) and int8 (torchao PT2E, ONNX Runtime), timed interleaved, with "
                  "each one's top-1 agreement with fp32 (and test accuracy, for --run).",
                  _declare_inference),
    "hardware": ("each precision's peak, and the share of it training and inference reach",
                 "Each native precision's peak (the best of large matrix products and a "
                 "convolution), then each model's training (in the autotuner's precision) and "
                 "inference FLOP/s as a fraction of the peak of the precision it ran in, with the "
                 "top operators where far below.", _declare_hardware),
    "recipes": (f"re-run the recipes, write {RESULTS}",
                "Re-run the training recipes and write their measured accuracy and time to "
                f"{RESULTS} (or --results).", _declare_recipes),
    "ablation": ("a recipe with each fast-training trick added alone",
                 "Train a recipe as it is and with each trick (Muon, Muon's fixed filter norm, "
                 "EMA, label smoothing 0.2, "
                 "BatchNorm-bias learning rate, dirac initialisation, alternating flips, "
                 "mirror-and-shift test views, progressive resizing, cutout) added alone, the "
                 "same seeds and time budget for every arm; each trick's effect on test accuracy "
                 f"with its 95% interval, written into {RESULTS}.", _declare_ablation),
    "race": ("the tutorial's loop, then the fast recipe in its time",
             "The notes' tutorial loop trains first; then cnnzoo's recipe gets the same wall "
             "time. Both accuracies "
             "and the time cnnzoo took to reach the tutorial's.", _declare_race),
    "all": ("training, inference and hardware", "training, inference and hardware in one go, each "
                                                "on its standard models.", _declare_all),
}
