"""Can the Grad-CAM on the page be trusted? ``cnnzoo show trust``'s checks (``visualize.trust``)
for one image and class: the randomisation cascade, deletion and insertion against random orders
and agreement with occlusion, then the verdict with the figures that decided it.

Grad-CAM's layer is the one the page names, else the candidate the checks trust most on this image,
as ``cnnzoo show trust`` chooses it; every candidate is checked in one pass (a method's figures do
not depend on the others checked beside it), so the verdict is the command's for the same image.
"""

from __future__ import annotations

import time

import torch

from cnnzoo.errors import ConfigError
from cnnzoo.visualize import trust
from cnnzoo.visualize.source import model_input

SEED = 0  # `cnnzoo show trust`'s default --seed: the same random orders and randomised weights


def grad_cam_trust(subject, raw: torch.Tensor, target: int | None, layer: str | None) -> dict:
    """The verdict on Grad-CAM for one uint8 image (C, s, s) and class ``target`` (None: the
    predicted one) at ``layer`` (None: chosen by the checks). The caller holds the entry's lock:
    Grad-CAM hooks the shared model."""
    started = time.perf_counter()
    model = subject.model
    reason = getattr(model, "hooks_unavailable", "")
    if reason:
        raise ConfigError(f"{reason}, so its Grad-CAM cannot be drawn or checked")
    x = model_input(subject, raw[None])
    with torch.no_grad():
        probabilities = model(x)[0].float().softmax(-1)
    if target is None:
        target = int(probabilities.argmax())
    if not 0 <= target < len(subject.classes):
        raise ConfigError(f"class index {target} is outside 0…{len(subject.classes) - 1}")
    settings = trust.occlusion_settings(x.shape[-1])
    layers = [layer] if layer else trust.cam_candidates(model, x)
    methods = {name: trust.explainers(model, ["grad-cam"], cam_layer=name, **settings)["grad-cam"]
               for name in layers}
    reference = trust.explainers(model, ["occlusion"], cam_layer=None, **settings)["occlusion"]
    result = trust.check_image(model, x, target, methods, reference, seed=SEED)
    reports = {name: [report] for name, report in result["methods"].items()}
    chosen = layer or trust.choose_cam_layer(reports)
    row = trust.report_row("grad-cam", f"Grad-CAM at {chosen}", result["methods"][chosen],
                           result["steps"])
    return {"class_index": target, "class": subject.classes[target],
            "probability": round(float(probabilities[target]), 6),
            "cam_layer": {"layer": chosen, "chosen_by": "the page" if layer else "checks",
                          "candidates": [] if layer else trust.candidate_rows(reports)},
            "verdict": row, "random": trust.random_row(result["random"]), **settings,
            "thresholds": trust.thresholds(),
            "seconds": round(time.perf_counter() - started, 2)}
