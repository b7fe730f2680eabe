"""Using a trained model: class probabilities for image files, each prepared as the model's training images
were (``load_run`` gives the model and what it takes)."""

from __future__ import annotations

from pathlib import Path

import torch
from PIL import Image

from cnnzoo.data.dataset import pad_images
from cnnzoo.data.folder import image_tensor, load_image, open_image
from cnnzoo.data.photos import prepare_like_mnist, unlike_training
from cnnzoo.engine.evaluate import log_probabilities
from cnnzoo.engine.run import Run
from cnnzoo.errors import NonFiniteOutputError

# Datasets of light objects centred on black, and the side of the box their objects fill: photos are prepared
# as these were (see cnnzoo.data.photos). MNIST's digits were fitted in 20×20, Fashion-MNIST's items fill 28×28.
MNIST_LIKE = {"mnist": 20, "fashion-mnist": None}


def _decode(run: Run, path: Path, prepare: bool) -> tuple[torch.Tensor, dict]:
    """One image as the model's uint8 input before padding, and what was done to it."""
    channels = run.model.cfg.input_size[0]
    if not (prepare and run.dataset in MNIST_LIKE and channels == 1):
        return load_image(path, channels=channels, size=run.data_size), {}
    return prepare_image(run, open_image(path, 1), prepare)


def prepare_image(run: Run, image: Image.Image, prepare: bool = True) -> tuple[torch.Tensor, dict]:
    """A decoded image (already checked, any mode) as the model's uint8 input before padding, and what was done
    to it: prepared as MNIST's images were for a model trained on them (see ``predict_files``), else resized."""
    channels = run.model.cfg.input_size[0]
    if not (prepare and run.dataset in MNIST_LIKE and channels == 1):
        return image_tensor(image.convert("L" if channels == 1 else "RGB"), run.data_size), {}
    array, steps = prepare_like_mnist(image, run.data_size, MNIST_LIKE[run.dataset])
    note = {"prepared": steps}
    warning = unlike_training(array, run.input.mean[0])
    if warning:
        note["warning"] = warning
    return torch.from_numpy(array).unsqueeze(0), note


@torch.no_grad()
def predict_files(run: Run, paths: list[Path], *, top_k: int = 5, views: str = "center",
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
    decoded = [_decode(run, Path(p), prepare) for p in paths]
    # pad as training did (e.g. 28 → 32 for LeNet-1998)
    images = pad_images(torch.stack([image for image, _ in decoded]), run.input.size)
    device = next(run.model.parameters()).device
    log_probs = log_probabilities(run.model, images, run.input.eval_pipeline(views), device=device)
    probabilities = log_probs.exp().cpu()
    broken = [str(path) for path, row in zip(paths, probabilities, strict=True) if not torch.isfinite(row).all()]
    if broken:
        raise NonFiniteOutputError(f"{run.name} gave NaN or infinite outputs for {', '.join(broken[:3])}; its "
                                   f"weights are finite, so the input drove it out of range: check the image")
    k = min(top_k, probabilities.shape[1])
    results = []
    for path, row, (_, note) in zip(paths, probabilities, decoded, strict=True):
        values, indices = row.topk(k)
        results.append({"file": str(path), "predictions": [
            {"class": run.classes[i], "index": int(i), "probability": round(float(v), 6)}
            for v, i in zip(values, indices, strict=True)], **note})
    return results
