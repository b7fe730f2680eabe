"""How a run learned, for the Training tab's slider: the snapshots ``cnnzoo train --snapshots`` kept
(``engine.snapshots``), the same that ``cnnzoo show timeline`` draws, read with
``engine.snapshots.read_snapshot`` only.

Every file is a run file checked by ``runs.run_file`` (no link leads outside RUNS_DIR), and nothing
here loads the model: an epoch's kernels travel exactly (float32), its probe images as PNG and its
maps as uint8, each map scaled to its own range as ``show timeline`` draws them.
"""

from __future__ import annotations

from cnnzoo import rundir
from cnnzoo.engine.snapshots import AUTO_SHARE, read_snapshot
from cnnzoo.errors import DataFormatError
from cnnzoo.serve import runs


def hint(name: str) -> str:
    """The one line a run without snapshots shows: how to get them."""
    return (f"{name} kept no snapshots; train with `cnnzoo train … --snapshots all` to see its "
            f"first-layer kernels and feature maps epoch by epoch (--snapshots auto stops taking "
            f"them when one costs over {AUTO_SHARE:.0%} of an epoch)")


def _files(root, name: str) -> dict:
    """The run's snapshot files by epoch, each checked to lie inside RUNS_DIR."""
    found = rundir.snapshot_epochs(runs.run_path(root, name))
    return {epoch: runs.run_file(root, name, f"{rundir.SNAPSHOTS}/{path.name}")
            for epoch, path in found.items()}


def snapshot_list(root, name: str) -> dict:
    """The epochs with a snapshot (``[]`` and the hint when there are none)."""
    epochs = list(_files(root, name))
    return {"run": name, "epochs": epochs, "hint": None if epochs else hint(name)}


class SnapshotMissing(runs.RunNotFound):
    """An epoch the run kept no snapshot of: 404, naming the epochs it has."""


def snapshot_view(root, name: str, epoch: int) -> dict:
    """One epoch's snapshot for the page: kernels (exact), kernel change against the first
    snapshot, probe images and labels, and each stage's maps."""
    from cnnzoo.serve.explain import float32_base64, png_base64, uint8_base64

    files = _files(root, name)
    if epoch not in files:
        have = ", ".join(map(str, files)) or "none (" + hint(name) + ")"
        raise SnapshotMissing(f"{name} has no snapshot of epoch {epoch}; its epochs: {have}")
    snapshot = read_snapshot(files[epoch])
    first = snapshot if epoch == min(files) else read_snapshot(files[min(files)])
    if first.kernels.shape != snapshot.kernels.shape:
        raise DataFormatError(f"{name}'s snapshots of epochs {first.epoch} and {epoch} hold "
                              "kernels of different shapes; delete its folder snapshots and train "
                              "again")
    change = float((snapshot.kernels - first.kernels).norm()) / (float(first.kernels.norm()) or 1)
    images = snapshot.images.float().numpy() / 255
    pictures = [png_base64(image[0] if len(image) == 1 else image.transpose(1, 2, 0))
                for image in images]
    stages = []
    for stage, maps in snapshot.maps.items():
        probes, count, height, width = maps.shape
        stages.append({"name": stage, "probes": probes, "count": count, "height": height,
                       "width": width,
                       **uint8_base64(maps.reshape(probes * count, height, width).numpy())})
    return {"run": name, "epoch": snapshot.epoch, "epochs": list(files),
            "test_top1": snapshot.test_top1, "layer": snapshot.layer,
            "kernels": float32_base64(snapshot.kernels), "kernel_change": round(change, 6),
            "probe": {"labels": [int(label) for label in snapshot.labels], "png": pictures},
            "stages": stages}
