"""``cnnzoo show trust``: can a heatmap of this run be trusted? For each image and attribution
method, the randomisation test, deletion and insertion curves and agreement with occlusion, then
one verdict line, a figure and (``--json``) the figures behind it. Registered under ``cnnzoo
show`` by ``commands.show``; the checks are in ``cnnzoo.visualize.trust``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from cnnzoo.commands import options
from cnnzoo.commands.options import positive_int
from cnnzoo.commands.viewing import class_index, finish, one_writer, open_source

METHODS = ("grad-cam", "saliency", "occlusion", "edges", "untrained")
DEFAULT_METHODS = ["grad-cam", "saliency", "occlusion"]
NEEDS_LAYER = ("grad-cam", "untrained")


def _say(args: argparse.Namespace, line: str) -> None:
    """A verdict on stdout, or on stderr under --json so that stdout stays one document."""
    print(line, file=sys.stderr if args.json else sys.stdout)


def _inputs(run, args: argparse.Namespace) -> list[dict]:
    """Each image as the model sees it, with its class (--class, else the predicted one)."""
    import torch

    from cnnzoo.visualize.source import load_input

    chosen = class_index(args.target_class, run.classes)
    rows = []
    for path in args.images:
        _, x, note = load_input(run, path, args.prepare)
        with torch.no_grad():
            probabilities = run.model(x)[0].softmax(-1)
        target = int(probabilities.argmax()) if chosen is None else chosen
        rows.append({"path": path, "x": x, "note": note, "class": target,
                     "probability": float(probabilities[target])})
    return rows


def _settings(args: argparse.Namespace, side: int) -> dict:
    from cnnzoo.visualize.trust import occlusion_settings

    return occlusion_settings(side, args.patch, args.stride)


def _cam_layer(run, inputs: list[dict], args: argparse.Namespace, settings: dict) -> dict:
    """The Grad-CAM layer: --cam-layer, else the candidate the checks trust most on these images
    (``trust.choose_cam_layer``), with every candidate's figures.
    """
    from cnnzoo.visualize import trust

    if args.cam_layer:
        return {"layer": args.cam_layer, "chosen_by": "--cam-layer", "candidates": []}
    layers = trust.cam_candidates(run.model, inputs[0]["x"])
    methods = {layer: trust.explainers(run.model, ["grad-cam"], cam_layer=layer, **settings)
               ["grad-cam"] for layer in layers}
    reference = trust.explainers(run.model, ["occlusion"], cam_layer=None, **settings)["occlusion"]
    reports: dict[str, list[dict]] = {layer: [] for layer in layers}
    for row in inputs:
        checked = trust.check_image(run.model, row["x"], row["class"], methods, reference,
                                    seed=args.seed)
        for layer in layers:
            reports[layer].append(checked["methods"][layer])
    return {"layer": trust.choose_cam_layer(reports), "chosen_by": "checks",
            "candidates": trust.candidate_rows(reports)}


def _layer_line(choice: dict) -> str:
    if choice["chosen_by"] != "checks":
        return f"Grad-CAM layer: {choice['layer']} (given by --cam-layer)"
    shown = "; ".join(f"{c['layer']} trusted on {c['trusted']}/{c['images']}, gain "
                      f"{c['mean_gain']:+.2f}, randomised ρ {c['mean_randomised_rho']:.2f}"
                      for c in choice["candidates"])
    if not any(c["trusted"] for c in choice["candidates"]):
        shown += "; no layer passes on these images, so the largest gain decides"
    return f"Grad-CAM layer: {choice['layer']}, chosen by the checks ({shown})"


def _labels(methods: list[str], layer: str | None, patch: int) -> dict[str, str]:
    names = {"grad-cam": f"Grad-CAM at {layer}", "saliency": "gradient saliency",
             "occlusion": f"occlusion ({patch}×{patch})", "edges": "edge map (control)",
             "untrained": f"untrained Grad-CAM at {layer} (control)"}
    return {method: names[method] for method in methods}


def _check(run, row: dict, args: argparse.Namespace, methods: dict, labels: dict, out) -> dict:
    """One image: its checks, its verdict lines, its figure; the image's part of the report."""
    from cnnzoo.visualize import trust
    from cnnzoo.visualize.drawing import save
    from cnnzoo.visualize.source import display_image
    from cnnzoo.visualize.trust_figure import draw_trust

    reference = trust.explainers(run.model, ["occlusion"], cam_layer=None,
                                 **_settings(args, row["x"].shape[-1]))["occlusion"]
    result = trust.check_image(run.model, row["x"], row["class"], methods, reference,
                               seed=args.seed)
    name = run.classes[row["class"]]
    for method, report in result["methods"].items():
        _say(args, f"{row['path'].name}  {labels[method]}  {report['line']}")
    figure = draw_trust(display_image(row["x"][0], run).numpy(), result, labels=labels,
                        title=f"{run.label}: {row['path'].name}, class {name!r} (p = "
                              f"{row['probability']:.2f})")
    path = save(figure, out / f"trust-{row['path'].stem}.png")
    return {"image": str(row["path"]), "class": name, "class_index": row["class"],
            "probability": round(row["probability"], 6), **row["note"],
            "random": trust.random_row(result["random"]),
            "methods": [trust.report_row(m, labels[m], r, result["steps"])
                        for m, r in result["methods"].items()],
            "figure": str(path)}


def cmd_trust(args: argparse.Namespace) -> int:
    import torch

    from cnnzoo.visualize import trust

    started = time.perf_counter()
    if args.threads:
        torch.set_num_threads(args.threads)
    run, out = open_source(args)
    inputs = _inputs(run, args)
    settings = _settings(args, inputs[0]["x"].shape[-1])
    methods = list(dict.fromkeys(args.methods))
    choice = None
    if any(method in NEEDS_LAYER for method in methods):
        choice = _cam_layer(run, inputs, args, settings)
        _say(args, _layer_line(choice))
    layer = choice["layer"] if choice else None
    explain = trust.explainers(run.model, methods, cam_layer=layer, **settings)
    labels = _labels(methods, layer, settings["patch"])
    images = [_check(run, row, args, explain, labels, out) for row in inputs]
    return finish(args, {"model": run.name, "cam_layer": choice, **settings,
                         "thresholds": trust.thresholds(), "images": images,
                         "wrote": [row["figure"] for row in images]}, started)


def register(views: argparse._SubParsersAction, common) -> None:
    """Add ``trust`` to ``cnnzoo show``; ``common`` declares the source, --out and --json."""
    p = views.add_parser(
        "trust",
        help="can a heatmap be trusted? randomisation, deletion/insertion and occlusion checks",
        description="For each image and attribution method: the model-parameter randomisation "
                    "test (Adebayo et al. 2018), deletion and insertion curves against random "
                    "pixel orders (Petsiuk et al. 2018) and agreement with occlusion, then one "
                    "verdict line. Without --cam-layer, Grad-CAM's layer is the one these checks "
                    "trust most, and is printed.",
    )
    common(p, image=False)
    p.add_argument("images", type=Path, nargs="+", metavar="IMAGE", help="image files (PNG, …)")
    options.add(p, "prepare")
    p.add_argument("--methods", nargs="+", choices=METHODS, default=DEFAULT_METHODS,
                   metavar="M", help="among grad-cam, saliency, occlusion and the controls edges "
                                     "(an edge map of the input) and untrained (Grad-CAM of a "
                                     "randomly initialised copy), which ignore the weights and so "
                                     "must fail (default: the first three)")
    p.add_argument("--class", dest="target_class", metavar="C",
                   help="class name or index (default: each image's predicted class)")
    p.add_argument("--cam-layer", help="stage for Grad-CAM (default: chosen by the checks)")
    p.add_argument("--patch", type=positive_int, metavar="PX",
                   help="occlusion's square (default: side/7)")
    p.add_argument("--stride", type=positive_int, metavar="PX",
                   help="occlusion's step (default: patch/2)")
    options.add(p, "seed", default=0)
    options.add(p, "threads")
    p.set_defaults(run=one_writer(cmd_trust))
