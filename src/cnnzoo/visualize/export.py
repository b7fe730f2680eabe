"""The model as an ONNX file with a dynamic batch axis, checked on export: onnxruntime against
PyTorch on the same images (the largest |Δlogit| and the share of images where both pick the same
class).

onnx and onnxruntime are the optional extra ``cnnzoo[export]``. The file is written by PyTorch's
TorchScript exporter (``dynamo=False``): the dynamo exporter would need onnxscript as well, and
every cnnzoo model traces (LRN takes its plain-ops path under ``no_grad``). GoogLeNet exports its
evaluation graph (no auxiliary heads).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from cnnzoo.errors import ConfigError

OPSET = 17


def require_onnx():
    """(onnx, onnxruntime), or a ConfigError that says how to install them."""
    try:
        import onnx
        import onnxruntime
    except ImportError:
        raise ConfigError(
            "exporting needs onnx and onnxruntime: pip install 'cnnzoo[export]'"
        ) from None
    return onnx, onnxruntime


@torch.no_grad()
def export_onnx(model: nn.Module, path: Path, example: torch.Tensor,
                metadata: dict[str, str] | None = None) -> Path:
    """Write ``model`` (eval mode) to ``path``; ``example`` (N, C, H, W) fixes every axis but the
    batch; ``metadata`` goes into the file's ``metadata_props`` (what the input must be, the
    class names), which ONNX Runtime reads back as the model's custom metadata."""
    onnx, _ = require_onnx()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model = _traceable(model.eval())
    with warnings.catch_warnings():
        # the TorchScript exporter's deprecation notice and tracer warnings
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (example,), str(path), input_names=["images"],
                          output_names=["logits"],
                          dynamic_axes={"images": {0: "batch"}, "logits": {0: "batch"}},
                          opset_version=OPSET, dynamo=False)
    if metadata:
        graph = onnx.load(str(path))
        for key, value in metadata.items():
            graph.metadata_props.add(key=key, value=value)
        onnx.save(graph, str(path))
    onnx.checker.check_model(str(path))
    return path


def _traceable(model: nn.Module) -> nn.Module:
    """What the ONNX exporter traces: an imported TorchScript module itself; an imported .pt2 only
    where its batch axis is dynamic (engine/imported.py's ProgramModel)."""
    kind = getattr(model, "kind", None)
    if kind == "torchscript":
        return model.program
    if kind == "exported" and model.batch is not None:
        raise ConfigError(f"{model.cfg.name} was exported (.pt2) for batches of {model.batch} "
                          "only, and an ONNX file needs a dynamic batch: export it with "
                          "dynamic_shapes={'x': {0: torch.export.Dim('batch')}} and import it "
                          "again")
    return model


@torch.no_grad()
def compare(path: Path, model: nn.Module, x: torch.Tensor) -> dict:
    """Run the ONNX file with onnxruntime (CPU) and the model with PyTorch on ``x``: largest
    |Δlogit|, top-1 agreement, and the batch size used (different from the export's, to exercise the
    dynamic axis)."""
    _, onnxruntime = require_onnx()
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    theirs = session.run(None, {"images": x.cpu().numpy().astype(np.float32)})[0]
    ours = model.eval()(x).float().cpu().numpy()
    finite = np.isfinite(theirs).all(1) & np.isfinite(ours).all(1)  # a NaN row agrees with nothing
    return {"images": len(x), "max_abs_logit_diff": float(np.abs(theirs - ours).max()),
            "top1_agreement": float(((theirs.argmax(1) == ours.argmax(1)) & finite).mean()),
            "non_finite": int((~finite).sum())}
