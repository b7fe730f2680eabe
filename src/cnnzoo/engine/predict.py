"""Using a trained model: load it back from a run or checkpoint, evaluate it on a dataset, classify image files."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image
from torch import nn
from torch.nn.modules.module import (register_module_buffer_registration_hook,
                                     register_module_module_registration_hook,
                                     register_module_parameter_registration_hook)

from cnnzoo.data.folder import image_tensor, load_image, open_image
from cnnzoo.data.photos import prepare_like_mnist, unlike_training
from cnnzoo.data.dataset import pad_images
from cnnzoo.data.loading import load_dataset
from cnnzoo.engine.checkpoint import CheckpointError, load_checkpoint
from cnnzoo.engine.evaluate import EvalResult, evaluate, log_probabilities
from cnnzoo.engine.inputs import InputSpec, choose_input_side
from cnnzoo.engine.runtime import resolve_device
from cnnzoo.errors import CnnzooError, ConfigError, suggest
from cnnzoo.models.base import ModelConfig
from cnnzoo.models.registry import create_model, get_builder, list_models

# What a checkpoint's metadata may ask for; checked before anything is built or allocated.
MAX_SIDE = 4096  # image side (input.size, data_size): one 4096×4096 RGB image is 200 MB of floats
MAX_PARAMETERS = 500_000_000  # the largest model in the zoo, VGG-19, has 144 M
MAX_PARTS = 5_000  # modules, parameters and buffers: the deepest, DenseNet-201, has 2,024


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

    cnnzoo checkpoints say which model they hold; a plain state dict (``.pt``) needs ``model_name``. The
    metadata is checked before anything is built: the model is first built on the meta device (no memory) and
    compared with the file's weights, so what is then allocated is what the file holds. Anything that does not
    fit is a ``CheckpointError`` naming the file.
    """
    path = checkpoint_path(source)
    checkpoint = load_checkpoint(path)
    meta = checkpoint.meta
    name = _model_name(path, meta, model_name)
    kwargs = meta.get("model_kwargs", {})
    if not isinstance(kwargs, dict):
        raise _damaged(path, f"'model_kwargs' is {_shown(kwargs)}, not an object of builder arguments")
    cfg = _check_model(path, name, kwargs, checkpoint.model_state)
    spec = _input_spec(path, meta.get("input"), cfg)
    classes = _classes(path, meta.get("classes"), cfg)
    data_size = _whole(path, "data_size", meta.get("data_size", spec.size), 1, MAX_SIDE)
    dataset = meta.get("dataset")
    if dataset is not None and not isinstance(dataset, str):
        raise _damaged(path, f"'dataset' is {_shown(dataset)}, not a data set's name")
    model = create_model(name, **kwargs)
    try:
        model.load_state_dict(checkpoint.model_state)
    except RuntimeError as error:
        first = str(error).splitlines()[0]
        raise CheckpointError(f"{path}: its weights do not fit {name} ({first})") from None
    model = model.to(resolve_device(device)).eval()
    return LoadedModel(model, name, classes, spec, dataset, path, data_size)


def _damaged(path: Path, what: str) -> CheckpointError:
    return CheckpointError(f"{path}: {what}; the checkpoint's metadata is damaged or was not written by cnnzoo: use "
                           f"another checkpoint of the run, or train again")


def _shown(value: object) -> str:
    text = json.dumps(value)
    return text if len(text) <= 40 else text[:40] + "…"


def _model_name(path: Path, meta: dict, model_name: str | None) -> str:
    if "model" not in meta:
        if model_name is None:
            raise CheckpointError(f"{path} holds bare weights and does not say which model they belong to; "
                                  f"pass --model NAME")
        return model_name
    name = meta["model"]
    if not isinstance(name, str):
        raise _damaged(path, f"'model' is {_shown(name)}, not a model name")
    if name not in list_models():
        close = suggest(name, list_models()) if len(name) < 100 else ""
        raise CheckpointError(f"{path}: holds a model named {_shown(name)}, which this version of cnnzoo does not "
                              f"have.{close} `cnnzoo list` shows the models it has")
    return name


class _TooManyParts(Exception):
    pass


@contextmanager
def _at_most_parts(limit: int) -> Iterator[None]:
    """Stop (``_TooManyParts``) a model construction that registers more than ``limit`` modules, parameters and
    buffers together: counted as they are made, since a builder may make all its layers before it nests them."""
    count = 0

    def count_part(*args) -> None:
        nonlocal count
        count += 1
        if count > limit:
            raise _TooManyParts

    handles = [register(count_part) for register in (register_module_module_registration_hook,
                                                     register_module_parameter_registration_hook,
                                                     register_module_buffer_registration_hook)]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def _check_model(path: Path, name: str, kwargs: dict, state: dict[str, torch.Tensor]) -> ModelConfig:
    """Build ``name`` with ``kwargs`` on the meta device and check it against the weights in the file: its
    size, then every tensor's name and shape. Returns its configuration."""
    builder = get_builder(name)
    try:
        # a long list in the options (an MLP's hidden sizes) means as many layers, slow to make even on meta
        with _at_most_parts(MAX_PARTS), torch.device("meta"):
            model = builder(**kwargs)
    except _TooManyParts:
        raise CheckpointError(f"{path}: its model_kwargs describe {name} with more than {MAX_PARTS:,} modules, "
                              f"parameters and buffers (DenseNet-201 has 2,024); the file is damaged") from None
    except (CnnzooError, TypeError, ValueError, ArithmeticError, LookupError, RuntimeError) as error:
        detail = (str(error).splitlines() or [""])[0][:200]
        raise CheckpointError(f"{path}: its model_kwargs do not build {name} ({type(error).__name__}: {detail}); "
                              f"the file is damaged or was written by another version of cnnzoo") from None
    parameters = sum(p.numel() for p in model.parameters())
    if parameters > MAX_PARAMETERS:
        raise CheckpointError(f"{path}: its metadata describes {name} with {parameters:,} parameters, more than "
                              f"the {MAX_PARAMETERS:,} cnnzoo loads; the file is damaged")
    misfit = _misfit({k: tuple(v.shape) for k, v in model.state_dict().items()},
                     {k: tuple(v.shape) for k, v in state.items()})
    if misfit:
        raise CheckpointError(f"{path}: its weights do not fit {name} as its metadata describes it ({misfit}); "
                              f"for bare weights, pass the --model they were trained as")
    return model.cfg


def _misfit(expected: dict[str, tuple], found: dict[str, tuple]) -> str:
    """What differs between the tensor shapes a model expects and those a file holds ('' when nothing)."""

    def some(names: list[str]) -> str:
        return ", ".join(map(_shown, names[:3])) + (f" and {len(names) - 3} more" if len(names) > 3 else "")

    missing, unexpected = sorted(set(expected) - set(found)), sorted(set(found) - set(expected))
    reshaped = sorted(k for k in set(expected) & set(found) if expected[k] != found[k])
    problems = ([f"missing {some(missing)}"] if missing else []) + ([f"unexpected {some(unexpected)}"]
                                                                    if unexpected else [])
    if reshaped:
        key = reshaped[0]
        problems.append(f"{_shown(key)} is {_shape(found[key])} in the file but {_shape(expected[key])} in the model"
                        + (f" ({len(reshaped) - 1} more differ)" if len(reshaped) > 1 else ""))
    return "; ".join(problems)


def _shape(shape: tuple) -> str:
    return "×".join(map(str, shape)) or "a scalar"


def _whole(path: Path, key: str, value: object, low: int, high: int) -> int:
    if type(value) is not int or not low <= value <= high:
        raise _damaged(path, f"{key} is {_shown(value)}, not a whole number from {low} to {high:,}")
    return value


def _numbers(path: Path, key: str, value: object, count: int, *, positive: bool = False) -> list[float]:
    if not (isinstance(value, list) and len(value) == count
            and all(type(v) in (int, float) and math.isfinite(v) and (v > 0 or not positive) for v in value)):
        kind = ("positive" if positive else "finite") + (" number" if count == 1 else " numbers")
        raise _damaged(path, f"{key} is {_shown(value)}, not a list of {count} {kind} (one per input channel)")
    return [float(v) for v in value]


def _input_spec(path: Path, saved: object, cfg: ModelConfig) -> InputSpec:
    """The input the checkpoint records (side, normalisation, crop padding), checked against its model."""
    if saved is None:  # bare weights: the model's own defaults
        return InputSpec(size=cfg.input_size[1], mean=list(cfg.mean), std=list(cfg.std))
    keys = {"size", "mean", "std", "crop_padding"}
    if not isinstance(saved, dict) or not {"size", "mean", "std"} <= set(saved) <= keys:
        raise _damaged(path, f"'input' is {_shown(saved)}, not an object of {', '.join(sorted(keys))}")
    channels, side = cfg.input_size[0], cfg.input_size[1]
    size = _whole(path, "input.size", saved["size"], 1, MAX_SIDE)
    if size != side:
        raise _damaged(path, f"input.size is {size}, but its model_kwargs build {cfg.name} for {side}×{side} images")
    return InputSpec(size=size, mean=_numbers(path, "input.mean", saved["mean"], channels),
                     std=_numbers(path, "input.std", saved["std"], channels, positive=True),
                     crop_padding=_whole(path, "input.crop_padding", saved.get("crop_padding", 0), 0, MAX_SIDE))


def _classes(path: Path, saved: object, cfg: ModelConfig) -> list[str]:
    if saved is None:
        return [str(i) for i in range(cfg.num_classes)]
    if not isinstance(saved, list) or not all(isinstance(name, str) for name in saved):
        raise _damaged(path, f"'classes' is {_shown(saved)}, not a list of class names")
    if len(saved) != cfg.num_classes:
        raise _damaged(path, f"'classes' names {len(saved)} classes, but its {cfg.name} has {cfg.num_classes} outputs")
    return saved


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


# Datasets of light objects centred on black, and the side of the box their objects fill: photos are prepared
# as these were (see cnnzoo.data.photos). MNIST's digits were fitted in 20×20, Fashion-MNIST's items fill 28×28.
MNIST_LIKE = {"mnist": 20, "fashion-mnist": None}


def _decode(loaded: LoadedModel, path: Path, prepare: bool) -> tuple[torch.Tensor, dict]:
    """One image as the model's uint8 input before padding, and what was done to it."""
    channels = loaded.model.cfg.input_size[0]
    if not (prepare and loaded.dataset in MNIST_LIKE and channels == 1):
        return load_image(path, channels=channels, size=loaded.data_size), {}
    return prepare_image(loaded, open_image(path, 1), prepare)


def prepare_image(loaded: LoadedModel, image: Image.Image, prepare: bool = True) -> tuple[torch.Tensor, dict]:
    """A decoded image (already checked, any mode) as the model's uint8 input before padding, and what was done
    to it: prepared as MNIST's images were for a model trained on them (see ``predict_files``), else resized."""
    channels = loaded.model.cfg.input_size[0]
    if not (prepare and loaded.dataset in MNIST_LIKE and channels == 1):
        return image_tensor(image.convert("L" if channels == 1 else "RGB"), loaded.data_size), {}
    array, steps = prepare_like_mnist(image, loaded.data_size, MNIST_LIKE[loaded.dataset])
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
    log_probs = log_probabilities(loaded.model, images, loaded.input.eval_pipeline(views), device=device)
    probabilities = log_probs.exp().cpu()
    k = min(top_k, probabilities.shape[1])
    results = []
    for path, row, (_, note) in zip(paths, probabilities, decoded):
        values, indices = row.topk(k)
        results.append({"file": str(path), "predictions": [
            {"class": loaded.classes[i], "index": int(i), "probability": round(float(v), 6)}
            for v, i in zip(values, indices)], **note})
    return results
