"""The JSON API and the page. Every run name goes through ``runs.run_path`` (404 for anything not
served), every upload through ``explain.decode_upload`` (400), and all model work through the
inference gate (503 when every slot is busy). Errors come back as ``{"detail": message}``.

| route | what |
|---|---|
| ``GET /`` | the page |
| ``GET /api/runs`` | every run: model, data set, accuracy, date, epochs, status |
| ``GET /api/runs/{run}`` | one run: settings, metrics per epoch, per-class accuracy, figures |
| ``GET /api/runs/{run}/model`` | classes, input, stages, layer table (422: damaged checkpoint) |
| ``GET /api/runs/{run}/figures/{name}`` | ``curves.png`` or ``confusion.png`` |
| ``GET /api/runs/{run}/test-image`` | a test image (``?index=N``, else random): base64 PNG, class |
| ``POST /api/runs/{run}/predict`` | ``image``: top-k, input, each stage's maps, Grad-CAM |
| ``POST /api/runs/{run}/neighbours`` | ``image``: nearest training images in penultimate features |
|  | (202 with the index's progress while it is built in the background) |
| ``POST /api/runs/{run}/position`` | ``?stage=&channel=&y=&x=``: one position's arithmetic |
| ``POST /api/runs/{run}/cam`` | ``?class_index=&layer=``: Grad-CAM for any class at any stage |
| ``POST /api/runs/{run}/trust`` | ``?class_index=&layer=``: can its Grad-CAM be trusted? the |
|  | verdict of ``cnnzoo show trust`` with its figures (seconds of work) |
| ``POST /api/runs/{run}/occlusion`` | ``?class_index=&layer=``: ``cnnzoo show occlusion``'s map |
|  | and its rank correlation with Grad-CAM (a second or more of work) |
| ``GET /api/runs/{run}/snapshots`` | the epochs ``train --snapshots`` kept (none: how to get |
|  | them) |
| ``GET /api/runs/{run}/snapshots/{epoch}`` | one epoch's first-layer kernels and probe maps |
| ``GET /api/runs/{run}/index`` | the neighbour index's progress: state, done, total, seconds |
| ``GET /api/compare`` | ``?a=RUN&b=RUN``: ``cnnzoo compare A B --json``'s report, with |
|  | kernels, one image's maps and the disagreeing images (422: not comparable) |
| ``GET /api/runs/{run}/units``, ``POST …/features``, ``POST …/patches`` | the Units tab: |
|  | ``show features`` and ``show patches`` (in ``unit_routes``) |

The POST routes prepare the image as ``cnnzoo predict`` does and say how (``prepared``,
``warning``); ``?prepare=false`` uses the pixels as they are (``--no-prepare``).
"""

from __future__ import annotations

import re
from pathlib import Path

from fastapi import APIRouter, Query, Request
from fastapi import Path as PathParam
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, JSONResponse
from starlette.datastructures import UploadFile

from cnnzoo.errors import CnnzooError
from cnnzoo.serve import runs
from cnnzoo.serve.limits import Busy

STATIC = Path(__file__).parent / "static"
router = APIRouter()


def _error(status: int, message: str, **headers) -> JSONResponse:
    return JSONResponse({"detail": message}, status_code=status, headers=headers or None)


def _status_of(error: Exception) -> int:
    from cnnzoo.serve.explain import ImageRejected

    if isinstance(error, runs.RunNotFound):
        return 404
    if isinstance(error, ImageRejected):
        return 400
    # a damaged checkpoint, missing data set, an index out of range: the run's problem, said in
    # words
    return 422


async def _guarded(request: Request, work, *args):
    """``work(explorer, *args)`` in a worker thread inside an inference slot; errors as JSON
    responses."""
    explorer = request.app.state.explorer
    try:
        with explorer.gate:
            return await run_in_threadpool(work, explorer, *args)
    except Busy:
        return _error(503, f"busy: all {explorer.limits.max_inference} inference slots are taken; "
                           "retry in a moment", **{"Retry-After": "1"})
    except CnnzooError as error:
        return _error(_status_of(error), _relative(error, explorer.root))


_ABSOLUTE = re.compile(r"(?<![\w.~])/(?:[^\s'\",;:()/]+/)*([^\s'\",;:()/]*)")


def _relative(error: Exception | str | None, root) -> str | None:
    """The message with paths relative to the runs folder, and any other path cut to its last part:
    a client learns nothing of the server's disk."""
    if error is None:
        return None
    text = str(error).replace(f"{root}/", "").replace(str(root), "RUNS_DIR")
    return _ABSOLUTE.sub(lambda match: f"…/{match[1]}", text)


def _plain(request: Request, work, *args):
    root = request.app.state.explorer.root
    try:
        return work(root, *args)
    except CnnzooError as error:
        return _error(_status_of(error), _relative(error, root))


@router.get("/", include_in_schema=False)
def page() -> FileResponse:
    return FileResponse(STATIC / "index.html", media_type="text/html")


@router.get("/api/runs")
def list_runs(request: Request):
    explorer = request.app.state.explorer
    limits = explorer.limits
    return {"runs_dir": explorer.root.name,
            "runs": runs.list_runs(explorer.root, explorer.run_code),
            "limits": {"max_upload_bytes": limits.max_upload_bytes,
                       "max_image_pixels": limits.max_image_pixels,
                       "max_inference": limits.max_inference, "max_models": limits.max_models}}


@router.get("/api/runs/{run}")
def run_details(request: Request, run: str):
    return _plain(request, runs.details, run, request.app.state.explorer.run_code)


@router.get("/api/runs/{run}/figures/{name}")
def run_figure(request: Request, run: str, name: str):
    if name not in runs.FIGURES:
        return _error(404, f"no figure {name[:80]!r}; the figures are {', '.join(runs.FIGURES)}")
    path = _plain(request, runs.run_file, run, name)
    if path is None:
        return _error(404, f"{run} has no {name} yet (it is written when training ends)")
    return path if isinstance(path, JSONResponse) else FileResponse(path, media_type="image/png")


def _model(explorer, run: str) -> dict:
    from cnnzoo.serve.explain import model_card

    entry = explorer.cache.get(run)
    with entry.lock:
        return model_card(entry)


@router.get("/api/runs/{run}/model")
async def run_model(request: Request, run: str):
    return await _guarded(request, _model, run)


def _test_image(explorer, run: str, index: int | None) -> dict:
    from cnnzoo.serve.explain import test_image

    entry = explorer.cache.get(run)
    data = explorer.cache.data_for(entry)
    with entry.lock:
        return test_image(entry, data, index)


@router.get("/api/runs/{run}/test-image")
async def run_test_image(request: Request, run: str,
                         index: int | None = Query(None, ge=0, le=10**9)):
    return await _guarded(request, _test_image, run, index)


async def _upload(request: Request) -> bytes | JSONResponse:
    """The bytes of the multipart field ``image`` (the body limit already bounds them)."""
    try:
        form = await request.form(max_files=1, max_fields=4)
    except Exception as error:  # starlette's MultiPartException and malformed bodies
        return _error(400, "the request is not a multipart form with one file field 'image' "
                           f"({error})")
    image = form.get("image")
    if not isinstance(image, UploadFile):
        return _error(400, "send the image as a file in the multipart field 'image'")
    return await image.read()


def _predict(explorer, run: str, data: bytes, top_k: int, prepare: bool) -> dict:
    from cnnzoo.serve.explain import decode_upload, explain, prepare_upload
    from cnnzoo.serve.precision import rescored

    image = decode_upload(data, explorer.limits.max_image_pixels)
    entry = explorer.cache.get(run)
    with entry.lock:
        raw, note = prepare_upload(entry, image, prepare)
        answer = rescored(entry, raw, explain(entry.subject, raw, top_k=top_k), top_k=top_k,
                          precision=explorer.precision, root=explorer.root)
        return {"run": run, **answer, **note}


@router.post("/api/runs/{run}/predict")
async def run_predict(request: Request, run: str, top_k: int = Query(5, ge=1, le=100),
                      prepare: bool = True):
    missing = _plain(request, runs.run_path, run)  # an unknown run is 404 before the body is read
    data = missing if isinstance(missing, JSONResponse) else await _upload(request)
    if isinstance(data, JSONResponse):
        return data
    return await _guarded(request, _predict, run, data, top_k, prepare)


def _neighbours(explorer, run: str, data: bytes, k: int, prepare: bool) -> dict | JSONResponse:
    """The neighbours once the run's index is built; until then 202 with its progress (the build
    runs in the background, started here, and holds no inference slot)."""
    from cnnzoo.serve.explain import decode_upload, neighbours, prepare_upload

    image = decode_upload(data, explorer.limits.max_image_pixels)
    entry = explorer.cache.get(run)
    index = explorer.cache.index_for(entry)
    if not index.ready:
        return JSONResponse({"run": run, "index": _progress(index, explorer.root)}, status_code=202)
    with entry.lock:
        raw, note = prepare_upload(entry, image, prepare)
        found = neighbours(entry, index, raw, k)
    return {"run": run, **found, **note, "index": _progress(index, explorer.root)}


def _progress(index, root) -> dict:
    if index is None:
        return {"state": "absent", "done": 0, "total": 0, "seconds": 0.0, "error": None}
    return {**index.progress(), "error": _relative(index.error, root)}


@router.post("/api/runs/{run}/neighbours")
async def run_neighbours(request: Request, run: str, k: int = Query(8, ge=1, le=32),
                         prepare: bool = True):
    missing = _plain(request, runs.run_path, run)
    data = missing if isinstance(missing, JSONResponse) else await _upload(request)
    if isinstance(data, JSONResponse):
        return data
    return await _guarded(request, _neighbours, run, data, k, prepare)


@router.get("/api/runs/{run}/index")
def run_index(request: Request, run: str):
    """How far the run's nearest-neighbour index is: never loads or builds anything, needs no
    slot."""
    explorer = request.app.state.explorer
    missing = _plain(request, runs.run_path, run)
    if isinstance(missing, JSONResponse):
        return missing
    entry = explorer.cache.peek(run)
    return {"run": run, "index": _progress(entry and entry.index, explorer.root)}


def _position(explorer, run: str, data: bytes, where: dict) -> dict:
    from cnnzoo.serve.explain import decode_upload, prepare_upload
    from cnnzoo.serve.position import explain_position

    image = decode_upload(data, explorer.limits.max_image_pixels)
    entry = explorer.cache.get(run)
    with entry.lock:
        raw, note = prepare_upload(entry, image, where.pop("prepare"))
        return {"run": run, **explain_position(entry.subject, raw, **where), **note}


@router.post("/api/runs/{run}/position")
async def run_position(request: Request, run: str, stage: str = Query(..., max_length=200),
                       channel: int = Query(0, ge=0, le=10**6), y: int = Query(0, ge=0, le=10**5),
                       x: int = Query(0, ge=0, le=10**5),
                       in_channel: int | None = Query(None, ge=0, le=10**6),
                       prepare: bool = True):
    """One position of one stage's map explained: the layer's arithmetic with the model's
    numbers."""
    missing = _plain(request, runs.run_path, run)
    data = missing if isinstance(missing, JSONResponse) else await _upload(request)
    if isinstance(data, JSONResponse):
        return data
    where = {"stage": stage, "channel": channel, "y": y, "x": x, "in_channel": in_channel,
             "prepare": prepare}
    return await _guarded(request, _position, run, data, where)


def _class_cam(explorer, run: str, data: bytes, target: int, layer: str | None,
               prepare: bool) -> dict:
    from cnnzoo.serve.explain import class_cam, decode_upload, prepare_upload
    from cnnzoo.serve.precision import fp32_views

    image = decode_upload(data, explorer.limits.max_image_pixels)
    entry = explorer.cache.get(run)
    with entry.lock:
        raw, note = prepare_upload(entry, image, prepare)
        return {"run": run, **class_cam(entry.subject, raw, target, layer), **note,
                **fp32_views(explorer.precision)}


@router.post("/api/runs/{run}/cam")
async def run_cam(request: Request, run: str, class_index: int = Query(..., ge=0, le=10**6),
                  layer: str | None = Query(None, max_length=200), prepare: bool = True):
    """Grad-CAM for any class at any convolutional stage."""
    missing = _plain(request, runs.run_path, run)
    data = missing if isinstance(missing, JSONResponse) else await _upload(request)
    if isinstance(data, JSONResponse):
        return data
    return await _guarded(request, _class_cam, run, data, class_index, layer, prepare)


def _on_prepared_image(explorer, run: str, data: bytes, prepare: bool, view) -> dict:
    """``view(subject, raw)`` on the uploaded image prepared as predict prepares it, holding the
    run's lock (the views hook the shared model), with the preparation's note."""
    from cnnzoo.serve.explain import decode_upload, prepare_upload

    image = decode_upload(data, explorer.limits.max_image_pixels)
    entry = explorer.cache.get(run)
    with entry.lock:
        raw, note = prepare_upload(entry, image, prepare)
        return {"run": run, **view(entry.subject, raw), **note}


def _trust(explorer, run: str, data: bytes, target: int | None, layer: str | None,
           prepare: bool) -> dict:
    from cnnzoo.serve.precision import fp32_views
    from cnnzoo.serve.trust import grad_cam_trust

    answer = _on_prepared_image(explorer, run, data, prepare,
                                lambda subject, raw: grad_cam_trust(subject, raw, target, layer))
    return {**answer, **fp32_views(explorer.precision)}


@router.post("/api/runs/{run}/trust")
async def run_trust(request: Request, run: str,
                    class_index: int | None = Query(None, ge=0, le=10**6),
                    layer: str | None = Query(None, max_length=200), prepare: bool = True):
    """The verdict on Grad-CAM for the image: ``cnnzoo show trust``'s checks, its layer chosen by
    them unless ``layer`` names one; the class is the predicted one unless ``class_index``."""
    missing = _plain(request, runs.run_path, run)
    data = missing if isinstance(missing, JSONResponse) else await _upload(request)
    if isinstance(data, JSONResponse):
        return data
    return await _guarded(request, _trust, run, data, class_index, layer, prepare)


def _compare(explorer, a: str, b: str, image: int) -> dict:
    from cnnzoo.serve.comparison import compare

    return compare(explorer, a, b, image)


@router.get("/api/compare")
async def compare_runs(request: Request, a: str = Query(..., max_length=200),
                       b: str = Query(..., max_length=200),
                       image: int = Query(0, ge=0, le=10**7)):
    """Two runs as ``cnnzoo compare`` reports them (seconds of work the first time; kept after)."""
    return await _guarded(request, _compare, a, b, image)


def _occlusion(explorer, run: str, data: bytes, target: int | None, layer: str | None,
               prepare: bool) -> dict:
    from cnnzoo.serve.occlusion import occlusion

    return _on_prepared_image(explorer, run, data, prepare,
                              lambda subject, raw: occlusion(subject, raw, target, layer))


@router.post("/api/runs/{run}/occlusion")
async def run_occlusion(request: Request, run: str,
                        class_index: int | None = Query(None, ge=0, le=10**6),
                        layer: str | None = Query(None, max_length=200), prepare: bool = True):
    """``cnnzoo show occlusion`` for the image: the probability drop under a grey square beside
    Grad-CAM at ``layer`` for the class (the predicted one unless ``class_index``), and their ρ."""
    missing = _plain(request, runs.run_path, run)
    data = missing if isinstance(missing, JSONResponse) else await _upload(request)
    if isinstance(data, JSONResponse):
        return data
    return await _guarded(request, _occlusion, run, data, class_index, layer, prepare)


@router.get("/api/runs/{run}/snapshots")
def run_snapshots(request: Request, run: str):
    from cnnzoo.serve.timeline import snapshot_list

    return _plain(request, snapshot_list, run)


@router.get("/api/runs/{run}/snapshots/{epoch}")
def run_snapshot(request: Request, run: str, epoch: int = PathParam(..., ge=0, le=10**6)):
    from cnnzoo.serve.timeline import snapshot_view

    return _plain(request, snapshot_view, run, epoch)
