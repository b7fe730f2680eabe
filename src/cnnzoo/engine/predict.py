"""Using a trained model: load it back from a run or checkpoint, evaluate it on a dataset, classify image files."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from cnnzoo.data.folder import load_image, open_image
from cnnzoo.data.photos import prepare_like_mnist, unlike_training
from cnnzoo.data.dataset import pad_images
from cnnzoo.data.loading import load_dataset
from cnnzoo.engine.checkpoint import CheckpointError, load_checkpoint
from cnnzoo.engine.evaluate import EvalResult, evaluate, predict_logits
from cnnzoo.engine.inputs import InputSpec, choose_input_side
from cnnzoo.engine.runtime import resolve_device
from cnnzoo.models.registry import create_model
from cnnzoo.errors import ConfigError


@dataclass
class LoadedModel:
    model: nn.Module
    name: str
    classes: list[str]
    input: InputSpec
    dataset: str | None
    checkpoint: Path
    data_size: int  # side of the training images before padding (what padding starts from)


def checkpoint_path(source: Path) -> Path:
    """A run directory means its best checkpoint (or its last, if no epoch improved on the first)."""
    source = Path(source)
    if source.is_dir():
        for name in ("best.safetensors", "last.safetensors"):
            candidate = source / "checkpoints" / name
            if candidate.is_file():
                return candidate
        raise CheckpointError(f"{source}: no checkpoints/best.safetensors or last.safetensors in this directory; "
                              f"is it a cnnzoo run directory?")
    return source


def load_trained(source: Path, *, model_name: str | None = None, device: str = "cpu") -> LoadedModel:
    """Rebuild the model saved in ``source`` (a run directory or checkpoint file) and load its weights.

    cnnzoo checkpoints say which model they hold; a plain state dict (``.pt``) needs ``model_name``.
    """
    path = checkpoint_path(source)
    checkpoint = load_checkpoint(path)
    meta = checkpoint.meta
    name = meta.get("model") or model_name
    if name is None:
        raise CheckpointError(f"{path} holds bare weights and does not say which model they belong to; "
                              f"pass --model NAME")
    model = create_model(name, **meta.get("model_kwargs", {}))
    try:
        model.load_state_dict(checkpoint.model_state)
    except RuntimeError as error:
        first = str(error).splitlines()[0]
        raise CheckpointError(f"{path}: its weights do not fit {name} ({first})") from None
    model = model.to(resolve_device(device)).eval()
    cfg = model.cfg
    if "input" in meta:
        spec = InputSpec(**meta["input"])
    else:
        spec = InputSpec(size=cfg.input_size[1], mean=list(cfg.mean), std=list(cfg.std))
    classes = meta.get("classes") or [str(i) for i in range(cfg.num_classes)]
    return LoadedModel(model, name, classes, spec, meta.get("dataset"), path, meta.get("data_size", spec.size))


def evaluate_trained(loaded: LoadedModel, dataset: str | None = None, *, data_dir: str | None = None,
                     views: str = "center", device: str = "cpu", batch_size: int = 250,
                     memory_budget: float | None = None) -> EvalResult:
    """Test accuracy of a loaded model on ``dataset`` (default: the one it was trained on).

    An image folder is decoded at the side the model was trained from, in memory or streamed as
    ``memory_budget`` (MiB; 0 always streams) allows.
    """
    dataset = dataset or loaded.dataset
    if dataset is None:
        raise ConfigError("this checkpoint does not record its dataset; pass --dataset NAME")
    budget = None if memory_budget is None else int(memory_budget * 1024**2)
    data = load_dataset(dataset, data_dir, in_channels=loaded.model.cfg.input_size[0], image_size=loaded.data_size,
                        memory_budget_bytes=budget)
    if len(data.classes) != len(loaded.classes):
        raise ConfigError(f"{dataset} has {len(data.classes)} classes but the model predicts {len(loaded.classes)}")
    side = choose_input_side(loaded.model.cfg, data.test.image_size[-1], loaded.input.size)
    target = resolve_device(device)
    return evaluate(loaded.model, data.test.pad_to(side).to(target), loaded.input.eval_pipeline(views),
                    num_classes=len(loaded.classes), batch_size=batch_size, device=target)


# Datasets of light objects centred on black: photos are prepared as these were (see cnnzoo.data.photos).
MNIST_LIKE = ("mnist", "fashion-mnist")


def _decode(loaded: LoadedModel, path: Path, prepare: bool) -> tuple[torch.Tensor, dict]:
    """One image as the model's uint8 input before padding, and what was done to it."""
    channels = loaded.model.cfg.input_size[0]
    if not (prepare and loaded.dataset in MNIST_LIKE and channels == 1):
        return load_image(path, channels=channels, size=loaded.data_size), {}
    array, steps = prepare_like_mnist(open_image(path, 1), loaded.data_size)
    note = {"prepared": steps}
    warning = unlike_training(array, loaded.input.mean[0])
    if warning:
        note["warning"] = warning
    return torch.from_numpy(array).unsqueeze(0), note


@torch.no_grad()
def predict_files(loaded: LoadedModel, paths: list[Path], *, top_k: int = 5, views: str = "center",
                  prepare: bool = True) -> list[dict]:
    """Class probabilities for each image file: [{"file", "predictions": [{"class", "index", "probability"}],
    "prepared": [steps], "warning": ...}].

    Images are decoded with Pillow, converted to the model's channels (grey ↔ RGB), resized to the size it
    was trained on and normalised with the training statistics. For a model trained on MNIST or Fashion-MNIST
    (and unless ``prepare`` is False) a photo is first prepared as those datasets were: inverted if its
    background is light, trimmed, resized by its longest side and padded to a square; a result whose
    brightness is far from the training images' carries a warning. A missing path, a directory or anything but
    a regular file (a FIFO would block) is refused with a one-line error naming it (``load_image``).
    """
    if not paths:
        return []
    decoded = [_decode(loaded, Path(p), prepare) for p in paths]
    # pad as training did (e.g. 28 → 32 for LeNet-1998)
    images = pad_images(torch.stack([image for image, _ in decoded]), loaded.input.size)
    device = next(loaded.model.parameters()).device
    log_probs = predict_logits(loaded.model, images, loaded.input.eval_pipeline(views), device=device)
    probabilities = log_probs.exp().cpu()
    k = min(top_k, probabilities.shape[1])
    results = []
    for path, row, (_, note) in zip(paths, probabilities, decoded):
        values, indices = row.topk(k)
        results.append({"file": str(path), "predictions": [
            {"class": loaded.classes[i], "index": int(i), "probability": round(float(v), 6)}
            for v, i in zip(values, indices)], **note})
    return results
