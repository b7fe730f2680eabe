"""How much of the machine training uses: the matmul peak measured now, and the fraction a model reaches.

A large square matrix product is the fastest thing the hardware does; its FLOP/s (fp32 and bf16, measured in
the same run as the training) is the ceiling. A training step costs about three forward passes of
multiply-adds (forward, gradient of the inputs, gradient of the weights), each multiply-add two FLOPs.
"""

from __future__ import annotations

import time

import torch

from cnnzoo.inspect.summary import summary
from cnnzoo.models.registry import create_model


def matmul_peak(dtype: torch.dtype = torch.float32, size: int = 1024, seconds: float = 2.0) -> float:
    """Sustained FLOP/s of ``size``×``size`` matrix products in ``dtype`` on the CPU."""
    a = torch.randn(size, size).to(dtype)
    b = torch.randn(size, size).to(dtype)
    torch.mm(a, b)  # warm-up: thread pool, packing buffers
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        torch.mm(a, b)
        count += 1
    return 2 * size**3 * count / (time.perf_counter() - start)


def training_utilisation(model_name: str, *, input_size: tuple[int, int, int], batch_size: int = 128,
                         steps: int = 10, model_kwargs: dict | None = None, peak_size: int = 1024,
                         peak_seconds: float = 2.0) -> dict:
    """Training FLOP/s of ``model_name`` (fp32, channels-last, random data) and its fraction of the fp32 peak."""
    torch.manual_seed(0)
    kwargs = {"in_channels": input_size[0], **(model_kwargs or {})}
    model = create_model(model_name, **kwargs)
    macs = summary(model, input_size).total_macs
    model = model.to(memory_format=torch.channels_last).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = torch.randn(batch_size, *input_size).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, model.cfg.num_classes, (batch_size,))

    def step() -> None:
        loss = torch.nn.functional.cross_entropy(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    images_per_second = steps * batch_size / (time.perf_counter() - start)
    peak_fp32 = matmul_peak(torch.float32, peak_size, peak_seconds)
    peak_bf16 = matmul_peak(torch.bfloat16, peak_size, peak_seconds)
    achieved = 3 * 2 * macs * images_per_second
    return {"model": model_name, "input_size": list(input_size), "macs_per_image": macs,
            "images_per_second": round(images_per_second, 1), "training_gflops": round(achieved / 1e9, 2),
            "matmul_peak_fp32_gflops": round(peak_fp32 / 1e9, 2), "matmul_peak_bf16_gflops": round(peak_bf16 / 1e9, 2),
            "fraction_of_fp32_peak": round(achieved / peak_fp32, 3)}
