"""Evaluation: top-1 / top-5 accuracy, loss, per-class accuracy and the confusion matrix, with
test-time views."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from cnnzoo.data.dataset import DatasetSplits, ImageDataset, Shard
from cnnzoo.data.folder_layout import DEFAULT_HOLDOUT_FRACTION
from cnnzoo.data.loading import load_dataset
from cnnzoo.data.names import FOLDER_PREFIX, same_dataset
from cnnzoo.data.views import EvalViews
from cnnzoo.engine import distributed
from cnnzoo.engine.inputs import choose_input_side
from cnnzoo.engine.runtime import autocast, resolve_device
from cnnzoo.errors import ConfigError, NonFiniteOutputError
from cnnzoo.task_progress import Advance, TaskProgress

if TYPE_CHECKING:
    from cnnzoo.engine.run import Run


@dataclass
class EvalResult:
    top1: float
    top5: float
    loss: float
    images: int
    views: str
    # (classes, classes): rows true class, columns prediction
    confusion: torch.Tensor = field(repr=False)

    @property
    def per_class_accuracy(self) -> list[float | None]:
        """Top-1 over each class's images; None for a class with none (not 0: none was missed)."""
        return [None if total == 0 else right / total for right, total
                in zip(self.confusion.diag().tolist(), self.confusion.sum(1).tolist(), strict=True)]

    def to_dict(self) -> dict:
        return {"top1": self.top1, "top5": self.top5, "loss": self.loss, "images": self.images,
                "views": self.views}


def log_probabilities(model: nn.Module, batch: torch.Tensor, views: EvalViews, *,
                      device: torch.device,
                      precision: str = "fp32", channels_last: bool = False) -> torch.Tensor:
    """Average class probabilities over the test-time views of a uint8 batch; returns
    log-probabilities."""
    stacked = views(batch.to(device))  # (V, N, C, H, W)
    v, n = stacked.shape[:2]
    x = stacked.flatten(0, 1)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    with autocast(device, precision):
        logits = model(x)
    probabilities = logits.float().softmax(-1).view(v, n, -1).mean(0)
    return probabilities.clamp_min(1e-12).log()


@torch.no_grad()
def evaluate(model: nn.Module, data: ImageDataset, views: EvalViews, *, num_classes: int,
             batch_size: int = 500,
             device: torch.device | str = "cpu", precision: str = "fp32",
             channels_last: bool = False, shard: Shard = Shard(),
             outputs: torch.Tensor | None = None, advance: Advance | None = None) -> EvalResult:
    """Accuracy of ``model`` on ``data`` (uint8 images, in memory or streamed) seen through
    ``views``.

    ``batch_size`` counts model inputs: with ten-crop views, 50 images make a batch of 500. The
    model is left in eval mode. Under several processes each evaluates its ``shard`` of the batches
    and the counts are summed over all of them, so every process returns the whole result and each
    image is read once. ``outputs``: the model's output for each of the data's labels, where they
    are not the same numbers (``outputs_of_classes``).
    """
    device = torch.device(device)
    model.eval()
    batch_size = max(1, batch_size // views.num_views)
    confusion = torch.zeros(num_classes, num_classes, dtype=torch.long)
    correct5 = total = 0
    loss_sum = 0.0
    for images, labels in data.batches(batch_size, shuffle=False, shard=shard):
        labels = (labels if outputs is None else outputs[labels.cpu()]).to(device)
        log_probs = log_probabilities(model, images, views, device=device, precision=precision,
                                      channels_last=channels_last)
        loss_sum += F.nll_loss(log_probs, labels, reduction="sum").item()
        top = log_probs.topk(min(5, num_classes), dim=1).indices
        correct5 += (top == labels[:, None]).any(1).sum().item()
        pairs = labels.cpu() * num_classes + top[:, 0].cpu()
        confusion += torch.bincount(pairs, minlength=num_classes**2).view(num_classes, num_classes)
        total += labels.numel()
        if advance is not None:
            advance(labels.numel())
    if shard.world > 1:
        confusion = distributed.sum_over_processes(confusion, device)
        loss_sum, correct5, total = distributed.sum_over_processes(
            torch.tensor([loss_sum, correct5, total], dtype=torch.float64), device).tolist()
        total, correct5 = int(total), int(correct5)
    if total == 0:
        raise ConfigError("cannot evaluate on an empty dataset")
    return EvalResult(top1=confusion.diag().sum().item() / total, top5=correct5 / total,
                      loss=loss_sum / total, images=total, views=views.views, confusion=confusion)


def evaluate_run(run: Run, dataset: str | None = None, *, data_dir: str | None = None,
                 views: str | None = None,
                 device: str = "cpu", batch_size: int = 250, memory_budget: float | None = None,
                 progress: TaskProgress | None = None) -> EvalResult:
    """Test accuracy of a run's model on ``dataset`` (default: the one it was trained on), with
    test-time ``views`` (default: those the run scored itself with, ``Run.test_views``); its stages
    and images reported to ``progress`` where one is given.

    An image folder is decoded at the side the model was trained from, in memory or streamed as
    ``memory_budget`` (MiB; 0 always streams) allows. The run's own folder is scored on the part
    training held out; another folder on its val/ (or test/) part, or on every image when it has
    none. Its classes are matched to the model's by name (``outputs_of_classes``).
    """
    dataset, views = dataset or run.dataset, views or run.test_views
    if dataset is None:
        raise ConfigError("this checkpoint does not record its dataset; pass --dataset NAME")
    budget = None if memory_budget is None else int(memory_budget * 1024**2)
    if progress is not None:
        progress.stage(f"loading {dataset}")
    whole = dataset.startswith(FOLDER_PREFIX) and not same_dataset(dataset, run.dataset)
    data = load_dataset(dataset, data_dir, in_channels=run.model.cfg.input_size[0],
                        image_size=run.data_size, memory_budget_bytes=budget,
                        holdout_fraction=1.0 if whole else DEFAULT_HOLDOUT_FRACTION)
    outputs = outputs_of_classes(data.classes, run.classes, dataset, named=run.classes_named)
    side = choose_input_side(run.model.cfg, data.test.image_size[-1], run.input.size)
    target = resolve_device(device)
    if progress is not None:
        progress.stage(f"{views} view of each test image", total=len(data.test))
    result = evaluate(run.model, data.test.pad_to(side).to(target), run.input.eval_pipeline(views),
                      num_classes=len(run.classes), batch_size=batch_size, device=target,
                      outputs=outputs, advance=progress.advance if progress is not None else None)
    if not math.isfinite(result.loss):
        raise NonFiniteOutputError(f"{run.name} gave NaN or infinite outputs on {dataset}'s test "
                                   f"images (loss {result.loss}); its accuracy would mean nothing")
    return result


def own_data(run: Run, data_dir: str | Path | None = None, *,
             download: bool = True) -> DatasetSplits:
    """The data set ``run`` was trained on (its ``dataset``: train and test parts, uint8 at the
    training images' side), refused where its classes are no longer those the model learned (a
    folder changed since): every figure would pair images with the wrong names."""
    data = load_dataset(run.dataset, data_dir, download, in_channels=run.model.cfg.input_size[0],
                        image_size=run.data_size)
    if run.classes_named and data.classes != run.classes:
        raise ConfigError(
            f"{run.dataset} now has the classes {', '.join(data.classes[:12])}, not the "
            f"{len(run.classes)} that {run.name} learned ({', '.join(run.classes[:12])}); put the "
            "folder back as it was, or score it with `cnnzoo eval RUN --dataset folder:PATH`, "
            "which matches classes by name")
    return data


def outputs_of_classes(classes: list[str], outputs: list[str], dataset: str, *,
                       named: bool = True) -> torch.Tensor | None:
    """The model's output (``outputs`` names them) for each of ``dataset``'s ``classes``: None
    where the two lists are the same, else matched by name, exactly or with case, spaces and
    punctuation aside (a folder cannot be called ``T-shirt/top``; ``T-shirt_top`` stands for it).
    A model whose weights record no class names (``named`` False: its outputs are only numbered) is
    taken in the data set's order. Raises ``ConfigError`` for a class the model has no output of
    that name (or of two such names): its accuracy would be a count of coincidences."""
    if classes == outputs or (not named and len(classes) == len(outputs)):
        return None
    exact = {name: index for index, name in enumerate(outputs)}
    keys: dict[str, list[int]] = {}
    for index, name in enumerate(outputs):
        keys.setdefault(_name_key(name), []).append(index)
    matched = [exact.get(name, _only(keys.get(_name_key(name)) or [])) for name in classes]
    missing = [name for name, index in zip(classes, matched, strict=True) if index is None]
    if missing:
        listed = ", ".join(outputs[:12]) + (", …" if len(outputs) > 12 else "")
        raise ConfigError(
            f"{dataset} has classes the model does not predict: {', '.join(missing[:5])}"
            f"{', …' if len(missing) > 5 else ''} (its outputs: {listed}"
            f"{'; its weights record no class names' if not named else ''}); evaluate on the data "
            "set it learned, or on a folder whose class folders are named after its classes")
    return torch.tensor(matched)


def _name_key(name: str) -> str:
    return re.sub(r"[\W_]+", "", name.casefold())


def _only(indices: list[int]) -> int | None:
    return indices[0] if len(indices) == 1 else None
