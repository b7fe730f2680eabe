"""The public API's three verbs on trained runs: ``load_run``, ``predict`` and ``evaluate``.

``cnnzoo/__init__.py`` exposes them (with ``create_model``, ``list_models``, ``summary``, ``train``,
``TrainConfig``, ``Run`` and ``CnnzooError``) and imports this module only when one is first used,
so ``import cnnzoo`` stays free of torch. ``predict`` and ``evaluate`` take a loaded ``Run`` or a
run directory / checkpoint path, which they load first; everything else is the engine's. This module
sits beside the commands: it calls the engine, and nothing below it imports it.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from cnnzoo.engine.evaluate import EvalResult, evaluate_run
from cnnzoo.engine.predict import predict_files_in
from cnnzoo.engine.run import Run
from cnnzoo.engine.run import load_run as _load_run

__all__ = ["Run", "evaluate", "load_run", "predict"]

PathLike = str | Path


def load_run(source: PathLike, *, model_name: str | None = None, device: str = "cpu",
             run_code: bool = False) -> Run:
    """The model a run directory (its best checkpoint) or a checkpoint file holds, in eval mode on
    ``device``, with its class names and the input it takes. A plain state dict (``.pt``) needs
    ``model_name``; a run of ``cnnzoo import --code`` loads only with ``run_code=True`` (it runs
    that file's Python), as the commands' ``--run-code``."""
    return _load_run(Path(source), model_name=model_name, device=device, run_code=run_code)


def predict(run: Run | PathLike, images: PathLike | Iterable[PathLike], *, top_k: int = 5,
            views: str = "center", prepare: bool = True, precision: str = "fp32",
            data_dir: PathLike | None = None) -> list[dict]:
    """The ``top_k`` classes of each image file, as ``cnnzoo predict`` gives them: one dict per
    image, in order, ``{"file", "predictions": [{"class", "index", "probability"}, ...], "prepared":
    [steps]}`` (and ``warning`` for a light background; ``prepare=False`` only resizes; see
    ``engine.user_image``). ``run`` is a ``Run`` or a path for ``load_run``; ``images`` one path or
    several. ``precision`` "bf16" or "int8" predicts with the model the accuracy gate kept (``cnnzoo
    eval --precision``; int8 is rebuilt from the training images in ``data_dir`` unless export
    wrote its file), and each dict then also carries ``precision`` and the gate's figures
    (``gate``)."""
    paths = [images] if isinstance(images, (str, Path)) else list(images)
    results, traded = predict_files_in(_loaded(run), [Path(p) for p in paths], precision,
                                       data_dir=None if data_dir is None else str(data_dir),
                                       top_k=top_k, views=views, prepare=prepare)
    return [{**item, **traded} for item in results]


def evaluate(run: Run | PathLike, dataset: str | None = None, *, data_dir: PathLike | None = None,
             views: str | None = None, device: str = "cpu", batch_size: int = 250) -> EvalResult:
    """Test-set accuracy of ``run`` (a ``Run`` or a path for ``load_run``) on ``dataset``, by
    default the one it was trained on, with the test-time views it scored itself with unless
    ``views`` says: ``top1``, ``top5``, ``loss``, ``images``, the confusion matrix and
    ``per_class_accuracy``. Another image folder is scored on all its images (or its val/ part),
    its class folders matched to the model's classes by name."""
    return evaluate_run(_loaded(run, device), dataset,
                        data_dir=None if data_dir is None else str(data_dir),
                        views=views, device=device, batch_size=batch_size)


def _loaded(run: Run | PathLike, device: str = "cpu") -> Run:
    return run if isinstance(run, Run) else load_run(run, device=device)
