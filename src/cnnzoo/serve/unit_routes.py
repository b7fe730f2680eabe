"""The Units tab's routes (the work is in ``serve.units``); they run as ``routes`` runs the others:
in a worker thread, inside an inference slot (503 when all are taken), errors as ``{"detail"}``
(404 for an unknown run, 422 for a layer the views do not accept, naming the ones they do).

| route | what |
|---|---|
| ``GET /api/runs/{run}/units`` | the layers ``show features`` and ``show patches`` accept |
| ``POST /api/runs/{run}/features`` | ``?layer=&steps=&seed=&units=&test_images=``: ``cnnzoo |
|  | show features --json`` with each unit's synthesised image (seconds of work) |
| ``POST /api/runs/{run}/patches`` | ``?layer=&units=&test_images=``: ``cnnzoo show patches |
|  | --json`` with each patch as an image |

Every setting defaults to the command's; ``steps`` is bounded lower than the command's 10,000, since
a request holds an inference slot for all of its work.
"""

from __future__ import annotations

from fastapi import APIRouter, Query, Request

from cnnzoo.serve.routes import _guarded

router = APIRouter()
CLASSES = "classes"  # visualize.features.CLASSES, named here without importing torch on import
STEPS, SEED, TEST_IMAGES, PATCH_UNITS = 128, 0, 10_000, 32  # the commands' defaults (tested equal)
MAX_STEPS = 1_000


def _layers(explorer, run: str) -> dict:
    from cnnzoo.serve.units import unit_layers

    entry = explorer.cache.get(run)
    with entry.lock:
        return {"run": run, **unit_layers(entry.subject)}


def _test_images(explorer, entry, count: int, needed: bool):
    """The first ``count`` test images of the run's data set (uint8); None for a run without one
    unless ``needed``, when ``data_for`` says why in one line."""
    if entry.subject.dataset is None and not needed:
        return None
    return explorer.cache.data_for(entry).test.images[:count].cpu()


def _features(explorer, run: str, layer: str, settings: dict) -> dict:
    from cnnzoo.serve.units import features

    entry = explorer.cache.get(run)
    images = _test_images(explorer, entry, settings.pop("test_images"), needed=False)
    with entry.lock:
        return {"run": run, **features(entry.subject, images, layer, **settings)}


def _patches(explorer, run: str, layer: str, units: int, test_images: int) -> dict:
    from cnnzoo.serve.units import patches

    entry = explorer.cache.get(run)
    images = _test_images(explorer, entry, test_images, needed=True)
    with entry.lock:
        return {"run": run, **patches(entry.subject, images, layer, units=units)}


@router.get("/api/runs/{run}/units")
async def run_units(request: Request, run: str):
    return await _guarded(request, _layers, run)


@router.post("/api/runs/{run}/features")
async def run_features(request: Request, run: str,
                       layer: str = Query(CLASSES, max_length=200),
                       steps: int = Query(STEPS, ge=1, le=MAX_STEPS),
                       seed: int = Query(SEED, ge=0, le=2**63 - 1),
                       units: int | None = Query(None, ge=1, le=10**6),
                       test_images: int = Query(TEST_IMAGES, ge=1, le=10**7)):
    """What each unit of ``layer`` wants to see: ``cnnzoo show features``."""
    settings = {"steps": steps, "seed": seed, "units": units, "test_images": test_images}
    return await _guarded(request, _features, run, layer, settings)


@router.post("/api/runs/{run}/patches")
async def run_patches(request: Request, run: str, layer: str = Query(..., max_length=200),
                      units: int = Query(PATCH_UNITS, ge=1, le=10**6),
                      test_images: int = Query(TEST_IMAGES, ge=1, le=10**7)):
    """What each unit of ``layer`` answers to in the test set: ``cnnzoo show patches``."""
    return await _guarded(request, _patches, run, layer, units, test_images)
