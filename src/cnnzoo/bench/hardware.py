"""How much of the machine training and inference use: each precision's peak, measured now, and the
fraction of the peak *of the precision a model runs in* that its training and its inference reach.

A peak is the best rate of a few large matrix products and convolutions in that precision (fp32
everywhere; bf16 where the CPU has native bf16 or on a GPU; int8 where the CPU has VNNI or AMX-INT8,
matrix products only, through ``torch._int_mm``), measured in the same run as the models: the most
the hardware was seen to do, not a datasheet figure. A model in bf16 is judged against the bf16
peak, one in fp32 against the fp32 peak (on a CPU with AMX they differ several-fold). A training
step costs about three forward passes of multiply-adds (forward, gradient of the inputs, gradient
of the weights), each multiply-add two FLOPs. Where a model reaches little of its peak,
``top_operators`` shows which operators take the time, so the next speed work is aimed.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

from cnnzoo.bench.timing import interleaved_seconds
from cnnzoo.engine.runtime import autocast, cpu_has_fast_bf16, synchronize
from cnnzoo.inspect.summary import summary
from cnnzoo.models.registry import create_model

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16, "int8": torch.int8}
MATMUL_SIDES = (1024, 2048)
CONV_SHAPE = (64, 128, 28)  # batch, channels in and out, side: a 3x3 layer of a mid-sized CNN


def peak_precisions(device: torch.device) -> list[str]:
    """The precisions the hardware runs natively: fp32; bf16 on a CPU with avx512_bf16 or AMX or
    a GPU that has it; fp16 on a GPU; int8 on a CPU with VNNI or AMX."""
    if device.type == "cuda":
        return ["fp32", *(["bf16"] if torch.cuda.is_bf16_supported() else []), "fp16"]
    names = ["fp32", *(["bf16"] if cpu_has_fast_bf16() else [])]
    return names + (["int8"] if getattr(torch.cpu, "_is_vnni_supported", lambda: False)() else [])


def _rate(work: Callable[[], object], flops: float, seconds: float, device: torch.device) -> float:
    """FLOP/s of ``work`` (``flops`` per call) sustained over about ``seconds``, after a warm-up."""
    work()  # thread pool, packing buffers, kernel choice
    synchronize(device)
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        work()
        count += 1
        if device.type == "cuda" and count % 16 == 0:
            synchronize(device)
    synchronize(device)
    return flops * count / (time.perf_counter() - start)


def matmul_peak(dtype: torch.dtype = torch.float32, size: int = 1024, seconds: float = 2.0,
                device: torch.device | str = "cpu") -> float:
    """Sustained FLOP/s (int8: operations/s) of ``size``×``size`` matrix products in ``dtype``."""
    device = torch.device(device)
    if dtype == torch.int8:
        a = torch.randint(-128, 128, (size, size), dtype=torch.int8, device=device)
        b = torch.randint(-128, 128, (size, size), dtype=torch.int8, device=device)
        return _rate(lambda: torch._int_mm(a, b), 2 * size**3, seconds, device)
    a = torch.randn(size, size, device=device).to(dtype)
    b = torch.randn(size, size, device=device).to(dtype)
    return _rate(lambda: torch.mm(a, b), 2 * size**3, seconds, device)


def conv_peak(dtype: torch.dtype = torch.float32, seconds: float = 2.0,
              device: torch.device | str = "cpu") -> float:
    """Sustained FLOP/s of a 3×3 convolution (``CONV_SHAPE``, channels-last) in ``dtype``."""
    device = torch.device(device)
    batch, channels, side = CONV_SHAPE
    x = torch.randn(batch, channels, side, side, device=device).to(dtype)
    x = x.contiguous(memory_format=torch.channels_last)
    weight = torch.randn(channels, channels, 3, 3, device=device).to(dtype)
    weight = weight.contiguous(memory_format=torch.channels_last)
    flops = 2 * batch * channels * channels * 9 * side * side
    with torch.no_grad():
        return _rate(lambda: F.conv2d(x, weight, padding=1), flops, seconds, device)


def measured_peaks(device: torch.device | str = "cpu", seconds: float = 2.0,
                   sides: tuple[int, ...] = MATMUL_SIDES) -> dict[str, dict]:
    """Per native precision: the best rate among matrix products of ``sides`` and a convolution
    (int8: matrix products only), which one gave it, and every rate measured."""
    device = torch.device(device)
    peaks = {}
    for name in peak_precisions(device):
        dtype = DTYPES[name]
        shapes = [f"matmul {side}" for side in sides] + ([] if name == "int8" else ["conv 3x3"])
        each = seconds / len(shapes)
        rates = {shape: (conv_peak(dtype, each, device) if shape.startswith("conv")
                         else matmul_peak(dtype, int(shape.split()[1]), each, device))
                 for shape in shapes}
        best = max(rates, key=rates.get)
        peaks[name] = {"flops": rates[best], "from": best,
                       "gflops_each": {s: round(rate / 1e9, 2) for s, rate in rates.items()}}
    return peaks


def matmul_peaks(device: torch.device | str = "cpu", size: int = 1024, seconds: float = 2.0
                 ) -> dict[str, float]:
    """FLOP/s of each native precision's peak (see ``measured_peaks``; ``size`` is the largest side
    of its matrix products), by name."""
    sides = tuple(sorted({min(1024, size), size}))
    return {name: peak["flops"] for name, peak in measured_peaks(device, seconds, sides).items()}


def _training_step(model_name: str, input_size: tuple[int, int, int], batch_size: int,
                   model_kwargs: dict | None, precision: str, channels_last: bool,
                   device: torch.device, compiled: bool) -> tuple[Callable[[], None], int]:
    """One SGD step of a fresh ``model_name`` on a fixed random batch (through ``torch.compile``
    when ``compiled``), and the model's multiply-adds per image."""
    torch.manual_seed(0)
    model = create_model(model_name, **{"in_channels": input_size[0], **(model_kwargs or {})})
    macs = summary(model, input_size).total_macs
    layout = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(device=device, memory_format=layout).train()
    if compiled:
        # a fresh dynamo cache for each model: every zoo model shares one forward's code object,
        # whose compiled entries dynamo caps (past the cap it runs the rest eagerly, silently)
        torch._dynamo.reset()
    net = torch.compile(model) if compiled else model
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = torch.randn(batch_size, *input_size, device=device).contiguous(memory_format=layout)
    y = torch.randint(0, model.cfg.num_classes, (batch_size,), device=device)
    scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")

    def step() -> None:
        with autocast(device, precision):
            loss = F.cross_entropy(net(x).float(), y)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()

    return step, macs


def training_utilisation(model_name: str, *, input_size: tuple[int, int, int],
                         batch_size: int = 128,
                         steps: int = 10, model_kwargs: dict | None = None, precision: str = "fp32",
                         channels_last: bool = True, device: torch.device | str = "cpu",
                         peaks: dict[str, float] | None = None, peak_size: int = 1024,
                         peak_seconds: float = 2.0, compiled: bool = False,
                         repeats: int = 3) -> dict:
    """Training FLOP/s of ``model_name`` (random data) in ``precision`` and layout, and its fraction
    of the peak of that precision (``peaks``, measured here when not given): the median of
    ``repeats`` rounds of ``steps`` steps. With ``compiled``, the same through ``torch.compile``
    (as a run long enough for the autotuner's compile trial may train), its rounds interleaved with
    the eager ones, and the seconds its first step took to compile."""
    device = torch.device(device)
    settings = (model_name, input_size, batch_size, model_kwargs, precision, channels_last, device)
    step, macs = _training_step(*settings, compiled=False)
    runs = {"eager": step}
    if compiled:
        runs["compiled"], _ = _training_step(*settings, compiled=True)
        compile_seconds = _timed(lambda: (runs["compiled"](), synchronize(device)))
    seconds = interleaved_seconds(
        {name: lambda run=run: ([run() for _ in range(steps)], synchronize(device))
         for name, run in runs.items()}, repeats)
    rates = {name: steps * batch_size / statistics.median(values)
             for name, values in seconds.items()}  # images per second
    flops = {name: 3 * 2 * macs * rate for name, rate in rates.items()}
    peaks = peaks or matmul_peaks(device, peak_size, peak_seconds)
    fraction = flops["eager"] / peaks[precision]
    row = {"model": model_name, "input_size": list(input_size), "batch_size": batch_size,
           "precision": precision, "channels_last": channels_last, "macs_per_image": macs,
           "images_per_second": round(rates["eager"], 1),
           "training_gflops": round(flops["eager"] / 1e9, 4),
           **{f"peak_{name}_gflops": round(value / 1e9, 2) for name, value in peaks.items()},
           "fraction_of_peak": round(fraction, 3), "peak_precision": precision,
           "fraction_of_fp32_peak": round(flops["eager"] / peaks["fp32"], 3),
           **({"training_top_operators": top_operators(step)} if fraction < FAR_BELOW else {})}
    if compiled:
        row.update({"compiled_images_per_second": round(rates["compiled"], 1),
                    "compiled_training_gflops": round(flops["compiled"] / 1e9, 4),
                    "compiled_fraction_of_peak": round(flops["compiled"] / peaks[precision], 3),
                    "compile_seconds": round(compile_seconds, 1)})
    return row


FAR_BELOW = 0.25  # a model under this fraction of its peak gets a table of where its time goes


def top_operators(work: Callable[[], object], calls: int = 3, rows: int = 8) -> list[dict]:
    """The operators taking most of ``work``'s CPU time over ``calls`` calls (torch.profiler), each
    with its share of the total self time."""
    from torch.profiler import ProfilerActivity, profile

    work()
    with profile(activities=[ProfilerActivity.CPU]) as profiler:
        for _ in range(calls):
            work()
    events = sorted(profiler.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    total = sum(e.self_cpu_time_total for e in events) or 1.0
    return [{"operator": e.key, "calls": e.count // calls,
             "self_ms_per_call": round(e.self_cpu_time_total / calls / 1000, 3),
             "share": round(e.self_cpu_time_total / total, 3)} for e in events[:rows]]


def inference_utilisation(model_name: str, *, input_size: tuple[int, int, int], precision: str,
                          peaks: dict[str, float], batch_size: int = 64, steps: int = 10,
                          device: torch.device | str = "cpu", method: str = "compile") -> dict:
    """Inference FLOP/s of ``model_name`` (random weights and data) on cnnzoo's inference path in
    ``precision`` at ``batch_size``, and its fraction of that precision's peak; with a table of
    the top operators where it is below ``FAR_BELOW``."""
    from cnnzoo.engine.inference import optimize_for_inference

    device = torch.device(device)
    torch.manual_seed(0)
    model = create_model(model_name, in_channels=input_size[0]).to(device).eval()
    macs = summary(model, input_size).total_macs
    x = torch.randn(batch_size, *input_size, device=device)
    function = optimize_for_inference(model, x, precision=precision, method=method)

    def batch() -> None:
        function(x)
        synchronize(device)

    seconds = min(_timed(batch) for _ in range(steps))
    achieved = 2 * macs * batch_size / seconds
    fraction = achieved / peaks[precision]
    return {"inference_precision": precision, "inference_batch": batch_size,
            "inference_images_per_second": round(batch_size / seconds, 1),
            "inference_gflops": round(achieved / 1e9, 4),
            "inference_fraction_of_peak": round(fraction, 3),
            **({"inference_top_operators": top_operators(batch)} if fraction < FAR_BELOW else {})}


def _timed(work: Callable[[], object]) -> float:
    start = time.perf_counter()
    work()
    return time.perf_counter() - start
