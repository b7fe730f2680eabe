"""``cnnzoo show …`` and ``cnnzoo scoremap``: look inside a trained network (or a fresh one).

Each takes a run directory (or checkpoint) or a model name, writes PNGs into ``--out`` (default
``RUN/show``) and with ``--json`` prints what it wrote and the numbers behind it. The work is in
``cnnzoo.visualize``.

A view that takes an image prepares it as ``cnnzoo predict`` does (``engine.user_image``;
``--no-prepare``: the pixels as they are) and reports the steps, any warning and the class
probabilities, as ``predict`` does.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from cnnzoo.commands import options, timeline, trust, units
from cnnzoo.commands.options import positive_int
from cnnzoo.commands.viewing import class_index as _class_index
from cnnzoo.commands.viewing import finish as _finish
from cnnzoo.commands.viewing import one_writer as _one_writer
from cnnzoo.commands.viewing import open_source as _open
from cnnzoo.task_progress import TaskProgress


def _seen(run, logits, note: dict) -> dict:
    """What a view reports of its image, as ``predict`` reports it: the class probabilities from the
    view's own forward pass (top 5), the preparation steps and any warning."""
    from cnnzoo.engine.user_image import ranked

    return {"predictions": ranked(run, logits.detach().float().softmax(-1)), **note}


def _caption(note: dict) -> str:
    """The figure's lines on how its image was prepared (``predict``'s words), wrapped to the
    figure."""
    import textwrap

    lines = textwrap.wrap(f"prepared: {'; '.join(note['prepared']) or 'as it is'}", 95)
    if note.get("warning"):
        lines += textwrap.wrap(f"warning: {note['warning']}", 95)
    return "\n" + "\n".join(lines)


def cmd_filters(args: argparse.Namespace) -> int:
    from cnnzoo.visualize.drawing import save
    from cnnzoo.visualize.filters import draw_filters, kernels

    started = time.perf_counter()
    run, out = _open(args)
    data = kernels(run.model, args.layer)
    path = save(draw_filters(data, title=run.label), out / f"filters-{data['layer']}.png")
    weights = [w.abs().max().item() for w in data["weights"]]
    return _finish(args, {"model": run.name, "layer": data["layer"], "shape": data["shape"],
                          "groups": data["groups"], "max_abs_weight": max(weights),
                          "wrote": [str(path)]}, started)


def cmd_maps(args: argparse.Namespace) -> int:
    import torch

    from cnnzoo.visualize.activations import activations, draw_maps, stage_summary
    from cnnzoo.visualize.drawing import save
    from cnnzoo.visualize.layers import resolve_layers
    from cnnzoo.visualize.source import display_image, load_input

    started = time.perf_counter()
    run, out = _open(args)
    _, x, note = load_input(run, args.image, args.prepare)
    outputs = activations(run.model, x, args.layers)
    figure = draw_maps(display_image(x[0], run).numpy(), outputs,
                       paths=resolve_layers(run.model, args.layers),
                       title=f"{run.label}: {args.image.name}{_caption(note)}")
    path = save(figure, out / f"maps-{args.image.stem}.png")
    with torch.no_grad():
        logits = run.model(x)[0]
    return _finish(args, {"model": run.name, "image": str(args.image), **_seen(run, logits, note),
                          "stages": stage_summary(outputs), "wrote": [str(path)]}, started)


def cmd_cam(args: argparse.Namespace) -> int:
    from cnnzoo.visualize.cam import draw_cam, grad_cam, saliency
    from cnnzoo.visualize.drawing import save
    from cnnzoo.visualize.source import display_image, load_input

    started = time.perf_counter()
    run, out = _open(args)
    _, x, note = load_input(run, args.image, args.prepare)
    target = _class_index(args.target_class, run.classes)
    result = grad_cam(run.model, x, target, args.layer)
    sal = saliency(run.model, x, result["class"])
    figure = draw_cam(display_image(x[0], run).numpy(), result, sal, classes=run.classes,
                      title=f"{run.label}: {args.image.name}{_caption(note)}")
    path = save(figure, out / f"cam-{args.image.stem}.png")
    probabilities = result["logits"].float().softmax(-1)
    chosen = result["class"]
    return _finish(args, {"model": run.name, "image": str(args.image),
                          **_seen(run, result["logits"], note), "layer": result["layer"],
                          "module": result["module"], "class": run.classes[chosen],
                          "class_index": chosen,
                          "probability": round(float(probabilities[chosen]), 6),
                          "predicted": run.classes[int(probabilities.argmax())],
                          "wrote": [str(path)]}, started)


def _scoremap_image(run, args: argparse.Namespace, report: dict) -> tuple:
    """The user's image as a canvas at its own size (normalised) and the lines that say how it was
    prepared; ``report`` gets what ``predict`` says of the same image (prepared whole, at the
    model's input)."""
    import torch

    from cnnzoo.errors import ConfigError
    from cnnzoo.visualize.source import load_canvas, load_input

    _, x, canvas_note = load_canvas(run, args.image, args.prepare)
    (height, width), window = x.shape[-2:], run.model.cfg.input_size[1]
    if min(height, width) < window:
        raise ConfigError(f"{args.image}: {width}×{height} pixels at the model's scale, smaller "
                          f"than its {window}×{window} window; give a larger image (cnnzoo predict "
                          "takes any size)")
    _, whole, note = load_input(run, args.image, args.prepare)
    with torch.no_grad():
        report.update(_seen(run, run.model(whole)[0], note))
    report["canvas_prepared"] = canvas_note["prepared"]
    best = report["predictions"][0]
    canvas = "; ".join(canvas_note["prepared"]) or "as it is"
    caption = (f"\nthe map's canvas: {canvas} (never trimmed or resized); the whole image, as "
               f"predict sees it: {best['class']} {best['probability']:.1%}{_caption(note)}")
    return x, caption


def cmd_scoremap(args: argparse.Namespace) -> int:
    from cnnzoo.visualize.drawing import save
    from cnnzoo.visualize.scoremap import convolutional_head, draw_score_map, score_map
    from cnnzoo.visualize.source import canvas_input, display_image, load_data, tile_canvas

    started = time.perf_counter()
    run, out = _open(args)
    # refuses models without an FC head before any data is read
    head = convolutional_head(run.model)
    report, caption = {"model": run.name}, ""
    if args.image is not None:  # read (and refused, if it must be) before any progress line
        x, caption = _scoremap_image(run, args, report)
        stem = args.image.stem
    progress = args.held.enter_context(TaskProgress("scoremap"))
    if args.image is None:  # the demonstration: 3×3 test images on one canvas
        progress.stage("loading the data")
        test = load_data(run, args.data_dir).test
        raw = tile_canvas(test.images[:9].cpu())
        x, stem, labels = canvas_input(run, raw[None]), "canvas", test.labels[:9].tolist()
        report["canvas_classes"] = [run.classes[i] for i in labels]
    progress.stage("class scores of every window in one pass")
    result = score_map(run.model, x, head)
    scores = result["scores"]
    progress.stage("the figure")
    figure = draw_score_map(display_image(x[0], run).numpy(), result, classes=run.classes,
                            title=f"{run.label}: its FC layers as convolutions, run once over the "
                                  f"image{caption}")
    path = save(figure, out / f"scoremap-{stem}.png")
    progress.close()
    report.update({"image_size": list(x.shape[-2:]), "score_map": list(scores.shape),
                   "stride": result["stride"],
                   "window": result["window"], "argmax": scores.argmax(0).tolist(),
                   "wrote": [str(path)]})
    return _finish(args, report, started)


def cmd_neighbours(args: argparse.Namespace) -> int:
    import torch

    from cnnzoo.visualize import retrieval as r
    from cnnzoo.visualize.drawing import save
    from cnnzoo.visualize.source import load_data, load_input

    started = time.perf_counter()
    run, out = _open(args)
    progress = args.held.enter_context(TaskProgress("neighbours"))
    progress.stage("loading the data")
    data = load_data(run, args.data_dir)
    train_images, train_labels = data.train.images.cpu(), data.train.labels.cpu()
    progress.stage(f"indexing the training images (kept in {r.CACHE_NAME} for the next query)",
                   total=len(train_images))
    bank, cached = r.cached_features(run, train_images, out / r.CACHE_NAME,
                                     advance=progress.advance)
    raw, x, note = load_input(run, args.image, args.prepare)
    spaces = {"features": (bank, r.penultimate(run.model, x)),
              "pixels": (r.pixels(train_images), r.pixels(raw[None]))}
    queries = (
        data.test.subset(range(min(args.queries, len(data.test))))
        if hasattr(data.test, "subset")
        else data.test
    )
    q_images, q_labels = queries.images.cpu(), queries.labels.cpu()
    progress.stage("features of the test queries", total=len(q_images))
    q_vectors = {"features": r.dataset_features(run, q_images, advance=progress.advance),
                 "pixels": r.pixels(q_images)}
    rows, precision = [], {}
    with torch.no_grad():
        logits = run.model(x)[0]
    predicted = run.classes[int(logits.argmax())]
    for space in ([args.space] if args.space else ["features", "pixels"]):
        vectors, query = spaces[space]
        distances, indices = r.nearest(query, vectors, args.k)
        progress.stage(f"precision@{args.k} in {space}", total=len(q_images))
        found = r.nearest(q_vectors[space], vectors, args.k, advance=progress.advance)[1]
        precision[space] = r.precision_at_k(q_labels, train_labels[found])
        rows.append({"space": f"{space} (precision@{args.k} {precision[space]:.1%})",
                     "query_label": predicted,
                     "images": [_drawable(train_images[i]) for i in indices[0]],
                     "labels": [run.classes[int(train_labels[i])] for i in indices[0]],
                     "distances": distances[0].tolist(), "indices": indices[0].tolist()})
    figure = r.draw_neighbours(_drawable(raw), rows, title=f"{run.label}: nearest training images "
                                                           f"to {args.image.name} (predicted "
                                                           f"{predicted}); red: another class than "
                                                           f"predicted\nprecision@{args.k} over "
                                                           f"{len(q_labels):,} test "
                                                           f"queries{_caption(note)}")
    path = save(figure, out / f"neighbours-{args.image.stem}.png")
    progress.close()
    report = {
        "model": run.name,
        "image": str(args.image),
        **_seen(run, logits, note),
        "k": args.k,
        "queries": len(q_labels),
        "precision_at_k": precision,
        "features_cached": cached,
        "wrote": [str(path)],
        "neighbours": [
            {key: row[key] for key in ("space", "labels", "distances", "indices")} for row in rows
        ],
    }
    return _finish(args, report, started)


def cmd_errors(args: argparse.Namespace) -> int:
    from cnnzoo.visualize import mistakes as m
    from cnnzoo.visualize.drawing import save
    from cnnzoo.visualize.source import load_data

    started = time.perf_counter()
    run, out = _open(args)
    progress = args.held.enter_context(TaskProgress("errors"))
    progress.stage("loading the data")
    test = load_data(run, args.data_dir).test
    images, labels = test.images.cpu(), test.labels.cpu()
    progress.stage("class probabilities of the test images", total=len(images))
    probs = m.probabilities(run, images, advance=progress.advance)
    progress.stage("the figure")
    rows = m.confident_mistakes(probs, labels, args.count)
    wrong = int((probs.argmax(1) != labels).sum())
    title = (f"{run.label}: the {len(rows)} most confident of {wrong:,} mistakes on "
             f"{len(labels):,} test images ({wrong / len(labels):.1%} error)\ntrue class above "
             "each image, the prediction and its probability in red")
    figure = m.draw_mistakes([_drawable(images[r["index"]]) for r in rows], rows,
                             classes=run.classes, title=title)
    path = save(figure, out / "errors.png")
    progress.close()
    pairs = [{"true": run.classes[t], "predicted": run.classes[p], "count": n}
             for t, p, n in m.confused_pairs(probs, labels)]
    named = [
        {**r, "true": run.classes[r["true"]], "predicted": run.classes[r["predicted"]]}
        for r in rows
    ]
    return _finish(args, {"model": run.name, "test_images": len(labels), "mistakes": wrong,
                          "most_confident": named, "most_confused": pairs, "wrote": [str(path)]},
                   started)


def cmd_embedding(args: argparse.Namespace) -> int:
    from cnnzoo.visualize import embedding as e
    from cnnzoo.visualize import retrieval as r
    from cnnzoo.visualize.drawing import save
    from cnnzoo.visualize.source import load_data

    started = time.perf_counter()
    run, out = _open(args)
    progress = args.held.enter_context(TaskProgress("embedding"))
    progress.stage("loading the data")
    test = load_data(run, args.data_dir).test
    count = min(args.images, len(test))
    images, labels = test.images[:count].cpu(), test.labels[:count].cpu()
    progress.stage("features of the test images", total=count)
    features = r.dataset_features(run, images, advance=progress.advance)
    progress.stage("principal components and the figure")
    panels = {"raw pixels": e.pca_2d(r.pixels(images)),
              "penultimate-layer features": e.pca_2d(features)}
    for result in panels.values():
        result["accuracy"] = e.centroid_accuracy(result["points"], labels)
    figure = e.draw_embedding(panels, labels, classes=run.classes,
                              title=f"{run.label}: {count:,} test images projected on their first "
                                    "two principal components")
    path = save(figure, out / "embedding.png")
    progress.close()
    spaces = {name: {"explained_variance": [round(v, 4) for v in p["explained"]],
                     "centroid_accuracy_2d": round(p["accuracy"], 4)} for name, p in panels.items()}
    return _finish(args, {"model": run.name, "images": count, "projection": "pca", "spaces": spaces,
                          "wrote": [str(path)]}, started)


def _drawable(image):
    """uint8 (C, H, W) to an array for imshow: (H, W) grey or (H, W, 3)."""
    return image[0].numpy() if image.shape[0] == 1 else image.permute(1, 2, 0).numpy()


def _register_scoremap(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("scoremap", help="a classifier slid over a larger image: FC layers as "
                                             "convolutions",
                            description="Rewrite the FC head as convolutions and run the whole "
                                        "image once: a class-score map, one cell per window "
                                        "(lenet5, alexnet, vgg, convnet).")
    p.add_argument("source", metavar="RUN|MODEL")
    p.add_argument("image", type=Path, nargs="?", metavar="IMAGE",
                   help="an image larger than the model's input (default: 3×3 test images tiled "
                        "on one canvas)")
    options.add(p, "prepare")
    options.add(p, "data_dir", help="where the dataset files are (for the default canvas)")
    options.add(p, "out_dir", help="where to write the PNG (default: RUN/show)")
    options.add(p, "json", help="print the score map's shape, argmax and what was written")
    p.set_defaults(run=_one_writer(cmd_scoremap))


def _common(p: argparse.ArgumentParser, *, image: bool) -> None:
    p.add_argument("source", metavar="RUN|MODEL", help="a run directory or checkpoint, or a model "
                                                       "name (random weights)")
    if image:
        p.add_argument("image", type=Path, metavar="IMAGE", help="an image file (PNG, JPEG, …)")
        options.add(p, "prepare")
    options.add(p, "out_dir", help="where to write the PNGs (default: RUN/show)")
    options.add(p, "json", help="print what was written and the numbers behind it")


def register(commands: argparse._SubParsersAction) -> None:
    show = commands.add_parser("show", help="see inside a network: kernels, feature maps, "
                                            "Grad-CAM, neighbours…",
                               description="Figures of what a trained (or fresh) network computes.")
    views = show.add_subparsers(dest="view", metavar="VIEW", required=True)
    p = views.add_parser("filters", help="a convolution's kernels as a grid (one panel per group)")
    _common(p, image=False)
    p.add_argument("--layer", help="module path or convN (default: the first convolution)")
    p.set_defaults(run=_one_writer(cmd_filters))
    p = views.add_parser("maps", help="the image as the model sees it, then every stage's feature "
                                      "maps")
    _common(p, image=True)
    p.add_argument("--layers", nargs="+", metavar="NAME", help="stage names or module paths "
                                                               "(default: every stage)")
    p.set_defaults(run=_one_writer(cmd_maps))
    p = views.add_parser("cam", help="Grad-CAM and gradient saliency for the predicted (or a "
                                     "chosen) class")
    _common(p, image=True)
    p.add_argument("--class", dest="target_class", metavar="C",
                   help="class name or index (default: predicted)")
    p.add_argument("--layer", help="stage for Grad-CAM (default: the last convolutional stage)")
    p.set_defaults(run=_one_writer(cmd_cam))
    p = views.add_parser("neighbours", help="nearest training images in penultimate features and "
                                            "in pixels")
    _common(p, image=True)
    p.add_argument("--k", type=positive_int, default=8, help="neighbours per query (default: 8)")
    p.add_argument("--space", choices=("features", "pixels"), help="only one space (default: both)")
    p.add_argument("--queries", type=positive_int, default=1000,
                   help="test images for precision@k (default: 1000)")
    options.add(p, "data_dir")
    p.set_defaults(run=_one_writer(cmd_neighbours))
    p = views.add_parser("errors", help="the test images the model gets wrong with the most "
                                        "confidence")
    _common(p, image=False)
    p.add_argument("--count", type=positive_int, default=24, help="mistakes to show (default: 24)")
    options.add(p, "data_dir")
    p.set_defaults(run=_one_writer(cmd_errors))
    p = views.add_parser("embedding", help="test-set features in 2-D (principal components) "
                                           "beside raw pixels")
    _common(p, image=False)
    p.add_argument("--images", type=positive_int, default=5000,
                   help="test images to project (default: 5000)")
    options.add(p, "data_dir")
    p.set_defaults(run=_one_writer(cmd_embedding))
    units.register(views, _common)
    timeline.register(views, _common)
    trust.register(views, _common)
    _register_scoremap(commands)
