"""Using a trained model: class probabilities for image files, each prepared as the model's training
images were by ``engine.user_image`` (``load_run`` gives the model and what it takes)."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from cnnzoo.data.dataset import pad_images
from cnnzoo.engine.config import answer_precision
from cnnzoo.engine.evaluate import log_probabilities
from cnnzoo.engine.run import Run
from cnnzoo.engine.user_image import prepare_image, ranked, read_image
from cnnzoo.errors import NonFiniteOutputError


@torch.no_grad()
def predict_files(run: Run, paths: list[Path], *, top_k: int = 5, views: str = "center",
                  prepare: bool = True, model: nn.Module | None = None) -> list[dict]:
    """Class probabilities for each image file: [{"file", "predictions": [{"class", "index",
    "probability"}], "prepared": [steps], "warning": ...}].

    Images are decoded with Pillow, converted to the model's channels (grey ↔ RGB), resized to the
    size it was trained on and normalised with the training statistics. For a model trained on MNIST
    or Fashion-MNIST (and unless ``prepare`` is False) a photo is first prepared as those datasets
    were: inverted if its background is light, trimmed, resized by its longest side and padded to a
    square; an image whose background is light carries a warning
    (``engine.user_image.prepare_image``). A missing path, a directory or anything but a regular
    file (a FIFO would block) is refused with a one-line error naming it.
    """
    if not paths:
        return []
    decoded = [prepare_image(run, read_image(run, p), prepare) for p in paths]
    # pad as training did (e.g. 28 → 32 for LeNet-1998)
    images = pad_images(torch.stack([image for image, _ in decoded]), run.input.size)
    device = next(run.model.parameters()).device
    model = run.model if model is None else model
    log_probs = log_probabilities(model, images, run.input.eval_pipeline(views), device=device)
    probabilities = log_probs.exp().cpu()
    broken = [str(path) for path,
              row in zip(paths, probabilities, strict=True) if not torch.isfinite(row).all()]
    if broken:
        raise NonFiniteOutputError(f"{run.name} gave NaN or infinite outputs for "
                                   f"{', '.join(broken[:3])}; its weights are finite, so the input "
                                   "drove it out of range: check the image")
    return [{"file": str(path), "predictions": ranked(run, row, top_k), **note}
            for path, row, (_, note) in zip(paths, probabilities, decoded, strict=True)]


def predict_files_in(run: Run, paths: list[Path], precision: str = "fp32", *,
                     data_dir: str | None = None, **options) -> tuple[list[dict], dict]:
    """``predict_files`` (``options`` are its own) in ``precision``: fp32 with the run's model;
    bf16 or int8 with the model the accuracy gate kept (``precision_gate.kept_model``; int8 is
    rebuilt from the training images in ``data_dir`` unless export wrote its file). Returns the
    answers and what the precision traded, ``{"precision", "gate"}`` (the gate's figures; empty in
    fp32, whose answers stay as they always were), for ``cnnzoo predict`` and ``cnnzoo.predict``
    alike."""
    if precision == "fp32":
        return predict_files(run, paths, **options), {}
    answer_precision(precision)
    from cnnzoo.engine.precision_gate import kept_model  # the quantisers: only when asked

    model, figures = kept_model(run, precision, data_dir=data_dir)
    return predict_files(run, paths, model=model, **options), {"precision": precision,
                                                               "gate": figures}
