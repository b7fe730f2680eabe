"""Int8 inference: a trained model quantised statically (int8 weights, one scale per output
channel; int8 activations whose ranges are calibrated on training images), by one of two
maintained toolchains.

- ``"pt2e"``: torchao's PT2E flow. ``torch.export`` captures the graph, ``X86InductorQuantizer``
  places quantise/dequantise pairs, calibration records the activation ranges, and ``torch.compile``
  with inductor freezing fuses each pair with its convolution or matmul into one oneDNN int8 kernel
  (VNNI or AMX where the CPU has them). Needs torchao (``cnnzoo[int8]``) and a C++ compiler.
- ``"onnxruntime"``: ONNX Runtime's static quantisation in QDQ form (per-channel int8 weights, uint8
  activations) of the model's ONNX file, run by ONNX Runtime's CPU kernels (``cnnzoo[export]``).

Which is faster depends on the CPU, the model and the batch, so ``quantize(backend="auto")`` builds
every toolchain that is installed and keeps the one that ran the calibration batch fastest on this
machine, as the training autotuner does for precisions. Neither is assumed to be faster.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.utils import _pair

from cnnzoo.errors import ConfigError, in_one_line
from cnnzoo.layers.output_size import conv_output_size

BACKENDS = ("pt2e", "onnxruntime")
Function = Callable[[torch.Tensor], torch.Tensor]


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """torchao warns at import about its CUDA-only kernels, torch about deprecations of the export
    path and ONNX Runtime's quantiser, on the root logger, about each BatchNorm weight it cannot
    quantise per channel (one line for each of DenseNet-121's): noise for a user, who cannot act
    on it."""
    names = ("torchao", "torch.utils._pytree", "torch._export", "")
    loggers = [logging.getLogger(name) for name in names]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def missing(backend: str) -> str | None:
    """Why ``backend`` cannot run here (what to install), or None when it can."""
    if backend not in BACKENDS:
        raise ConfigError(f"unknown int8 toolchain {backend!r}; choose from {', '.join(BACKENDS)}")
    try:
        with _quiet():
            if backend == "pt2e":
                import torchao.quantization.pt2e  # noqa: F401
            else:
                import onnx  # noqa: F401
                import onnxruntime.quantization  # noqa: F401
    except ImportError:
        extra = "int8" if backend == "pt2e" else "export"
        return f"{backend} needs pip install 'cnnzoo[{extra}]'"
    return None


class _EdgePaddedMaxPool2d(nn.Module):
    """A ceil-mode max-pool computed in floor mode over the input with its last row and column
    repeated, as many times as floor mode needs to give the same output size.

    The same values: every window that reaches past the input also covers its last row (or column),
    since ceil mode starts no window beyond the input, so a repeat of it cannot change a maximum.
    Why: torch 2.13's inductor computes the int8 max-pool of a PT2E graph in floor mode whatever
    its ``ceil_mode`` says, so GoogLeNet's 112×112 pool gives 55×55 maps instead of 56×56 (and the
    next layer that needs the true size fails to compile, or an answer comes quietly from fewer
    pixels). Only pools without padding and dilation are replaced, the only ones the zoo has.
    """

    def __init__(self, pool: nn.MaxPool2d) -> None:
        super().__init__()
        self.kernel, self.stride = _pair(pool.kernel_size), _pair(pool.stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        extra = [(conv_output_size(side, k, s, ceil_mode=True) - 1) * s + k - side
                 for side, k, s in zip(x.shape[-2:], self.kernel, self.stride, strict=True)]
        x = F.pad(x, (0, max(0, extra[1]), 0, max(0, extra[0])), mode="replicate")
        return F.max_pool2d(x, self.kernel, self.stride)


def floor_mode_pools(model: nn.Module) -> nn.Module:
    """``model``, or a copy of it whose ceil-mode max-pools are ``_EdgePaddedMaxPool2d``."""
    def replaceable(module: nn.Module) -> bool:
        return (isinstance(module, nn.MaxPool2d) and module.ceil_mode
                and _pair(module.padding) == (0, 0) and _pair(module.dilation) == (1, 1)
                and not module.return_indices)

    if not any(map(replaceable, model.modules())):
        return model
    model = copy.deepcopy(model)
    for parent in list(model.modules()):
        for name, child in parent.named_children():
            if replaceable(child):
                setattr(parent, name, _EdgePaddedMaxPool2d(child))
    return model


def quantize_pt2e(model: nn.Module, calibration: list[torch.Tensor]) -> Function:
    """``model`` as torchao's PT2E int8 graph, compiled by inductor with freezing (see above)."""
    with _quiet():
        import torchao.quantization.pt2e.quantizer.x86_inductor_quantizer as x86
        from torch._inductor import config as inductor_config
        from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

        quantizer = x86.X86InductorQuantizer()
        quantizer.set_global(x86.get_default_x86_inductor_quantization_config())
        example = calibration[0][:2]
        # A batch axis free from 1 up, so that one graph serves batch-1 latency and batch-64
        # throughput
        batch = torch.export.Dim("batch", min=1, max=65_536)
        with torch.no_grad():
            graph = torch.export.export(floor_mode_pools(model).eval(), (example,),
                                        dynamic_shapes=({0: batch},)).module()
            prepared = prepare_pt2e(graph, quantizer)
            for x in calibration:
                prepared(x)
            converted = convert_pt2e(prepared)
            # freezing turns weights into constants, which is what lets inductor pre-pack them into
            # oneDNN's int8 layout once and fuse each dequantise into its convolution
            compiled = torch.compile(converted, dynamic=False)
    # inductor's int8 lowering copies each weight's zero point with a call that torch warns about,
    # at this compile and at each batch size's recompile: noise for the user, who cannot act on it
    warnings.filterwarnings("ignore", message="To copy construct from a tensor",
                            category=UserWarning, module=r"torch\._inductor\.mkldnn_lowerings")

    def run(x: torch.Tensor) -> torch.Tensor:
        # in force at every call, not only the first: a new batch size recompiles, and a graph
        # compiled without freezing keeps each quantise/dequantise pair as fp32 arithmetic (measured
        # on resnet18 at batch 64, AMX Xeon: 0.8-1.0x eager fp32 without, 6.1-6.3x with); and
        # under no_grad, whoever calls: with gradients on, freezing does not apply and the graph
        # runs at eager speed (bench inference called it so: 1.3x where predict saw 16x)
        with torch.no_grad(), inductor_config.patch(freezing=True):
            return compiled(x).float()

    run(calibration[0])  # compile now
    return run


class _CalibrationReader:
    """ONNX Runtime's calibration protocol over a list of batches."""

    def __init__(self, calibration: list[torch.Tensor]) -> None:
        self._batches = iter(calibration)

    def get_next(self) -> dict | None:
        batch = next(self._batches, None)
        return None if batch is None else {"images": batch.numpy().astype(np.float32)}


def quantize_onnx_file(model: nn.Module, calibration: list[torch.Tensor], path: Path) -> Path:
    """Write ``model`` to ``path`` as a statically quantised ONNX file in QDQ form."""
    from cnnzoo.visualize.export import export_onnx

    with _quiet():
        from onnxruntime.quantization import QuantFormat, QuantType, quantize_static
        from onnxruntime.quantization.shape_inference import quant_pre_process

        path = Path(path)
        with tempfile.TemporaryDirectory() as scratch:
            fp32 = export_onnx(model, Path(scratch) / "fp32.onnx", calibration[0][:2])
            # constant folding and shape inference first, as ONNX Runtime recommends: the quantiser
            # then sees BatchNorm folded into its convolution and knows every tensor's shape
            prepared = Path(scratch) / "prepared.onnx"
            quant_pre_process(str(fp32), str(prepared))
            quantize_static(str(prepared), str(path), _CalibrationReader(calibration),
                            quant_format=QuantFormat.QDQ, per_channel=True,
                            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
    return path


def onnx_function(path: Path) -> Function:
    """An ONNX file run by ONNX Runtime on the CPU with as many threads as PyTorch uses."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def run(x: torch.Tensor) -> torch.Tensor:
        images = x.detach().cpu().contiguous().numpy().astype(np.float32)
        return torch.from_numpy(session.run(None, {"images": images})[0])

    return run


def quantize_onnxruntime(model: nn.Module, calibration: list[torch.Tensor],
                         path: Path | None = None) -> Function:
    """``model`` quantised by ONNX Runtime (QDQ), kept at ``path`` or in memory only."""
    if path is not None:
        return onnx_function(quantize_onnx_file(model, calibration, path))
    with tempfile.TemporaryDirectory() as scratch:
        # the session holds the model in memory: the file can go once it is loaded
        return onnx_function(quantize_onnx_file(model, calibration, Path(scratch) / "int8.onnx"))


def best_seconds(functions: dict[str, Function], x: torch.Tensor, repeats: int = 3
                 ) -> dict[str, float]:
    """Each function's fastest of ``repeats`` calls on ``x``, the calls interleaved (after one
    untimed call each) so that a drift of a shared machine hits all of them alike."""
    times: dict[str, list[float]] = {name: [] for name in functions}
    with torch.no_grad():
        for function in functions.values():
            function(x)
        for _ in range(repeats):
            for name, function in functions.items():
                start = time.perf_counter()
                function(x)
                times[name].append(time.perf_counter() - start)
    return {name: min(values) for name, values in times.items()}


def quantize(model: nn.Module, calibration: list[torch.Tensor], backend: str = "auto",
             repeats: int = 3) -> tuple[Function, dict]:
    """``model`` in int8 by ``backend``, or by the installed toolchain measured fastest on the first
    calibration batch (``"auto"``). Returns the function and what was chosen, with each candidate's
    seconds per batch and, under ``not_tried``, why any toolchain is not among them (not installed,
    or it could not compile the model)."""
    if not calibration:
        raise ConfigError("int8 calibration needs at least one batch of images")
    names = BACKENDS if backend == "auto" else (backend,)
    reasons = {name: reason for name in names if (reason := missing(name))}
    builders = {"pt2e": quantize_pt2e, "onnxruntime": quantize_onnxruntime}
    functions = {}
    for name in names:
        if name in reasons:
            continue
        try:
            functions[name] = builders[name](model, calibration)
        # torch.export or inductor could not take this model: a limit of the toolchain, which
        # the other one may not have
        except torch._dynamo.exc.TorchDynamoException as error:
            reasons[name] = f"{name} could not compile this model ({in_one_line(error)})"
    if not functions:
        raise ConfigError("int8 inference: " + "; ".join(reasons.values()))
    seconds = best_seconds(functions, calibration[0], repeats)
    chosen = min(seconds, key=seconds.get) if len(functions) > 1 else next(iter(functions))
    return functions[chosen], {"backend": chosen, "seconds_per_batch": seconds,
                               "batch": len(calibration[0]), "not_tried": reasons}
