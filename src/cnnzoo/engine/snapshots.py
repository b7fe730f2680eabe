"""Snapshots of a run as it learns: after chosen epochs, the first convolution's kernels and the
feature maps a fixed probe batch of test images gives at two stages, a few kilobytes each, one file
per epoch (``rundir.snapshot_path``: ``snapshots/epoch-0003.safetensors``; epoch 0 is the network
as initialised). ``cnnzoo show timeline`` draws them epoch by epoch.

The training side (``SnapshotTaker``) is one step of the loop: it runs in process 0 only (the
weights are the same in every process), after the epoch's evaluation and before its checkpoint, so
a crash between the two leaves a snapshot the checkpoint does not cover; the resumed run drops it
and takes it again, and the series goes on without a gap or a second copy.

``--snapshots auto`` (the default) keeps them every epoch while they cost under ``AUTO_SHARE`` of
an epoch: the first snapshot (epoch 0's, cold, so an overestimate) is timed against the first
epoch's training, and the decision is kept in the run's state so a resumed run keeps to it.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors_bytes
from safetensors.torch import save as save_safetensors_bytes
from torch import nn

from cnnzoo import rundir
from cnnzoo.console import Log
from cnnzoo.data.dataset import ImageDataset
from cnnzoo.engine.config import snapshot_epochs
from cnnzoo.engine.inputs import InputSpec
from cnnzoo.engine.state import RunState
from cnnzoo.errors import ConfigError, DataFormatError
from cnnzoo.files import read_bytes
from cnnzoo.visualize.activations import activations
from cnnzoo.visualize.filters import dense_weight
from cnnzoo.visualize.layers import conv_layers, default_stages

FORMAT = "cnnzoo-snapshot-1"
AUTO_SHARE = 0.02  # --snapshots auto keeps them while one costs less than this share of an epoch
PROBE_IMAGES = 4  # test images whose maps are kept: the first of each of the first classes
MAX_MAPS = 16  # maps kept per stage
MAX_MAP_SIDE = (
    32  # larger maps are average-pooled to this side: kilobytes, not megabytes, per epoch
)
MIN_DEEP_SIDE = 7  # the deeper stage is the last whose maps are this wide: smaller ones show little
MAX_FILE_BYTES = 64 * 1024**2


@dataclass
class Snapshot:
    """One epoch's snapshot, read back."""

    epoch: int
    layer: str  # the first convolution's module path
    kernels: torch.Tensor  # (out, in, k, k), float32: the weights as they were after ``epoch``
    maps: dict[str, torch.Tensor]  # stage name → (probe images, maps, h, w), float32
    images: torch.Tensor  # the probe batch, uint8 (N, C, h, w) as the data set holds it
    labels: torch.Tensor  # (N,) class indices
    test_top1: float | None  # the test accuracy after ``epoch`` (None for epoch 0)


def probe_batch(test: ImageDataset, count: int = PROBE_IMAGES) -> tuple[torch.Tensor, torch.Tensor]:
    """The first test image of each class, in class order, up to ``count`` (uint8 images, labels):
    the same images after every epoch, and different kinds of object."""
    labels = test.labels.cpu()
    firsts = [int((labels == c).nonzero()[0]) for c in labels.unique().tolist()][:count]
    images, chosen = next(test.subset(firsts).batches(len(firsts), shuffle=False))
    return images.cpu(), chosen.cpu()


def probe_stages(model: nn.Module, x: torch.Tensor) -> dict[str, str]:
    """The stages whose maps are kept: the first with a spatial map, and the last whose maps are at
    least ``MIN_DEEP_SIDE`` wide (stage name → module path)."""
    stages = default_stages(model)
    was_training = model.training
    model.eval()  # a batch of one through BatchNorm, and no running statistics moved by a probe
    try:
        outputs = activations(model, x[:1])
    finally:
        model.train(was_training)
    spatial = [name for name, value in outputs.items() if value.dim() == 4]
    if not spatial:
        return {}
    wide = [name for name in spatial if outputs[name].shape[-1] >= MIN_DEEP_SIDE] or spatial[:1]
    return {name: stages[name] for name in dict.fromkeys([spatial[0], wide[-1]])}


@torch.no_grad()
def snapshot_bytes(
    model: nn.Module,
    x: torch.Tensor,
    images: torch.Tensor,
    labels: torch.Tensor,
    stages: dict[str, str],
    *,
    epoch: int,
    test_top1: float | None,
) -> bytes:
    """A snapshot of ``model`` (in eval mode, left as it was) on the normalised probe ``x``."""
    layer, conv = next(iter(conv_layers(model).items()))
    was_training = model.training
    model.eval()
    try:
        outputs = activations(model, x, list(stages))
    finally:
        model.train(was_training)
    tensors = {"kernels": dense_weight(conv), "images": images, "labels": labels}
    for name, value in outputs.items():
        maps = value[:, :MAX_MAPS].float()
        if maps.shape[-1] > MAX_MAP_SIDE:
            maps = F.adaptive_avg_pool2d(maps, MAX_MAP_SIDE)
        tensors[f"maps.{name}"] = (
            maps.half()
        )  # a picture, not a measurement: half precision is plenty
    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in tensors.items()}
    meta = {"epoch": epoch, "layer": layer, "stages": list(outputs), "test_top1": test_top1}
    return save_safetensors_bytes(tensors, metadata={"format": FORMAT, "meta": json.dumps(meta)})


def read_snapshot(path: Path) -> Snapshot:
    """A snapshot file read back; a damaged one is a ``DataFormatError`` naming it."""
    data = read_bytes(path, MAX_FILE_BYTES, "snapshot")
    try:
        tensors = load_safetensors_bytes(data)
        # safetensors' layout: an 8-byte little-endian length, then the JSON header (with metadata)
        header = json.loads(data[8 : 8 + int.from_bytes(data[:8], "little")])
        meta = json.loads(header["__metadata__"]["meta"])
        maps = {name: tensors[f"maps.{name}"].float() for name in meta["stages"]}
        return Snapshot(
            int(meta["epoch"]),
            str(meta["layer"]),
            tensors["kernels"],
            maps,
            tensors["images"],
            tensors["labels"],
            meta.get("test_top1"),
        )
    except (SafetensorError, ValueError, KeyError, TypeError) as error:
        raise DataFormatError(
            f"{path}: not a cnnzoo snapshot ({type(error).__name__}: {error}); delete it, or train "
            "again with --snapshots"
        ) from None


def read_snapshots(run_dir: Path) -> list[Snapshot]:
    """The run's snapshots in epoch order ([] when it kept none)."""
    return [read_snapshot(path) for path in rundir.snapshot_epochs(run_dir).values()]


class SnapshotTaker:
    """Takes a run's snapshots as it trains (process 0 only): ``begin`` once before the first
    epoch, ``after_epoch`` after each evaluation."""

    def __init__(
        self,
        run_dir: Path,
        setting: str,
        model: nn.Module,
        test: ImageDataset,
        spec: InputSpec,
        device: torch.device,
        log: Log,
    ) -> None:
        self.run_dir, self.setting, self.log = Path(run_dir), setting, log
        self.epochs = snapshot_epochs(setting)  # None: auto or all
        self.images, self.labels = probe_batch(test)
        self.x = spec.eval_pipeline("center")(self.images.to(device))[0]
        self.stages = probe_stages(model, self.x)
        self.first_seconds: float | None = None  # the first snapshot this process took, timed

    @classmethod
    def for_run(
        cls,
        run_dir: Path,
        setting: str,
        model: nn.Module,
        test: ImageDataset,
        spec: InputSpec,
        device: torch.device,
        log: Log,
    ) -> SnapshotTaker | None:
        """The taker a run's ``--snapshots`` asks for, or None (off, or auto on a model without a
        convolution; asked for explicitly there, a ``ConfigError``)."""
        if setting == "off":
            return None
        if not conv_layers(model):
            if setting == "auto":
                return None
            raise ConfigError(
                f"--snapshots {setting}: {model.cfg.name} has no convolution, so there are no "
                "kernels to keep; leave --snapshots at auto or off"
            )
        return cls(run_dir, setting, model, test, spec, device, log)

    def wanted(self, epoch: int, state: RunState) -> bool:
        if self.epochs is not None:
            return epoch in self.epochs
        return self.setting == "all" or state.snapshots_kept is not False

    def take(self, model: nn.Module, epoch: int, test_top1: float | None = None) -> float:
        """Write the snapshot after ``epoch``; returns the seconds it took."""
        started = time.perf_counter()
        data = snapshot_bytes(
            model, self.x, self.images, self.labels, self.stages, epoch=epoch, test_top1=test_top1
        )
        rundir.write_bytes(rundir.snapshot_path(self.run_dir, epoch), data)
        seconds = time.perf_counter() - started
        if self.first_seconds is None:
            self.first_seconds = seconds
        return seconds

    def begin(self, model: nn.Module, state: RunState) -> None:
        """A resumed run drops the snapshots its checkpoint does not cover; a new one takes epoch
        0's (the network as initialised)."""
        dropped = rundir.drop_snapshots_after(self.run_dir, state.epoch)
        if dropped:
            self.log(
                f"note: dropped the snapshots of epochs {', '.join(map(str, dropped))}, which the "
                "last checkpoint does not cover; they are taken again"
            )
        if state.epoch == 0 and self.wanted(0, state):
            self.take(model, 0)

    def after_epoch(
        self, model: nn.Module, state: RunState, epoch_seconds: float, test_top1: float | None
    ) -> None:
        """Take the snapshot of the epoch just recorded (``state.epoch``) if it is wanted; under
        auto, first decide from the first snapshot's cost whether to keep taking them."""
        epoch, taken = state.epoch, False
        if self.setting == "auto" and state.snapshots_kept is None:
            if self.first_seconds is None:  # a resumed run that had not decided: time this one
                self.take(model, epoch, test_top1)
                taken = True
            self._decide(state, self.first_seconds, epoch_seconds)
        if not taken and self.wanted(epoch, state):
            self.take(model, epoch, test_top1)

    def _decide(self, state: RunState, seconds: float, epoch_seconds: float) -> None:
        share = seconds / max(epoch_seconds, 1e-9)
        state.snapshots_kept = share < AUTO_SHARE
        kept = (
            "kept after every epoch"
            if state.snapshots_kept
            else "no more are taken (--snapshots all keeps them whatever they cost)"
        )
        self.log(
            f"snapshots: {seconds * 1000:.1f} ms each, {share * 100:.2g}% of an epoch's "
            f"{epoch_seconds:.2f} s; {kept}"
        )
