"""Two runs compared for the explorer's Compare tab (``GET /api/compare?a=RUN&b=RUN``): the report
of ``cnnzoo compare --json``, made by the same ``visualize.compare.build_report``, with the pictures
the page draws beside it: each run's first-layer kernels, the feature maps one test image gives in
each, and the test images the two runs disagree on.

The work takes seconds (both runs predict the whole test set), so answers are kept, a few of them,
keyed by both run names, the image and each run's checkpoint stamp (path, size, mtime): a run that
writes a new checkpoint is compared afresh.
"""

from __future__ import annotations

import base64
import io
import threading
from collections import OrderedDict
from contextlib import ExitStack
from pathlib import Path

from cnnzoo.errors import CnnzooError, ConfigError

KEPT = 4  # comparisons kept (one answer is some 100 kB of JSON)
MAX_PICTURES = 240  # disagreeing test images sent as pictures; the report lists every one
MAX_MAPS = 16  # feature maps drawn per stage, as in compare.png


class ComparisonCache:
    """Finished comparisons, the least recently used dropped first."""

    def __init__(self, capacity: int = KEPT) -> None:
        self.capacity = capacity
        self._answers: OrderedDict[tuple, dict] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple) -> dict | None:
        with self._lock:
            if key in self._answers:
                self._answers.move_to_end(key)
            return self._answers.get(key)

    def put(self, key: tuple, answer: dict) -> None:
        with self._lock:
            self._answers[key] = answer
            while len(self._answers) > self.capacity:
                self._answers.popitem(last=False)


def _png(array) -> str:
    """uint8 (H, W) or (H, W, 3), or floats in [0, 1], as base64 PNG."""
    import numpy as np
    from PIL import Image

    if array.dtype != np.uint8:
        array = np.round(np.clip(array, 0, 1) * 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def _kernels(run) -> dict:
    """The first convolution's kernels as ``show filters`` tiles them (first group)."""
    from cnnzoo.visualize.drawing import mosaic
    from cnnzoo.visualize.filters import kernel_tiles, kernels

    try:
        data = kernels(run.model)
    except CnnzooError as error:  # a model without a convolution (an MLP)
        return {"error": str(error)}
    tiles, columns, colouring = kernel_tiles(data["weights"][0])
    sheet = mosaic(tiles, columns=columns, gap=max(1, tiles.shape[1] // 5))
    return {"layer": data["layer"], "shape": data["shape"], "colouring": colouring,
            "png": _png(sheet)}


def _maps(run, image) -> list[dict]:
    """The maps ``image`` gives at the stages snapshots keep, each stage's first ``MAX_MAPS`` on
    one sheet, every map on its own scale (viridis)."""
    import math

    from cnnzoo.visualize.compare import stage_maps
    from cnnzoo.visualize.drawing import MAGNITUDE_CMAP, colourise, mosaic

    stages = []
    for stage, value in stage_maps(run, image).items():
        shown = value[:MAX_MAPS].float().numpy()
        sheet = mosaic(colourise(shown, MAGNITUDE_CMAP), columns=math.ceil(math.sqrt(len(shown))))
        stages.append({"stage": stage, "shape": list(value.shape), "shown": len(shown),
                       "png": _png(sheet)})
    return stages


def _pictures(comparison, image: int) -> dict:
    from cnnzoo.visualize.compare import drawable
    from cnnzoo.visualize.source import display_image, model_input

    first, sides = comparison.sides[0].run, comparison.sides
    shown = model_input(first, comparison.images[image][None])[0]
    return {
        "kernels": [_kernels(side.run) for side in sides],
        "maps": {"image": image, "input": _png(display_image(shown, first).numpy()),
                 "class": first.classes[int(comparison.labels[image])],
                 "predicted": [first.classes[int(side.predicted[image])] for side in sides],
                 "runs": [_maps(side.run, comparison.images[image]) for side in comparison.sides]},
        "disagreements": [
            {"index": row["index"], "png": _png(drawable(comparison.images[row["index"]]))}
            for row in comparison.rows[:MAX_PICTURES]
        ],
    }


def _relative(report: dict, root: Path) -> dict:
    """The checkpoints named from the runs folder: a client learns nothing of the server's disk."""
    for run in report["runs"]:
        path = Path(run["checkpoint"])
        run["checkpoint"] = str(path.relative_to(root)) if path.is_relative_to(root) else path.name
    return report


def compare(explorer, a: str, b: str, image: int) -> dict:
    """``cnnzoo compare A B --json``'s report on runs ``a`` and ``b`` (``image``: the test image
    whose maps are drawn) and ``pictures``; a ``ConfigError`` naming why when they cannot be
    compared."""
    from cnnzoo.serve.runs import metrics
    from cnnzoo.visualize.compare import build_report, check_comparable, compare_runs

    entries = [explorer.cache.get(a), explorer.cache.get(b)]
    key = (a, b, image, entries[0].stamp, entries[1].stamp)
    answer = explorer.comparisons.get(key)
    if answer is not None:
        return answer
    runs = [entry.subject for entry in entries]
    check_comparable(*runs)
    tests = tuple(explorer.cache.data_for(entry).test for entry in entries)
    if image >= len(tests[0].images):
        raise ConfigError(f"image {image}: the test set has {len(tests[0].images):,} images")
    histories = (metrics(explorer.root, a), metrics(explorer.root, b))
    with ExitStack() as held:  # both models, in name order: (a, b) and (b, a) at once never wait
        for _, entry in sorted(zip((a, b), entries, strict=True), key=lambda pair: pair[0]):
            held.enter_context(entry.lock)
        comparison = compare_runs(*runs, tests, histories)
        pictures = _pictures(comparison, image)
    answer = {**_relative(build_report(comparison, image), explorer.root), "pictures": pictures}
    explorer.comparisons.put(key, answer)
    return answer
