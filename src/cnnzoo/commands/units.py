"""``cnnzoo show features``, ``show patches`` and ``show occlusion``: what a unit wants to see, what
it answers to in real data, and which part of an image a class depends on. Registered under ``cnnzoo
show`` by ``commands.show``; the work is in ``cnnzoo.visualize.features``, ``.patches`` and
``.occlusion``.
"""

from __future__ import annotations

import argparse
import io
import re
import time
from pathlib import Path

from cnnzoo.commands import options
from cnnzoo.commands.options import positive_int, whole_number
from cnnzoo.commands.viewing import class_index, finish, one_writer, open_source
from cnnzoo.task_progress import TaskProgress


def _file_name(label: str) -> str:
    """A label made safe as part of a file name (class names hold spaces and slashes:
    "T-shirt/top").
    """
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", label).strip("-") or "unit"


def _test_inputs(run, data_dir, count: int, batch: int = 500):
    """Up to ``count`` test images as model inputs, in batches; None for a model without a data set.
    """
    from cnnzoo.visualize.source import load_data, model_input

    if run.dataset is None:
        return None
    images = load_data(run, data_dir).test.images[:count].cpu()
    return [model_input(run, chunk) for chunk in images.split(batch)]


def _save_inputs(result: dict, labels: list[str], folder: Path) -> list[str]:
    """Each synthesised image as its own PNG at the model's input size: ready for ``cnnzoo predict
    --no-prepare``.
    """
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for unit, label, image in zip(result["units"], labels, result["images"], strict=True):
        array = image[0].numpy() if image.shape[0] == 1 else image.permute(1, 2, 0).numpy()
        path = folder / f"{unit:03d}-{_file_name(label)}.png"
        Image.fromarray(array).save(path)
        written.append(str(path))
    return written


def _synthesise(run, args: argparse.Namespace, progress: TaskProgress):
    """Run the optimisation as one stage of ``progress`` (counting the steps of every batch), with
    ``--threads`` if given.
    """
    import torch

    from cnnzoo.visualize.features import Settings, resolve_target, synthesise

    if args.threads:
        torch.set_num_threads(args.threads)
    _, _, count = resolve_target(run.model, args.layer)
    units = list(range(min(args.units, count))) if args.units else None
    settings = Settings(steps=args.steps, seed=args.seed)
    batches = -(-(len(units) if units else count) // settings.batch)
    progress.stage(
        f"synthesising {len(units) if units else count} images, {settings.steps} steps each",
        total=batches * settings.steps,
    )
    return synthesise(
        run.model,
        args.layer,
        mean=run.input.mean,
        std=run.input.std,
        units=units,
        settings=settings,
        tick=progress.advance,
    )


def cmd_features(args: argparse.Namespace) -> int:
    from cnnzoo.visualize.drawing import save
    from cnnzoo.visualize.features import dataset_statistics, draw_features, unit_labels

    started = time.perf_counter()
    run, out = open_source(args)
    # --quiet: the stages are written nowhere (stderr stays for warnings and what was written)
    progress = args.held.enter_context(
        TaskProgress("features", stream=io.StringIO() if args.quiet else None)
    )
    result = _synthesise(run, args, progress)
    labels = unit_labels(run.classes, result)
    module = None if result["module"] == "logits" else result["module"]
    progress.stage("loading the test images")
    batches = _test_inputs(run, args.data_dir, args.test_images)
    stats = None
    if batches is not None:
        progress.stage("each unit on the test images", total=sum(len(x) for x in batches))
        stats = dataset_statistics(run.model, module, progress.counted(batches), result["units"])
    progress.stage("the figure and the images")
    name = _file_name(result["layer"])
    files = _save_inputs(result, labels, out / f"features-{name}")
    what = "class logit" if result["layer"] == "classes" else "mean activation"
    figure = draw_features(
        result,
        labels=labels,
        stats=stats,
        title=f"{run.label}\nwhat each unit of {result['layer']} ({result['module']}) wants to "
              f"see, optimised from noise\nunder each: its {what} on that image",
    )
    path = save(figure, out / f"features-{name}.png")
    progress.close()
    units = []
    for index, unit in enumerate(result["units"]):
        row = {
            "unit": unit,
            "label": labels[index],
            "value": round(float(result["values"][index]), 6),
            "file": files[index],
        }
        if stats is not None:
            row |= {
                "test_mean": round(float(stats["mean"][index]), 6),
                "test_max": round(float(stats["max"][index]), 6),
            }
        units.append(row)
    report = {
        "model": run.name,
        "layer": result["layer"],
        "module": result["module"],
        "measure": what,
        "steps": args.steps,
        "test_images": None if stats is None else stats["images"],
        "units": units,
        "above_test_max": None if stats is None else sum(r["value"] > r["test_max"] for r in units),
        "wrote": [str(path)],
        "images": str(out / f"features-{name}"),
    }
    return finish(args, report, started)


def cmd_patches(args: argparse.Namespace) -> int:
    from cnnzoo.visualize import patches as pt
    from cnnzoo.visualize.drawing import save
    from cnnzoo.visualize.features import as_drawable
    from cnnzoo.visualize.layers import resolve_layers
    from cnnzoo.visualize.source import load_data, model_input, model_input_pixels

    started = time.perf_counter()
    run, out = open_source(args)
    path = resolve_layers(run.model, [args.layer])[args.layer]
    progress = args.held.enter_context(TaskProgress("patches"))
    progress.stage("loading the data")
    raw = load_data(run, args.data_dir).test.images[: args.test_images].cpu()
    progress.stage(f"{args.layer} on the test images", total=len(raw))
    result = pt.top_patches(
        run.model,
        args.layer,
        path,
        progress.counted(model_input(run, chunk) for chunk in raw.split(500)),
        units=args.units,
    )
    progress.stage("the figure")
    shown = as_drawable(model_input_pixels(run, raw))
    size, jump, start = result["field"]
    figure = pt.draw_patches(
        shown,
        result,
        title=f"{run.label}: the {pt.TOP} of {len(raw):,} test images that drive each unit of "
              f"{args.layer} ({path}) hardest\neach cropped to the unit's {size}×{size} receptive "
              "field; above: the first three activations",
    )
    written = save(figure, out / f"patches-{_file_name(args.layer)}.png")
    progress.close()
    return finish(
        args,
        {
            "model": run.name,
            "layer": args.layer,
            "module": path,
            "receptive_field": size,
            "jump": jump,
            "rf_start": start,
            "test_images": len(raw),
            "units": result["rows"],
            "wrote": [str(written)],
        },
        started,
    )


def cmd_occlusion(args: argparse.Namespace) -> int:
    from cnnzoo.visualize.cam import grad_cam
    from cnnzoo.visualize.drawing import save
    from cnnzoo.visualize.occlusion import draw_occlusion, probability_drop, rank_correlation
    from cnnzoo.visualize.source import display_image, load_input

    started = time.perf_counter()
    run, out = open_source(args)
    _, x, note = load_input(run, args.image, args.prepare)
    side = x.shape[-1]
    patch = args.patch or max(2, side // 7)  # 4 px at 28 px: about a seventh of the image
    cam = grad_cam(run.model, x, class_index(args.target_class, run.classes), args.cam_layer)
    target = cam["class"]
    drop = probability_drop(
        run.model, x, target, patch=patch, stride=args.stride or max(1, patch // 2)
    )
    rho = rank_correlation(drop["map"], cam["cam"])
    name = run.classes[target]
    figure = draw_occlusion(
        display_image(x[0], run).numpy(),
        drop,
        cam,
        class_name=name,
        rho=rho,
        patch=patch,
        title=f"{run.label}: {args.image.name}",
    )
    path = save(figure, out / f"occlusion-{args.image.stem}.png")
    return finish(
        args,
        {
            "model": run.name,
            "image": str(args.image),
            "class": name,
            "class_index": target,
            "probability": round(drop["probability"], 6),
            "patch": patch,
            "squares": drop["squares"],
            "largest_drop": round(float(drop["map"].max()), 6),
            "cam_layer": cam["layer"],
            "rank_correlation": round(rho, 4),
            **note,
            "wrote": [str(path)],
        },
        started,
    )


def register(views: argparse._SubParsersAction, common) -> None:
    """Add the views to ``cnnzoo show``; ``common`` declares the source, image, --out and --json
    options.
    """
    p = views.add_parser(
        "features",
        help="what each unit (or class) wants to see: inputs optimised from noise",
        description="Activation maximisation with jitter, scaling, rotation, a 1/f spectrum and a "
                    "total-variation penalty; one image per unit, also saved at input size.",
    )
    common(p, image=False)
    p.add_argument(
        "--layer",
        default="classes",
        help="stage name, module path, or 'classes' for the output layer (default: classes)",
    )
    p.add_argument(
        "--units", type=positive_int, metavar="N", help="only the first N units (default: all)"
    )
    p.add_argument(
        "--steps",
        type=whole_number(1, 10_000),
        default=128,
        metavar="N",
        help="optimisation steps (default: 128)",
    )
    p.add_argument(
        "--test-images",
        type=positive_int,
        default=10_000,
        metavar="N",
        help="test images for each unit's mean and maximum (default: 10000)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress")
    options.add(p, "seed", default=0)
    options.add(p, "threads")
    options.add(p, "data_dir")
    p.set_defaults(run=one_writer(cmd_features))
    _register_patches(views, common)
    _register_occlusion(views, common)


def _register_patches(views: argparse._SubParsersAction, common) -> None:
    p = views.add_parser(
        "patches",
        help="the 9 test images' patches that drive each unit of a layer hardest",
        description="Zeiler and Fergus's top patches: for each unit, the test images with its "
                    "largest activation, cropped to that unit's receptive field.",
    )
    common(p, image=False)
    p.add_argument(
        "--layer", required=True, help="a convolutional stage name or module path (e.g. C3, conv2)"
    )
    p.add_argument(
        "--units",
        type=positive_int,
        default=32,
        metavar="N",
        help="the first N units (default: 32)",
    )
    p.add_argument(
        "--test-images",
        type=positive_int,
        default=10_000,
        metavar="N",
        help="test images to search (default: 10000)",
    )
    options.add(p, "data_dir")
    p.set_defaults(run=one_writer(cmd_patches))


def _register_occlusion(views: argparse._SubParsersAction, common) -> None:
    p = views.add_parser(
        "occlusion",
        help="a grey square slid over the image: where the class probability falls",
        description="Occlusion (Zeiler and Fergus) beside Grad-CAM, with their rank correlation; "
                    "the image is prepared as cnnzoo predict prepares it.",
    )
    common(p, image=True)
    p.add_argument(
        "--class", dest="target_class", metavar="C", help="class name or index (default: predicted)"
    )
    p.add_argument(
        "--patch", type=positive_int, metavar="PX", help="side of the square (default: side/7)"
    )
    p.add_argument(
        "--stride", type=positive_int, metavar="PX", help="step of the square (default: patch/2)"
    )
    p.add_argument("--cam-layer", help="stage for Grad-CAM (default: the last convolutional stage)")
    p.set_defaults(run=one_writer(cmd_occlusion))
