"""Where a LeNet-5 training step's time goes, and what other ways of computing it would cost.

The training benchmark compares cnnzoo with a tutorial loop; for LeNet-5 the ratio stays far from 3×
(docs: benchmarks/README). This script asks why: one SGD step of the modern LeNet-5 (batch 128,
28×28 grey images, random data) computed in several ways, each timed in interleaved rounds (median
of ``--rounds`` rounds of ``--steps`` steps):

- ``nchw``, ``channels-last``, ``bf16-channels-last``: PyTorch's own kernels in fp32 NCHW (the
  tutorial's step), in channels-last, and in bf16 autocast channels-last;
- ``im2col``: each convolution as ``F.unfold`` and one matrix product (what small-channel
  convolutions are often rewritten as);
- ``reshape-max``: each 2×2 max-pool as a reshape and ``amax``;
- ``compiled``: the model through ``torch.compile``;
- ``one-thread``: PyTorch's kernels in fp32 channels-last on one thread instead of one per core.

The step of the tutorial loop is the first row plus its data loading; 3× the tutorial needs a step
about a third of it. ``--batch`` asks the same at another batch size (per image: does a bigger batch
close the gap?). Prints a table (milliseconds per step, speed against ``nchw``, images/s) and writes
JSON with ``--out``.

    PYTHONPATH=src python benchmarks/lenet_step.py [--batch 128] [--rounds 7] [--steps 20]
        [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import warnings

import torch
import torch.nn.functional as F
from torch import nn

from cnnzoo.engine.machine import machine_name
from cnnzoo.models.registry import create_model

WAYS = ("nchw", "channels-last", "bf16-channels-last", "im2col", "reshape-max", "compiled",
        "one-thread")


class UnfoldConv2d(nn.Module):
    """A stride-1 convolution as unfold + one matrix product, with the weights of ``conv``."""

    def __init__(self, conv: nn.Conv2d) -> None:
        super().__init__()
        self.weight, self.bias = conv.weight, conv.bias
        self.kernel, self.padding = conv.kernel_size[0], conv.padding[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        side = x.shape[-1] + 2 * self.padding - self.kernel + 1
        columns = F.unfold(x, self.kernel, padding=self.padding)  # N, C·k·k, side²
        out = self.weight.flatten(1) @ columns
        if self.bias is not None:
            out = out + self.bias[:, None]
        return out.view(len(x), -1, side, side)


class ReshapeMaxPool2d(nn.Module):
    """A 2×2, stride-2 max-pool of an even-sided map as a reshape and a maximum."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        return x.reshape(n, c, h // 2, 2, w // 2, 2).amax((3, 5))


def lenet(way: str) -> nn.Module:
    torch.manual_seed(0)
    model = create_model("lenet5")
    for index, layer in enumerate(model.features):
        if way == "im2col" and isinstance(layer, nn.Conv2d):
            model.features[index] = UnfoldConv2d(layer)
        if way == "reshape-max" and isinstance(layer, nn.MaxPool2d):
            model.features[index] = ReshapeMaxPool2d()
    return model


def training_step(way: str, batch: int):
    """One SGD step of LeNet-5 on ``batch`` images computed ``way``; a function of no arguments."""
    layout = torch.contiguous_format if way in ("nchw", "im2col", "reshape-max") \
        else torch.channels_last
    model = lenet(way).to(memory_format=layout)
    net = torch.compile(model) if way == "compiled" else model
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = torch.randn(batch, 1, 28, 28).contiguous(memory_format=layout)
    y = torch.randint(0, 10, (batch,))

    def step() -> None:
        with torch.autocast("cpu", torch.bfloat16, enabled=way == "bf16-channels-last"):
            loss = F.cross_entropy(net(x).float(), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    def one_thread_step() -> None:  # the others keep every thread, untouched in their steps
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            step()
        finally:
            torch.set_num_threads(threads)

    return one_thread_step if way == "one-thread" else step


def measure(batch: int, rounds: int, steps: int) -> dict[str, float]:
    """Median milliseconds per step of every way, rounds interleaved (after warm-up steps)."""
    runs = {way: training_step(way, batch) for way in WAYS}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.compile's notes on a CPU without a GPU
        for run in runs.values():
            for _ in range(5):
                run()
    times: dict[str, list[float]] = {way: [] for way in WAYS}
    for _ in range(rounds):
        for way, run in runs.items():
            start = time.perf_counter()
            for _ in range(steps):
                run()
            times[way].append((time.perf_counter() - start) / steps * 1e3)
    return {way: statistics.median(values) for way, values in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=128, help="images a step (default: 128)")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--out", help="also write the JSON results here")
    args = parser.parse_args()
    milliseconds = measure(args.batch, args.rounds, args.steps)
    base = milliseconds["nchw"]
    for way, ms in milliseconds.items():
        print(f"{way:20s} {ms:7.2f} ms/step  {base / ms:5.2f}x nchw  "
              f"{args.batch / ms * 1e3:9,.0f} img/s")
    result = {"what": "lenet_step", "machine": machine_name(torch.device("cpu")),
              "torch": torch.__version__, "threads": torch.get_num_threads(), "batch": args.batch,
              "rounds": args.rounds, "steps": args.steps,
              "ms_per_step": {way: round(ms, 3) for way, ms in milliseconds.items()},
              "speed_over_nchw": {way: round(base / ms, 3) for way, ms in milliseconds.items()}}
    if args.out:
        with open(args.out, "w") as file:
            json.dump(result, file, indent=2)


if __name__ == "__main__":
    main()
