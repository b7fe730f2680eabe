"""The explorer's Units tab: ``cnnzoo show features`` (what each unit of a layer wants to see,
optimised from noise) and ``cnnzoo show patches`` (the test images' patches that drive each unit
hardest) for one run and layer: the numbers of their ``--json`` reports, with the images themselves
as base64 PNG instead of files.

The work is ``visualize.features`` and ``visualize.patches`` with the commands' defaults (128 steps,
seed 0, the first 10,000 test images; patches for the first 32 units), so the page shows what the
commands compute for the same run, layer and settings. Both take seconds; the caller holds the run's
lock (hooks are set on the shared model) and one inference slot throughout.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from cnnzoo.serve.explain import png_base64
from cnnzoo.visualize import patches as pt
from cnnzoo.visualize.features import (
    CLASSES,
    Settings,
    as_drawable,
    dataset_statistics,
    resolve_target,
    synthesise,
    unit_labels,
)
from cnnzoo.visualize.layers import default_stages, resolve_layers
from cnnzoo.visualize.source import model_input, model_input_pixels

BATCH = 500  # test images per forward pass, as the commands take them


def unit_layers(subject) -> dict:
    """The layers the two views accept, by the commands' ``--layer`` names: ``features`` (the
    output layer first, then every stage) and ``patches`` (the stages with a spatial map)."""
    reason = getattr(subject.model, "hooks_unavailable", "")
    if reason:  # a compiled program: only its output can be asked for
        return {"features": [CLASSES], "patches": [],
                "note": f"{reason}, so only its classes can be synthesised and no patches found"}
    return {"features": [CLASSES, *default_stages(subject.model)],
            "patches": pt.spatial_stages(subject.model), "note": None}


def _png(image: torch.Tensor) -> str:
    """A uint8 image (C, s, s) as base64 PNG, its pixels unchanged."""
    array = image.numpy().astype(np.float64) / 255
    return png_base64(array[0] if array.shape[0] == 1 else array.transpose(1, 2, 0))


def features(subject, test_images: torch.Tensor | None, layer: str, *, steps: int, seed: int,
             units: int | None) -> dict:
    """``cnnzoo show features --json``'s report for ``layer`` (its first ``units`` units, default
    all), each unit with its synthesised image as ``png``; the test statistics come from
    ``test_images`` (uint8, None for a run without a data set)."""
    started = time.perf_counter()
    model = subject.model
    _, path, count = resolve_target(model, layer)
    chosen = list(range(min(units, count))) if units else None
    result = synthesise(model, layer, mean=subject.input.mean, std=subject.input.std, units=chosen,
                        settings=Settings(steps=steps, seed=seed))
    labels = unit_labels(subject.classes, result)
    stats = None
    if test_images is not None:
        batches = (model_input(subject, chunk) for chunk in test_images.split(BATCH))
        stats = dataset_statistics(model, path, batches, result["units"])
    rows = []
    for index, unit in enumerate(result["units"]):
        row = {"unit": unit, "label": labels[index],
               "value": round(float(result["values"][index]), 6),
               "png": _png(result["images"][index])}
        if stats is not None:
            row |= {"test_mean": round(float(stats["mean"][index]), 6),
                    "test_max": round(float(stats["max"][index]), 6)}
        rows.append(row)
    return {"model": subject.name, "layer": result["layer"], "module": result["module"],
            "measure": "class logit" if result["layer"] == CLASSES else "mean activation",
            "steps": steps, "seed": seed, "test_images": None if stats is None else stats["images"],
            "units": rows,
            "above_test_max": None if stats is None else sum(r["value"] > r["test_max"]
                                                             for r in rows),
            "seconds": round(time.perf_counter() - started, 2)}


def patches(subject, test_images: torch.Tensor, layer: str, *, units: int) -> dict:
    """``cnnzoo show patches --json``'s report for ``layer``: per unit the ``pt.TOP`` test images
    (index, position ``i``, ``j``, activation ``value``) that drive it hardest, each with its patch,
    the unit's receptive field cut from the image as the model sees it, as ``png``."""
    started = time.perf_counter()
    model = subject.model
    path = resolve_layers(model, [layer])[layer]
    batches = (model_input(subject, chunk) for chunk in test_images.split(BATCH))
    result = pt.top_patches(model, layer, path, batches, units=units)
    field = result["field"]
    used = sorted({p["image"] for row in result["rows"] for p in row})  # only these are drawn
    shown = dict(zip(used, as_drawable(model_input_pixels(subject, test_images[used])),
                     strict=True))
    rows = [[{**p, "png": png_base64(pt.crop(shown[p["image"]], field, p["i"], p["j"]))}
             for p in row] for row in result["rows"]]
    size, jump, start = field
    return {"model": subject.name, "layer": layer, "module": path, "receptive_field": size,
            "jump": jump, "rf_start": start, "test_images": len(test_images), "units": rows,
            "seconds": round(time.perf_counter() - started, 2)}
