"""How much of the machine training uses: the matmul peak of each precision, measured now, and the fraction of
the peak *of the precision a model trains in* that its training reaches.

A large square matrix product is the fastest thing the hardware does; its FLOP/s in fp32 and bf16 (and fp16 on a
GPU), measured in the same run as the training, are the ceilings. A model trained in bf16 is measured against
the bf16 peak, one trained in fp32 against the fp32 peak: on a CPU with AMX the two differ 6.6-fold, so judging
a bf16 run by the fp32 peak would flatter it. A training step costs about three forward passes of multiply-adds
(forward, gradient of the inputs, gradient of the weights), each multiply-add two FLOPs.
"""

from __future__ import annotations

import time

import torch

from cnnzoo.engine.runtime import autocast, synchronize
from cnnzoo.inspect.summary import summary
from cnnzoo.models.registry import create_model

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def peak_precisions(device: torch.device) -> list[str]:
    """The precisions whose matmul peak is measured on ``device``: fp32 and bf16, and fp16 on a GPU."""
    if device.type == "cuda":
        return ["fp32", *(["bf16"] if torch.cuda.is_bf16_supported() else []), "fp16"]
    return ["fp32", "bf16"]


def matmul_peak(dtype: torch.dtype = torch.float32, size: int = 1024, seconds: float = 2.0,
                device: torch.device | str = "cpu") -> float:
    """Sustained FLOP/s of ``size``×``size`` matrix products in ``dtype`` on ``device``."""
    device = torch.device(device)
    a = torch.randn(size, size, device=device).to(dtype)
    b = torch.randn(size, size, device=device).to(dtype)
    torch.mm(a, b)  # warm-up: thread pool, packing buffers, kernel choice
    synchronize(device)
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        torch.mm(a, b)
        count += 1
        if device.type == "cuda" and count % 16 == 0:
            synchronize(device)
    synchronize(device)
    return 2 * size**3 * count / (time.perf_counter() - start)


def matmul_peaks(device: torch.device | str = "cpu", size: int = 1024, seconds: float = 2.0) -> dict[str, float]:
    """FLOP/s of each precision ``peak_precisions`` names, by name."""
    device = torch.device(device)
    return {name: matmul_peak(DTYPES[name], size, seconds, device) for name in peak_precisions(device)}


def training_utilisation(model_name: str, *, input_size: tuple[int, int, int], batch_size: int = 128,
                         steps: int = 10, model_kwargs: dict | None = None, precision: str = "fp32",
                         channels_last: bool = True, device: torch.device | str = "cpu",
                         peaks: dict[str, float] | None = None, peak_size: int = 1024,
                         peak_seconds: float = 2.0) -> dict:
    """Training FLOP/s of ``model_name`` (random data) in ``precision`` and layout, and its fraction of the
    matmul peak of that precision (``peaks``, measured here when not given)."""
    device = torch.device(device)
    torch.manual_seed(0)
    model = create_model(model_name, **{"in_channels": input_size[0], **(model_kwargs or {})})
    macs = summary(model, input_size).total_macs
    layout = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(device=device, memory_format=layout).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = torch.randn(batch_size, *input_size, device=device).contiguous(memory_format=layout)
    y = torch.randint(0, model.cfg.num_classes, (batch_size,), device=device)
    scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")

    def step() -> None:
        with autocast(device, precision):
            loss = torch.nn.functional.cross_entropy(model(x).float(), y)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()

    step()
    synchronize(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    synchronize(device)
    images_per_second = steps * batch_size / (time.perf_counter() - start)
    peaks = peaks or matmul_peaks(device, peak_size, peak_seconds)
    achieved = 3 * 2 * macs * images_per_second
    return {"model": model_name, "input_size": list(input_size), "batch_size": batch_size, "precision": precision,
            "channels_last": channels_last, "macs_per_image": macs, "images_per_second": round(images_per_second, 1),
            "training_gflops": round(achieved / 1e9, 4),
            **{f"matmul_peak_{name}_gflops": round(value / 1e9, 2) for name, value in peaks.items()},
            "fraction_of_peak": round(achieved / peaks[precision], 3), "peak_precision": precision,
            "fraction_of_fp32_peak": round(achieved / peaks["fp32"], 3)}
