"""Fast inference: turn a trained model into a frozen, fused, channels-last function of a batch.

What it does, and why each step helps on CPU (oneDNN) and GPU (cuDNN) alike:
- eval mode and no autograd bookkeeping;
- channels-last (NHWC) layout, which the optimised convolution kernels want, so no layout
  conversions run between layers;
- freezing: parameters become constants, BatchNorm is folded into the preceding convolution,
  elementwise operations are fused into their neighbours and, on CPU, weights are pre-packed once
  into the blocked layout oneDNN computes in, instead of at every call. ``torch.compile`` with
  freezing does this best (it needs a C++ compiler on CPU and half a minute or so per model);
  TorchScript's ``freeze`` is the fallback;
- reduced precision only when asked for, and bf16 only where the CPU runs it natively
  (``inference_precision``); int8 is ``engine.quantize``'s, and ``engine.precision_gate`` keeps it
  only when it keeps the run's test accuracy.
In fp32 (the default) the returned callable gives the eager model's logits up to float rounding.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import torch
from torch import nn

from cnnzoo.engine.quantize import quantize
from cnnzoo.engine.runtime import autocast, cpu_has_fast_bf16, resolve_precision
from cnnzoo.errors import ConfigError

PRECISIONS = ("fp32", "bf16", "fp16", "int8")


def _compiled(model: nn.Module, example: torch.Tensor) -> Callable:
    compiled = torch.compile(model, options={"freezing": True})
    compiled(example)  # compile now, not at the first real call
    return compiled


def _scripted(model: nn.Module, example: torch.Tensor) -> Callable:
    with warnings.catch_warnings():
        # TorchScript's deprecation notices; the traced graph is what we want
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(model, example, check_trace=False)
        frozen = torch.jit.optimize_for_inference(torch.jit.freeze(traced))
    for _ in range(2):  # the first calls profile and specialise the graph
        frozen(example)
    return frozen


def inference_precision(requested: str, device: torch.device) -> tuple[str, str]:
    """The precision to run in, and why where it is not the one asked for. ``"auto"`` is bf16 where
    the hardware has native bf16 (a CPU's avx512_bf16 or AMX), else fp32; bf16 asked for on a CPU
    without them runs in fp32, since PyTorch would emulate it several times slower than fp32."""
    if requested not in (*PRECISIONS, "auto"):
        raise ConfigError(f"unknown inference precision {requested!r}; choose from auto, "
                          + ", ".join(PRECISIONS))
    if requested == "bf16" and device.type == "cpu" and not cpu_has_fast_bf16():
        return "fp32", "this CPU has no native bf16 (avx512_bf16 or AMX): fp32 instead"
    if requested == "fp16" and device.type == "cpu":
        return "fp32", "fp16 autocast is for GPUs: fp32 instead"
    if requested == "auto" and device.type == "cpu":
        return ("bf16" if cpu_has_fast_bf16() else "fp32"), ""
    return resolve_precision(requested, device), ""


def optimize_for_inference(model: nn.Module, example: torch.Tensor, *, precision: str = "fp32",
                           method: str = "compile") -> Callable[[torch.Tensor], torch.Tensor]:
    """A faster ``f(x) -> logits`` equivalent to ``model.eval()(x)`` for inputs shaped like
    ``example``.

    ``precision``: fp32 (default), bf16 (autocast; fp32 where not native, see
    ``inference_precision``), int8 (``engine.quantize``, calibrated on ``example``: pass real
    training images) or auto. ``method``: ``"compile"`` (torch.compile with freezing; falls back to
    TorchScript if compilation fails), ``"script"`` (TorchScript freeze, no compiler needed, quick
    to prepare) or ``"eager"`` (layout only).
    """
    device = example.device
    precision, _ = inference_precision(precision, device)
    if precision == "int8":
        function, _ = quantize(model.eval(), [example])
        return function
    model = model.eval().to(memory_format=torch.channels_last)
    example = example.contiguous(memory_format=torch.channels_last)
    with torch.no_grad(), autocast(device, precision):
        if method == "compile":
            try:
                function = _compiled(model, example)
            except Exception as error:  # no compiler, unsupported platform: fall back, but say so
                warnings.warn(f"torch.compile failed ({type(error).__name__}); using TorchScript "
                              "freezing",
                              stacklevel=2)
                function = _scripted(model, example)
        elif method == "script":
            function = _scripted(model, example)
        else:
            function = model

    def run(x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad(), autocast(device, precision):
            return function(x.contiguous(memory_format=torch.channels_last)).float()

    return run


class InferenceModel(nn.Module):
    """A fast function of a batch in the place of ``model``: the original stays inside, so that its
    ``cfg`` and the device of its parameters still answer, while ``forward`` runs the function."""

    def __init__(self, model: nn.Module, function: Callable[[torch.Tensor], torch.Tensor],
                 precision: str) -> None:
        super().__init__()
        self.model, self.function, self.precision = model, function, precision
        self.cfg = getattr(model, "cfg", None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self.function(x)
