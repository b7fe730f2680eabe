"""Inference speed of every variant of a model against eager fp32, measured interleaved in one run.

Variants: ``eager_fp32`` (the baseline), ``compiled_fp32`` (``optimize_for_inference``: frozen,
channels-last, torch.compile), ``bf16`` (the same in bf16 autocast; only where the CPU has native
bf16, else reported as skipped with the reason), ``fp16`` (GPU only) and int8 by each toolchain of
``engine.quantize`` (``int8_pt2e``, ``int8_onnxruntime``), calibrated on training images. Each is
timed at batch 1 (latency) and batch 64 (throughput), every variant's call interleaved with the
others'; the speedups are ratios of medians from that one run. The top-1 agreement with eager fp32
is counted on real images, and for a trained run each variant's test accuracy is measured as well.

The ImageNet models run at 224×224 with random weights on Fashion-MNIST images resized and repeated
to three channels: their speed does not depend on the weights, their agreement barely does.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from cnnzoo.bench import INFERENCE_VARIANTS
from cnnzoo.bench.timing import interleaved_seconds
from cnnzoo.engine.inference import InferenceModel, inference_precision, optimize_for_inference
from cnnzoo.engine.quantize import missing, quantize
from cnnzoo.engine.runtime import synchronize
from cnnzoo.errors import ConfigError
from cnnzoo.models.registry import create_model

IMAGENET_MODELS = ("resnet18", "alexnet", "googlenet", "densenet121", "vgg11")
VARIANTS = INFERENCE_VARIANTS
BATCHES = (1, 64)  # latency, throughput


def real_images_224(images: torch.Tensor, count: int) -> torch.Tensor:
    """``count`` uint8 grey images as a normalised 3×224×224 float batch."""
    x = images[:count].float() / 255.0
    x = F.interpolate(x, size=224, mode="bilinear", align_corners=False).repeat(1, 3, 1, 1)
    return (x - 0.45) / 0.25


def _eager(model: nn.Module) -> Callable:
    def run(x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return model(x)

    return run


def build_variants(model: nn.Module, calibration: list[torch.Tensor], variants=VARIANTS
                   ) -> tuple[dict[str, Callable], dict[str, str]]:
    """The functions of the ``variants`` that run here, and why each other one does not."""
    # Every zoo model shares BaseModel.forward's code object, and dynamo keeps at most 8 compiled
    # entries per code object: after the first few models and variants it silently ran the rest
    # eagerly (compiled fp32 and PT2E measured ~1x). Each model starts from an empty cache, as a
    # user who compiles one model does.
    torch._dynamo.reset()
    device = calibration[0].device
    functions, skipped = {}, {}
    for name in variants:
        if name == "eager_fp32":
            functions[name] = _eager(model)
        elif name == "compiled_fp32":
            functions[name] = optimize_for_inference(model, calibration[0], precision="fp32")
        elif name in ("bf16", "fp16"):
            precision, why = inference_precision(name, device)
            if precision != name:
                skipped[name] = why
            else:
                functions[name] = optimize_for_inference(model, calibration[0], precision=name)
        elif device.type != "cpu":
            skipped[name] = "int8 inference is built for the CPU"
        elif reason := missing(name.removeprefix("int8_")):
            skipped[name] = reason
        else:
            try:
                functions[name], _ = quantize(model, calibration, name.removeprefix("int8_"))
            except ConfigError as error:  # the toolchain could not compile this model
                skipped[name] = str(error)
    return functions, skipped


def time_variants(functions: dict[str, Callable], batch: torch.Tensor, repeats: int) -> dict:
    """Per variant: batch-1 latency, batch-64 throughput and both as speedups over eager fp32."""
    device = batch.device
    rows: dict[str, dict] = {name: {} for name in functions}
    for size in BATCHES:
        x = batch[:1] if size == 1 else batch.repeat(-(-size // len(batch)), 1, 1, 1)[:size]

        def call(function, x=x):
            return lambda: (function(x), synchronize(device))

        seconds = interleaved_seconds({n: call(f) for n, f in functions.items()}, repeats)
        medians = {name: statistics.median(values) for name, values in seconds.items()}
        for name, median in medians.items():
            key = "batch1_latency_ms" if size == 1 else f"batch{size}_images_per_second"
            rows[name][key] = round(1000 * median, 3) if size == 1 else round(size / median, 1)
            rows[name][f"speedup_batch{size}"] = round(medians["eager_fp32"] / median, 3)
    return rows


@torch.no_grad()
def agreement(functions: dict[str, Callable], batches: list[torch.Tensor]) -> dict[str, float]:
    """Per variant: the share of images where it picks eager fp32's class."""
    agree = dict.fromkeys(functions, 0)
    total = 0
    for x in batches:
        reference = functions["eager_fp32"](x).argmax(1)
        for name, function in functions.items():
            agree[name] += (function(x).float().argmax(1) == reference).sum().item()
        total += len(x)
    return {name: round(count / total, 4) for name, count in agree.items()}


def variant_rows(name: str, functions: dict[str, Callable], skipped: dict[str, str],
                 batch: torch.Tensor, check: list[torch.Tensor], repeats: int = 3) -> list[dict]:
    """One row per variant: timings on ``batch``, speedups, agreement on ``check``, or why not."""
    timings = time_variants(functions, batch, repeats)
    agreed = agreement(functions, check)
    rows = [{"model": name, "variant": variant, **timings[variant],
             "top1_agreement_with_fp32": agreed[variant], "images_compared": sum(map(len, check))}
            for variant in functions]
    rows += [{"model": name, "variant": variant, "skipped": why}
             for variant, why in skipped.items()]
    return rows


def inference_variants(model_name: str, train_images: torch.Tensor, test_images: torch.Tensor, *,
                       repeats: int = 3, agreement_images: int = 64, calibration_images: int = 128,
                       variants=VARIANTS, device: torch.device | str = "cpu") -> list[dict]:
    """``variant_rows`` of an ImageNet model (random weights) on real images at 224×224."""
    device = torch.device(device)
    torch.manual_seed(0)
    model = create_model(model_name).eval().to(device)
    calibration = [real_images_224(train_images[start:], 32).to(device)
                   for start in range(0, calibration_images, 32)]
    check = [real_images_224(test_images[start:], 32).to(device)
             for start in range(0, agreement_images, 32)]
    functions, skipped = build_variants(model, calibration,
                                        dict.fromkeys(("eager_fp32", *variants)))
    rows = variant_rows(model_name, functions, skipped, calibration[0], check, repeats)
    return [{**row, "device": device.type} for row in rows]


def trained_run_variants(run, *, data_dir: str | None = None, repeats: int = 3,
                         variants=VARIANTS, test_images: int | None = None) -> list[dict]:
    """``variant_rows`` of a trained run, calibrated on its training images, with each variant's
    top-1 on its test set (``test_images`` limits how many)."""
    from cnnzoo.engine.precision_gate import compare_on_test, model_batches, run_data

    train, test = run_data(run, data_dir)
    if test_images is not None:
        test = test.subset(range(min(test_images, len(test))))
    calibration = model_batches(run, train, 256, shuffle=True)
    functions, skipped = build_variants(run.model.eval(), calibration,
                                        dict.fromkeys(("eager_fp32", *variants)))
    rows = variant_rows(run.name, functions, skipped, calibration[0],
                        model_batches(run, test, 256), repeats)
    for row in rows:
        if row["variant"] in functions:
            wrapped = InferenceModel(run.model, functions[row["variant"]], row["variant"])
            row["test_top1"] = round(compare_on_test(run, wrapped, test)["top1"], 4)
            # the gate's view, which may not be the run's own --test-views (summary.json's)
            row["test_views"] = "center"
    return rows
