"""Occlusion beside Grad-CAM for the page: ``cnnzoo show occlusion``'s computation for one prepared
image and class (``visualize.occlusion``), with its default square and step for the input's size
(``trust.occlusion_settings``), so the map and the rank correlation are the command's for the same
image, class and layer.

The map travels as float32 (little-endian, base64): the page colours it on a symmetric scale, and a
client can read the very numbers the command computed.
"""

from __future__ import annotations

import time

import torch

from cnnzoo.errors import ConfigError
from cnnzoo.visualize.cam import grad_cam
from cnnzoo.visualize.occlusion import probability_drop, rank_correlation
from cnnzoo.visualize.source import model_input
from cnnzoo.visualize.trust import occlusion_settings


def occlusion(subject, raw: torch.Tensor, target: int | None, layer: str | None) -> dict:
    """Occlusion and Grad-CAM of class ``target`` (None: the predicted one; Grad-CAM at ``layer``,
    None: its default) for one uint8 image (C, s, s), with their Spearman ρ. The caller holds the
    entry's lock: Grad-CAM hooks the shared model."""
    from cnnzoo.serve.explain import float32_base64, opaque_note, uint8_base64

    started = time.perf_counter()
    model = subject.model
    note = opaque_note(model)
    if note:
        raise ConfigError(note)
    if target is not None and not 0 <= target < len(subject.classes):
        raise ConfigError(f"class index {target} is outside 0…{len(subject.classes) - 1}")
    x = model_input(subject, raw[None])
    settings = occlusion_settings(x.shape[-1])  # show occlusion's defaults: side/7, patch/2
    cam = grad_cam(model, x, target, layer)
    target = cam["class"]
    drop = probability_drop(model, x, target, **settings)
    rho = rank_correlation(drop["map"], cam["cam"])
    heat = cam["cam"].numpy()
    return {"class_index": target, "class": subject.classes[target],
            "probability": round(drop["probability"], 6), **settings,
            "squares": drop["squares"], "largest_drop": round(float(drop["map"].max()), 6),
            "largest_rise": round(float(-drop["map"].min()), 6),
            "map": float32_base64(drop["map"].numpy()),
            "cam_layer": cam["layer"],
            "cam": {"layer": cam["layer"], "module": cam["module"], "height": heat.shape[0],
                    "width": heat.shape[1], "all_zero": not heat.any(), **uint8_base64(heat[None])},
            "rank_correlation": round(rho, 4),
            "seconds": round(time.perf_counter() - started, 2)}
