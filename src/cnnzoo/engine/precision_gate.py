"""Reduced-precision inference of a trained run, kept only when it keeps its accuracy and pays.

The gate evaluates the run's fp32 model and the bf16 or int8 one on the run's test set in one pass
(the same images, the same centre view), and keeps the reduced one only if its top-1 is within
``TOLERANCE`` (0.5 points) of fp32's *and* it is faster than eager fp32 at batch 64 on this machine:
for a LeNet-size network the work per image is so small that quantising and dequantising costs more
than the int8 arithmetic saves, and such a model is reported as not worth quantising. ``force``
keeps it anyway. The verdict, with every figure behind it, is returned for printing and storing.
Calibration uses training images, never test images, so the test accuracy stays an honest figure.

The verdicts are stored in the run directory (``GATE_FILE``), and ``kept_model`` gives `cnnzoo
predict` and the explorer the model a verdict kept: int8 from the file `cnnzoo export --int8` wrote,
else rebuilt as the gate built it (the same calibration images, in the same order, by the same
toolchain), so that it is the model whose figures were measured.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from cnnzoo.engine.evaluate import log_probabilities, own_data
from cnnzoo.engine.inference import InferenceModel, inference_precision, optimize_for_inference
from cnnzoo.engine.inputs import choose_input_side
from cnnzoo.engine.quantize import best_seconds, onnx_function, quantize, quantize_onnxruntime
from cnnzoo.errors import ConfigError, DataFormatError
from cnnzoo.files import atomic_write_text

if TYPE_CHECKING:
    from cnnzoo.data.dataset import ImageDataset
    from cnnzoo.engine.run import Run

TOLERANCE = 0.005  # the most top-1 (as a fraction) a reduced precision may lose against fp32
SPEED_BATCH = 64  # the batch at which "it pays" is judged: throughput, as `cnnzoo bench inference`
GATE_FILE = "inference_gate.json"  # in the run directory: the gate's last verdict per precision


def run_data(run: Run, data_dir: str | None = None, download: bool = True
             ) -> tuple[ImageDataset, ImageDataset]:
    """The run's training and test images, at the side its model takes."""
    if run.dataset is None:
        raise ConfigError("this checkpoint does not record its dataset, which the gate evaluates "
                          "on")
    data = own_data(run, data_dir, download=download)
    side = choose_input_side(run.model.cfg, data.test.image_size[-1], run.input.size)
    return data.train.pad_to(side), data.test.pad_to(side)


def model_batches(run: Run, data: ImageDataset, count: int, batch_size: int = SPEED_BATCH,
                  shuffle: bool = False) -> list[torch.Tensor]:
    """Up to ``count`` images of ``data`` as the model's normalised float input (centre view)."""
    views = run.input.eval_pipeline("center")
    generator = torch.Generator().manual_seed(0)
    batches, seen = [], 0
    for images, _ in data.batches(batch_size, shuffle=shuffle, generator=generator):
        batches.append(views(images)[0])
        seen += len(images)
        if seen >= count:
            break
    return batches


@torch.no_grad()
def compare_on_test(run: Run, variant: torch.nn.Module, test: ImageDataset,
                    batch_size: int = 250) -> dict:
    """Top-1 of fp32 and of ``variant`` on ``test``, and how often the two pick the same class."""
    views = run.input.eval_pipeline("center")
    device = next(run.model.parameters()).device
    correct = {"fp32": 0, "variant": 0}
    agree = total = 0
    for images, labels in test.batches(batch_size, shuffle=False):
        predicted = {name: log_probabilities(model, images, views, device=device).argmax(1).cpu()
                     for name, model in (("fp32", run.model), ("variant", variant))}
        for name, classes in predicted.items():
            correct[name] += (classes == labels).sum().item()
        agree += (predicted["fp32"] == predicted["variant"]).sum().item()
        total += len(labels)
    if total == 0:
        raise ConfigError("cannot gate on an empty test set")
    return {"images": total, "fp32_top1": correct["fp32"] / total,
            "top1": correct["variant"] / total, "top1_agreement_with_fp32": agree / total}


def build_variant(run: Run, precision: str, calibration: list[torch.Tensor],
                  int8_backend: str = "auto", onnx_path: Path | None = None,
                  method: str = "compile") -> tuple[InferenceModel, dict]:
    """The run's model in ``precision`` (int8 calibrated on ``calibration``), and how it was made;
    ``onnx_path``: ONNX Runtime's int8 file is written there (what `cnnzoo export --int8` ships);
    ``method``: how bf16 is prepared (``optimize_for_inference``'s; "eager" is autocast alone)."""
    model = run.model.eval()
    if precision == "int8" and onnx_path is not None:
        function = quantize_onnxruntime(model, calibration, onnx_path)
        how = {"backend": "onnxruntime", "file": str(onnx_path)}
    elif precision == "int8":
        function, how = quantize(model, calibration, int8_backend)
    else:
        function = optimize_for_inference(model, calibration[0], precision=precision,
                                          method=method)
        how = {}
    return InferenceModel(model, function, precision), how


def gate(run: Run, precision: str = "int8", *, data_dir: str | None = None, force: bool = False,
         int8_backend: str = "auto", calibration_images: int = 512,
         test_images: int | None = None, onnx_path: Path | None = None,
         ) -> tuple[InferenceModel | None, dict]:
    """The run's model in ``precision`` if it keeps the test accuracy within ``TOLERANCE`` and beats
    eager fp32 at batch ``SPEED_BATCH`` (or ``force``), else None; and the report either way.
    ``calibration_images`` training images calibrate int8; ``test_images`` limits the test set."""
    device = next(run.model.parameters()).device
    precision, note = inference_precision(precision, device)
    train, test = run_data(run, data_dir)
    if test_images is not None:
        test = test.subset(range(min(test_images, len(test))))
    calibration = model_batches(run, train, calibration_images, shuffle=True)
    variant, how = build_variant(run, precision, calibration, int8_backend, onnx_path)
    report = {"precision": precision, **({"note": note} if note else {}), **how,
              "calibration_images": sum(len(b) for b in calibration),
              **compare_on_test(run, variant, test)}
    seconds = best_seconds({"fp32": run.model, "variant": variant}, calibration[0])
    report["speedup_over_eager_fp32"] = round(seconds["fp32"] / seconds["variant"], 3)
    report["accuracy_drop_points"] = round(100 * (report["fp32_top1"] - report["top1"]), 3)
    report["keeps_accuracy"] = report["fp32_top1"] - report["top1"] <= TOLERANCE
    report["pays"] = report["speedup_over_eager_fp32"] > 1.0
    report["kept"] = force or (report["keeps_accuracy"] and report["pays"])
    report["forced"] = force and not (report["keeps_accuracy"] and report["pays"])
    return (variant if report["kept"] else None), report


def verdict(report: dict) -> str:
    """One line: the figures and what was decided."""
    line = (f"{report['precision']}: top-1 {report['top1']:.2%} against fp32 "
            f"{report['fp32_top1']:.2%} ({report['accuracy_drop_points']:+.2f} points lost) on "
            f"{report['images']:,} test images, agreement with fp32 "
            f"{report['top1_agreement_with_fp32']:.1%}, {report['speedup_over_eager_fp32']}x eager "
            f"fp32 at batch {SPEED_BATCH}")
    if report.get("backend"):
        line += f" ({report['backend']})"
    if report["forced"]:
        return line + "; kept because --force was given"
    if not report["keeps_accuracy"]:
        return line + (f"; refused: it loses more than {100 * TOLERANCE:.1f} points (--force keeps "
                       "it)")
    if not report["pays"]:
        return line + "; refused: it does not pay on a model this small (--force keeps it)"
    return line + "; kept"


def require_native_bf16(device: torch.device) -> None:
    """Refuse ``--precision bf16`` where the hardware would only emulate it."""
    if inference_precision("bf16", device)[0] != "bf16":
        raise ConfigError("--precision bf16: this CPU has no native bf16 (avx512_bf16 or AMX), so "
                          "PyTorch would emulate it several times slower than fp32; use "
                          "--precision fp32")


def stored_verdicts(run_dir: Path | None) -> dict:
    """The gate's last verdict per precision stored in ``run_dir`` ({} where none was)."""
    path = None if run_dir is None else Path(run_dir) / GATE_FILE
    if path is None or not path.is_file():
        return {}
    try:
        verdicts = json.loads(path.read_text())
    except ValueError:  # UnicodeDecodeError is one too
        verdicts = None
    if not (isinstance(verdicts, dict) and all(isinstance(v, dict) for v in verdicts.values())):
        raise DataFormatError(f"{path} is damaged (not the gate's JSON verdicts); delete it and "
                              "run `cnnzoo eval RUN --precision int8` (or bf16) again")
    return verdicts


def store_verdict(run_dir: Path, report: dict) -> None:
    """Record ``report`` as the run's verdict for its precision, beside the other precisions'."""
    verdicts = {**stored_verdicts(run_dir), report["precision"]: report}
    atomic_write_text(Path(run_dir) / GATE_FILE, json.dumps(verdicts, indent=2) + "\n")


FIGURES = ("fp32_top1", "top1", "top1_agreement_with_fp32", "accuracy_drop_points", "images",
           "speedup_over_eager_fp32", "backend", "forced")


def kept_model(run: Run, precision: str, *, data_dir: str | None = None, download: bool = True
               ) -> tuple[InferenceModel, dict]:
    """The run's model in ``precision`` (bf16 or int8) as the stored verdict kept it, and that
    verdict's figures ({} for a bf16 never gated); a ``ConfigError`` saying what to do where there
    is none. bf16 is autocast, only on hardware that runs it natively; int8 needs a kept verdict."""
    device = next(run.model.parameters()).device
    where = run.run_dir or "RUN_DIR"
    if precision == "bf16":
        require_native_bf16(device)
    report = stored_verdicts(run.run_dir).get(precision)
    if report is None and precision == "int8":
        raise ConfigError(f"--precision int8: {run.name} has no int8 model kept by the accuracy "
                          f"gate; run `cnnzoo eval {where} --precision int8` or `cnnzoo export "
                          f"{where} --int8` first")
    if report is not None and not report["kept"]:
        why = ("it does not pay on a model this small" if report["keeps_accuracy"] else
               f"it loses {report['accuracy_drop_points']:.2f} points of top-1")
        raise ConfigError(f"--precision {precision}: the accuracy gate refused it for {run.name} "
                          f"({why}); use --precision fp32, or keep it anyway with `cnnzoo eval "
                          f"{where} --precision {precision} --force`")
    if precision == "bf16":
        example = torch.zeros(2, *run.model.cfg.input_size, device=device)
        variant, _ = build_variant(run, "bf16", [example], method="eager")
    elif report.get("file") and Path(report["file"]).is_file():
        variant = InferenceModel(run.model.eval(), onnx_function(Path(report["file"])), "int8")
    else:
        train, _ = run_data(run, data_dir, download)
        calibration = model_batches(run, train, report["calibration_images"], shuffle=True)
        variant, _ = build_variant(run, "int8", calibration, report["backend"])
    return variant, {key: report[key] for key in FIGURES if key in (report or {})}
