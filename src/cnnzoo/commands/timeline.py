"""``cnnzoo show timeline RUN``: how a run learned, from the snapshots ``train --snapshots``
kept (``engine.snapshots``); the drawing is ``cnnzoo.visualize.timeline``. Registered under
``cnnzoo show`` by ``commands.show``.
"""

from __future__ import annotations

import argparse
import time

from cnnzoo.commands.options import whole_number
from cnnzoo.commands.viewing import finish, one_writer, open_source


def cmd_timeline(args: argparse.Namespace) -> int:
    from cnnzoo import rundir
    from cnnzoo.engine.snapshots import PROBE_IMAGES, read_snapshots
    from cnnzoo.errors import ConfigError
    from cnnzoo.visualize import timeline as t
    from cnnzoo.visualize.drawing import save

    started = time.perf_counter()
    run, out = open_source(args)
    if run.run_dir is None:
        raise ConfigError(
            f"{args.source} is not a run directory; show timeline draws what a run kept as it "
            "trained (cnnzoo train --snapshots all)"
        )
    snapshots = read_snapshots(run.run_dir)
    if not snapshots:
        raise ConfigError(
            f"{run.run_dir} kept no snapshots (--snapshots auto stops when they cost 2% of an "
            "epoch, or the run predates them); train with --snapshots all"
        )
    image = args.image
    if image >= len(snapshots[0].images):
        raise ConfigError(
            f"--image {image}: the probe batch holds {len(snapshots[0].images)} images "
            f"(0…{len(snapshots[0].images) - 1}; at most {PROBE_IMAGES})"
        )
    history = rundir.read_metrics(run.run_dir)
    figure = t.draw_timeline(snapshots, history, image=image, classes=run.classes, title=run.label)
    grid = save(figure, out / "timeline.png")
    gif = t.write_gif(snapshots, history, out / "timeline.gif", image=image)
    first = snapshots[0]
    report = {
        "model": run.name,
        "run": str(run.run_dir),
        "layer": first.layer,
        "stages": list(first.maps),
        "epochs": [s.epoch for s in snapshots],
        "test_top1": [s.test_top1 for s in snapshots],
        "kernel_change": [round(v, 6) for v in t.kernel_change(snapshots)],
        "probe_classes": [run.classes[int(label)] for label in first.labels],
        "wrote": [str(grid), str(gif)],
    }
    return finish(args, report, started)


def register(views: argparse._SubParsersAction, common) -> None:
    """Add ``timeline`` to ``cnnzoo show``; ``common`` declares the source, --out and --json."""
    p = views.add_parser(
        "timeline",
        help="how a run learned: its first kernels and a probe image's maps, epoch by epoch",
        description="The snapshots `cnnzoo train --snapshots` kept, drawn as a grid (a column per "
                    "epoch, under the accuracy curve) and an animated GIF (a frame per epoch).",
    )
    common(p, image=False)
    p.add_argument(
        "--image",
        type=whole_number(0, 1000),
        default=0,
        metavar="N",
        help="which probe image's maps to draw (default: 0; the probe batch holds the first test "
             "image of each of the first classes)",
    )
    p.set_defaults(run=one_writer(cmd_timeline))
