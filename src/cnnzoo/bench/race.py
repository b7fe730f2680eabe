"""A race on one machine, in one run: the notes' tutorial loop, then cnnzoo's fast recipe given the
same time.

The tutorial trains the notes' 2-conv network (``convnet``) the way the notes write it: the images
as float tensors in [0, 1] in a ``TensorDataset``, a plain ``DataLoader`` (shuffled, batch 256), SGD
at lr 0.05 without momentum, fp32 NCHW eager, 10 epochs, then one evaluation on the test set. cnnzoo
then runs its ``fast`` recipe with the tutorial's training seconds as its time budget (its
autotuning included in that time) and evaluates after every epoch. Both sides' seconds are training
wall time, evaluation excluded. From cnnzoo's per-epoch test accuracies comes the time it needed to
reach the tutorial's final accuracy; the tutorial's time over that is the speed-up. That time is
read at epoch ends, so it is an upper bound (and the speed-up a lower bound) when an epoch passes
the tutorial's accuracy part-way through. Both sides see the same training images (the same seeded
subset when one is asked for) and are scored on the same test images.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from cnnzoo.console import Log, log_to_stderr
from cnnzoo.data.loading import load_dataset
from cnnzoo.engine.machine import machine_name
from cnnzoo.engine.prepare import subset_indices
from cnnzoo.engine.train import train
from cnnzoo.models.registry import create_model
from cnnzoo.recipes import load_recipe
from cnnzoo.rundir import read_metrics

TUTORIAL = {"model": "convnet", "batch_size": 256, "lr": 0.05, "epochs": 10}


def tutorial_run(train_images: torch.Tensor, train_labels: torch.Tensor, test_images: torch.Tensor,
                 test_labels: torch.Tensor, *, epochs: int, seed: int = 0) -> dict:
    """The notes' loop on uint8 images; its test accuracy and training seconds."""
    torch.manual_seed(seed)
    model = create_model(TUTORIAL["model"], num_classes=10, in_channels=train_images.shape[1],
                         input_size=train_images.shape[-1])
    loader = DataLoader(TensorDataset(train_images.float() / 255.0, train_labels),
                        batch_size=TUTORIAL["batch_size"], shuffle=True)
    optimizer = torch.optim.SGD(model.parameters(), lr=TUTORIAL["lr"])
    started = time.perf_counter()
    model.train()
    for _ in range(epochs):
        for images, labels in loader:
            optimizer.zero_grad()
            loss = F.cross_entropy(model(images), labels)
            loss.backward()
            optimizer.step()
    seconds = time.perf_counter() - started
    model.eval()
    correct = 0
    with torch.no_grad():
        for start in range(0, len(test_labels), 1000):
            logits = model(test_images[start:start + 1000].float() / 255.0)
            correct += (logits.argmax(1) == test_labels[start:start + 1000]).sum().item()
    return {**TUTORIAL, "epochs": epochs, "test_top1": correct / len(test_labels),
            "seconds": round(seconds, 2)}


def seconds_to_reach(history: list[dict], tuning_seconds: float, accuracy: float) -> float | None:
    """Training seconds (measuring included) until the first epoch whose test accuracy reached
    ``accuracy``; under ``--eval-every`` only evaluated epochs can, so the figure is rounded up to
    the next evaluation."""
    elapsed = tuning_seconds
    for row in history:
        elapsed += float(row["epoch_seconds"])
        if row["test_top1"] is not None and float(row["test_top1"]) >= accuracy:
            return round(elapsed, 2)
    return None


def race(*, dataset: str = "fashion-mnist", data_dir: str | None = None,
         recipe: str = "budgetnet-fast", epochs: int = TUTORIAL["epochs"],
         train_subset: int | None = None, test_subset: int | None = None, cnnzoo_epochs: int = 1000,
         out: Path = Path("runs/bench-race"), log: Log = log_to_stderr,
         stage: Log | None = None) -> dict:
    """The tutorial for ``epochs``, then ``recipe`` for as long (at most ``cnnzoo_epochs`` epochs);
    ``stage`` hears the name of each of the three stages (default: a line each on ``log``)."""
    stage = stage or (lambda name: log(f"race: {name} …"))
    stage(f"loading {dataset}")
    data = load_dataset(dataset, data_dir)
    keep = subset_indices(len(data.train.labels), train_subset, 0)
    kept_test = subset_indices(len(data.test.labels), test_subset, 0)
    stage(f"the tutorial's {TUTORIAL['model']} for {epochs} epochs on {len(keep):,} images")
    tutorial = tutorial_run(data.train.images[keep], data.train.labels[keep],
                            data.test.images[kept_test], data.test.labels[kept_test], epochs=epochs)
    log(f"  tutorial: {tutorial['test_top1']:.2%} in {tutorial['seconds']:.1f} s")
    stage(f"cnnzoo's {recipe} in the same {tutorial['seconds']:.1f} s")
    config = load_recipe(recipe).train_config(
        dataset=dataset, data_dir=data_dir, train_subset=train_subset, test_subset=test_subset,
                                              seed=0, out=str(out),
        time_budget=tutorial["seconds"], epochs=cnnzoo_epochs)
    summary = train(config, overwrite=True, log=log)
    reached = seconds_to_reach(read_metrics(Path(summary["run_dir"])), summary["tuning"]["seconds"],
                               tutorial["test_top1"])
    cnnzoo = {"recipe": recipe, "model": summary["model"], "test_top1": summary["test_top1"],
              "seconds": summary["train_seconds"], "epochs": summary["epochs"],
              "precision": summary["precision"],
              "channels_last": summary["channels_last"], "compile": summary["compile"],
              "tuning": summary["tuning"]["source"], "seconds_to_tutorial_accuracy": reached}
    speedup = round(tutorial["seconds"] / reached, 2) if reached else None
    return {"machine": machine_name(), "threads": torch.get_num_threads(),
            "torch": torch.__version__,
            "train_images": len(keep), "test_images": len(kept_test), "tutorial": tutorial,
            "cnnzoo": cnnzoo, "speedup": speedup}
