"""The explorer's predictions in the precision ``cnnzoo serve --precision`` names, as ``cnnzoo
predict --precision`` makes them: bf16 autocast where the CPU runs it natively, int8 the model the
run's accuracy gate kept (``engine.precision_gate.kept_model``), with the gate's figures in the
answer.

Only the scores (top-k and the softmax table) change: feature maps, Grad-CAM and its checks need the
model's hooks and gradients, which a bf16 or int8 program does not offer, so they stay fp32 and the
answer says so in one field. A run with no kept model (never gated, refused, its training images
absent) is answered in fp32, with the reason beside it, rather than not at all.
"""

from __future__ import annotations

from pathlib import Path

import torch

from cnnzoo.engine.config import answer_precision
from cnnzoo.engine.precision_gate import GATE_FILE, kept_model, require_native_bf16
from cnnzoo.engine.user_image import ranked
from cnnzoo.errors import CnnzooError
from cnnzoo.serve.explain import softmax_table
from cnnzoo.visualize.source import model_input

FP32_VIEWS = ("feature maps, Grad-CAM and its trust checks are computed by the fp32 model: they "
              "need its hooks and gradients, which the {precision} program does not have")


def check_precision(precision: str) -> str:
    """``precision`` if this machine can serve it (refused once, at start, rather than per
    request)."""
    if answer_precision(precision) == "bf16":
        require_native_bf16(torch.device("cpu"))
    return precision


def fp32_views(precision: str) -> dict:
    """The one field an answer with maps or Grad-CAM carries when the scores are not fp32."""
    return {} if precision == "fp32" else {"fp32_views": FP32_VIEWS.format(precision=precision)}


def _gate_stamp(run_dir: Path | None) -> int | None:
    path = None if run_dir is None else run_dir / GATE_FILE
    return path.stat().st_mtime_ns if path is not None and path.is_file() else None


def _reduced(entry, precision: str, root: Path) -> tuple[object, dict]:
    """The run's ``precision`` model (None: answer in fp32) and the fields saying which; kept on
    the entry until the run's gate verdicts or checkpoint change."""
    subject = entry.subject
    stamp = _gate_stamp(subject.run_dir)
    if entry.variant is None or entry.variant[0] != stamp:
        try:
            model, figures = kept_model(subject, precision, data_dir=entry.data_dir,
                                        download=False)  # a request never reaches out
            fields = {"precision": precision, "gate": figures}
        except CnnzooError as error:
            # the server's folders stay its own: paths as the runs folder names them
            model, fields = None, {"precision": "fp32",
                                   "precision_note": str(error).replace(f"{root}/", "")}
        entry.variant = (stamp, model, fields)
    return entry.variant[1], entry.variant[2]


def rescored(entry, raw: torch.Tensor, answer: dict, *, precision: str, top_k: int,
             root: Path) -> dict:
    """``explain``'s ``answer`` for the uint8 image ``raw`` with its scores in ``precision``; the
    caller holds ``entry.lock``."""
    if precision == "fp32":
        return {**answer, "precision": "fp32"}
    model, fields = _reduced(entry, precision, root)
    if model is None:
        return {**answer, **fields}
    subject = entry.subject
    logits = model(model_input(subject, raw[None]))[0]
    return {**answer, "top_k": ranked(subject, logits.float().softmax(-1), top_k),
            "softmax": softmax_table(subject.model, logits), **fields, **fp32_views(precision)}
