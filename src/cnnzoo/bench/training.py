"""Training throughput: cnnzoo's engine against a tutorial-style PyTorch loop, same model, batch and
data.

The baseline is written the way tutorials write it: a ``Dataset`` whose ``__getitem__`` turns one
uint8 image into a normalised float tensor, a ``DataLoader`` that shuffles and collates per sample,
NCHW fp32 tensors, and the usual zero_grad / backward / step. Two such datasets: ``"tensor"``
converts the stored uint8 tensor, and ``"pil"`` does what torchvision's FashionMNIST with
``ToTensor()`` and ``Normalize`` does (and so what the d2l book's loaders do): a PIL image per
sample, converted to a float array and normalised. cnnzoo's side is its engine's own step: the
dataset as one tensor, batches cut by index, augmentation and normalisation on whole batches, and
the precision and memory layout the autotuner measured fastest for the model on this machine
(``engine.autotune``; from its cache when it has them). On a GPU (``device``) the tutorial moves
each batch to it, as tutorials do, and cnnzoo keeps the whole dataset there. Every side trains its
own copy of the same freshly built model for the same number of images.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from cnnzoo.bench.timing import compare_each
from cnnzoo.data.tensors import ImageTensors
from cnnzoo.engine.autotune import tuned_for
from cnnzoo.engine.inputs import InputSpec, channel_statistics
from cnnzoo.engine.loop import StepSettings, training_step
from cnnzoo.engine.machine import machine_name
from cnnzoo.engine.runtime import synchronize
from cnnzoo.engine.state import Trainable
from cnnzoo.errors import ConfigError
from cnnzoo.models.registry import create_model


class TutorialDataset(Dataset):
    """One image at a time, converted and normalised in Python, as in most tutorials."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, mean: list[float],
                 std: list[float]) -> None:
        self.images, self.labels = images, labels
        self.mean = torch.tensor(mean).view(-1, 1, 1)
        self.std = torch.tensor(std).view(-1, 1, 1)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int):
        image = self.images[index].float() / 255.0
        return (image - self.mean) / self.std, int(self.labels[index])


class PILDataset(TutorialDataset):
    """torchvision's way: each sample becomes a PIL image, then ToTensor (float in [0, 1], CHW) and
    Normalize."""

    def __getitem__(self, index: int):
        pixels = self.images[index].permute(1, 2, 0).numpy()  # HWC uint8
        image = Image.fromarray(pixels[:, :, 0] if pixels.shape[2] == 1 else pixels)
        array = np.asarray(image, dtype=np.float32) / 255.0
        tensor = torch.from_numpy(array.reshape(*array.shape[:2], -1)).permute(2, 0, 1)
        return (tensor - self.mean) / self.std, int(self.labels[index])


BASELINE_DATASETS = {"tensor": TutorialDataset, "pil": PILDataset}


def _tutorial_epoch(model, loader, optimizer, limit: int, device: torch.device) -> int:
    model.train()
    seen = 0
    for images, labels in loader:
        images, labels = images.to(device), labels.to(device)
        optimizer.zero_grad()
        loss = F.cross_entropy(model(images), labels)
        loss.backward()
        optimizer.step()
        seen += labels.numel()
        if seen >= limit:
            break
    synchronize(device)
    return seen


def _cnnzoo_epoch(trainable: Trainable, data: ImageTensors, augment, batch_size: int, limit: int,
                  settings: StepSettings) -> int:
    trainable.model.train()
    seen = 0
    for images, labels in data.batches(batch_size, shuffle=True, generator=trainable.generator,
                                       drop_last=True):
        training_step(trainable.model, trainable.model, images, labels, augment=augment,
                      trainable=trainable, settings=settings)
        seen += labels.numel()
        if seen >= limit:
            break
    synchronize(settings.device)
    return seen


def training_throughput(model_name: str, images: torch.Tensor, labels: torch.Tensor, *,
                        batch_size: int = 128,
                        images_per_run: int = 10_000, repeats: int = 3, num_workers: int = 0,
                        model_kwargs: dict | None = None,
                        baselines: tuple[str, ...] = tuple(BASELINE_DATASETS),
                        device: torch.device | str = "cpu") -> list[dict]:
    """Images/s of each tutorial loop and of cnnzoo's loop on ``images`` (uint8 N×C×H×W), one row
    per baseline with its ratio; ``baselines`` names the tutorial datasets, ``"tensor"`` and/or
    ``"pil"`` (see the module's docstring). Every loop trains its own copy of the same freshly built
    model."""
    unknown = sorted(set(baselines) - set(BASELINE_DATASETS))
    if unknown or not baselines:
        raise ConfigError(f"baselines must be some of {sorted(BASELINE_DATASETS)}; got "
                          f"{list(baselines)}")
    kwargs = {"num_classes": int(labels.max()) + 1, "in_channels": images.shape[1],
              **(model_kwargs or {})}
    device = torch.device(device)
    torch.manual_seed(0)
    reference = create_model(model_name, **kwargs)
    mean, std = channel_statistics(images)

    def tutorial_run(baseline: str):
        model = create_model(model_name, **kwargs).to(device)
        model.load_state_dict(reference.state_dict())
        loader = DataLoader(BASELINE_DATASETS[baseline](images, labels, mean, std),
                            batch_size=batch_size,
                            shuffle=True, num_workers=num_workers, drop_last=True)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        return lambda: _tutorial_epoch(model, loader, optimizer, images_per_run, device)

    tuning = tuned_for(model_name, create_model(model_name, **kwargs), batch_size=batch_size,
                       device=device, input_size=tuple(images.shape[1:]))
    layout = torch.channels_last if tuning.channels_last else torch.contiguous_format
    cnnzoo_model = create_model(model_name, **kwargs).to(device=device, memory_format=layout)
    cnnzoo_model.load_state_dict(reference.state_dict())
    zoo_opt = torch.optim.SGD(cnnzoo_model.parameters(), lr=0.01, momentum=0.9)
    data = ImageTensors(images, labels).to(device)
    augment = InputSpec(size=images.shape[-1], mean=mean, std=std).train_pipeline(
        flip=False, pca_std=0.0
    )
    trainable = Trainable(
        cnnzoo_model,
        zoo_opt,
        torch.amp.GradScaler(device.type, enabled=tuning.precision == "fp16"),
        None,
        torch.Generator().manual_seed(0),
    )
    settings = StepSettings(device, tuning.precision, layout)
    results = compare_each(
        {baseline: tutorial_run(baseline) for baseline in baselines},
        lambda: _cnnzoo_epoch(trainable, data, augment, batch_size, images_per_run, settings),
        repeats=repeats,
    )
    return [{"model": model_name, "baseline": baseline, "batch_size": batch_size,
             "images_per_run": images_per_run,
             "device": device.type, "machine": machine_name(device.type),
             "precision": tuning.precision,
             "channels_last": tuning.channels_last,
             "chosen_by": tuning.source, "dataloader_workers": num_workers, **result}
            for baseline, result in results.items()]
