"""Fast inference: turn a trained model into a frozen, fused, channels-last function of a batch.

What it does, and why each step helps on CPU (oneDNN) and GPU (cuDNN) alike:
- eval mode and no autograd bookkeeping;
- channels-last (NHWC) layout, which the optimised convolution kernels want, so no layout conversions run
  between layers;
- freezing: parameters become constants, BatchNorm is folded into the preceding convolution, elementwise
  operations are fused into their neighbours and, on CPU, weights are pre-packed once into the blocked layout
  oneDNN computes in, instead of at every call. ``torch.compile`` with freezing does this best (it needs a C++
  compiler on CPU and half a minute or so per model); TorchScript's ``freeze`` is the fallback;
- reduced precision only where the hardware runs it natively (``resolve_precision("auto")``).
The returned callable gives the same predictions as the eager model up to floating-point rounding.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import torch
from torch import nn

from cnnzoo.engine.runtime import autocast, resolve_precision


def _compiled(model: nn.Module, example: torch.Tensor) -> Callable:
    compiled = torch.compile(model, options={"freezing": True})
    compiled(example)  # compile now, not at the first real call
    return compiled


def _scripted(model: nn.Module, example: torch.Tensor) -> Callable:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TorchScript's deprecation notices; the traced graph is what we want
        traced = torch.jit.trace(model, example, check_trace=False)
        frozen = torch.jit.optimize_for_inference(torch.jit.freeze(traced))
    for _ in range(2):  # the first calls profile and specialise the graph
        frozen(example)
    return frozen


def optimize_for_inference(model: nn.Module, example: torch.Tensor, *, precision: str = "auto",
                           method: str = "compile") -> Callable[[torch.Tensor], torch.Tensor]:
    """A faster ``f(x) -> logits`` equivalent to ``model.eval()(x)`` for inputs shaped like ``example``.

    ``method``: ``"compile"`` (torch.compile with freezing; falls back to TorchScript if compilation fails),
    ``"script"`` (TorchScript freeze, no compiler needed, quick to prepare) or ``"eager"`` (layout only).
    """
    device = example.device
    precision = resolve_precision(precision, device)
    model = model.eval().to(memory_format=torch.channels_last)
    example = example.contiguous(memory_format=torch.channels_last)
    with torch.no_grad(), autocast(device, precision):
        if method == "compile":
            try:
                function = _compiled(model, example)
            except Exception as error:  # no compiler, unsupported platform: fall back, but say so
                warnings.warn(f"torch.compile failed ({type(error).__name__}); using TorchScript freezing",
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
