"""Two trained runs side by side (``cnnzoo compare``): say a paper's network and its modern version
trained on the same data with the same budget.

What is compared, and where each number comes from, so that it agrees with the other commands:

- accuracy: each run's predictions on the whole test set, by ``cnnzoo eval``'s path (the data padded
  to the model's side, the centre view, ``engine.evaluate.log_probabilities``), and its curves from
  metrics.csv;
- parameters and multiply-adds per layer: ``inspect.summary`` of the run's own model, what
  ``cnnzoo summary`` prints for it;
- first-layer kernels (``show filters``' tiles) and the same test image's feature maps at the stages
  ``train --snapshots`` keeps (the first with a map, the last at least 7 px wide);
- the test images where the two predictions differ, with which of the two was right.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from cnnzoo.data.names import same_dataset
from cnnzoo.engine.evaluate import log_probabilities
from cnnzoo.engine.run import Run
from cnnzoo.engine.snapshots import probe_stages
from cnnzoo.errors import ConfigError
from cnnzoo.figures import integer_ticks, new_figure
from cnnzoo.inspect.summary import summary
from cnnzoo.models.base import parameter_count
from cnnzoo.rundir import evaluated
from cnnzoo.visualize.activations import activations
from cnnzoo.visualize.drawing import MAGNITUDE_CMAP, colourise, mosaic, show_image
from cnnzoo.visualize.filters import kernel_tiles, kernels
from cnnzoo.visualize.source import display_image, model_input

COLOURS = ("#1f77b4", "#d62728")  # run A, run B in every panel


@dataclass
class Side:
    """One run as the comparison sees it."""

    run: Run
    history: list[dict]  # metrics.csv's rows
    predicted: torch.Tensor  # (N,) class index per test image
    layers: list[dict] = field(default_factory=list)  # per layer: name, type, output, params, macs

    @property
    def params(self) -> int:
        """The count `cnnzoo list` and `summary` lead with: trainable parameters (lenet5_1998's
        840 fixed RBF prototypes are in its layer rows, not here)."""
        return parameter_count(self.run.model)

    @property
    def macs(self) -> int:
        return sum(layer["macs"] for layer in self.layers)


@torch.no_grad()
def test_predictions(run: Run, test, batch_size: int = 500) -> tuple[torch.Tensor, torch.Tensor]:
    """(predicted class, true label) for every test image, as ``cnnzoo eval`` sees each image."""
    views = run.input.eval_pipeline("center")
    device = next(run.model.parameters()).device
    run.model.eval()
    predicted, labels = [], []
    for images, batch_labels in test.pad_to(run.input.size).batches(batch_size, shuffle=False):
        log_probs = log_probabilities(run.model, images, views, device=device)
        # eval's rule (topk), not argmax: they break ties differently, and LeNet-1998's saturated
        # RBF outputs tie often (124 of 10,000 Fashion-MNIST test images after 2 epochs)
        predicted.append(log_probs.topk(1, dim=1).indices[:, 0].cpu())
        labels.append(batch_labels.cpu())
    return torch.cat(predicted), torch.cat(labels)


def layer_table(run: Run) -> list[dict]:
    """Every layer ``cnnzoo summary`` lists for the run's model: name, type, output shape, params,
    multiply-adds."""
    result = summary(run.model, run.model.cfg.input_size)
    return [
        {
            "name": layer.name,
            "type": layer.type,
            "output": layer.output_shape,
            "params": layer.params,
            "macs": layer.macs,
        }
        for layer in result.layers
    ]


def check_comparable(a: Run, b: Run) -> None:
    """Two runs are compared on one test set: the same data set and classes."""
    for run in (a, b):
        if run.dataset is None:
            raise ConfigError(
                f"{run.name} is a bare model, not a trained run; compare takes two run directories "
                "(or checkpoints) trained on the same data set"
            )
    if not same_dataset(a.dataset, b.dataset) or a.classes != b.classes:
        raise ConfigError(
            f"the runs were trained on different data ({a.dataset} with {len(a.classes)} classes, "
            f"{b.dataset} with {len(b.classes)}); compare two runs of the same data set"
        )


def disagreements(a: torch.Tensor, b: torch.Tensor, labels: torch.Tensor) -> list[dict]:
    """The test images the two predictions differ on, in test-set order: index, true class, each
    run's prediction."""
    return [
        {"index": int(i), "true": int(labels[i]), "a": int(a[i]), "b": int(b[i])}
        for i in (a != b).nonzero().flatten()
    ]


def tally(rows: list[dict]) -> dict:
    """How the disagreements split: A right, B right, both wrong (differently)."""
    return {
        "a_right": sum(r["a"] == r["true"] for r in rows),
        "b_right": sum(r["b"] == r["true"] for r in rows),
        "both_wrong": sum(r["true"] not in (r["a"], r["b"]) for r in rows),
    }


def run_names(a: Run, b: Run) -> list[str]:
    """How the report calls the two runs: their models (a variant with its builder arguments), told
    apart when they are the same."""
    return [a.variant, b.variant] if a.variant != b.variant else [f"{a.variant} (A)",
                                                                  f"{b.variant} (B)"]


@dataclass
class Comparison:
    """Two runs' predictions on one test set: what the report, the figure and the explorer show."""

    sides: list[Side]
    names: list[str]
    rows: list[dict]  # ``disagreements``
    labels: torch.Tensor  # (N,) true class per test image
    images: torch.Tensor  # (N, C, H, W) uint8 test images, as stored


def compare_runs(a: Run, b: Run, tests: tuple, histories: tuple) -> Comparison:
    """Both runs' predictions on their test sets (``tests``: one per run, the same images in the
    same order, else a ``ConfigError``) with their metrics.csv rows (``histories``)."""
    check_comparable(a, b)
    sides, labels = [], None
    for run, test, history in zip((a, b), tests, histories, strict=True):
        predicted, truth = test_predictions(run, test)
        if labels is not None and not labels.equal(truth):
            raise ConfigError(
                f"the two runs read {run.dataset}'s test set differently (other images or order); "
                "compare needs the same test images"
            )
        labels = truth
        sides.append(Side(run, history, predicted, layer_table(run)))
    rows = disagreements(sides[0].predicted, sides[1].predicted, labels)
    return Comparison(sides, run_names(a, b), rows, labels, tests[0].images.cpu())


def build_report(comparison: Comparison, image: int) -> dict:
    """The numbers of ``cnnzoo compare --json``: each run's accuracy, cost and layers, how the test
    images split between the two, and every disagreement with its class names."""
    sides, labels, rows = comparison.sides, comparison.labels, comparison.rows
    classes = sides[0].run.classes
    runs = []
    for side, name in zip(sides, comparison.names, strict=True):
        best = max((row["test_top1"] for row in evaluated(side.history)), default=None)
        runs.append({
            "name": name,
            "model": side.run.name,
            "variant": side.run.variant,
            "checkpoint": str(side.run.checkpoint),
            "test_top1": int((side.predicted == labels).sum()) / len(labels),
            "best_epoch_top1": best,
            "epochs": len(side.history),
            "train_seconds": sum(row["epoch_seconds"] for row in side.history),
            "params": side.params,
            "macs": side.macs,
            "layers": side.layers,
        })
    a, b = (side.predicted for side in sides)
    agree = a == b
    named = [
        {**row, "true": classes[row["true"]], "a": classes[row["a"]], "b": classes[row["b"]]}
        for row in rows
    ]
    return {
        "dataset": sides[0].run.dataset,
        "test_images": len(labels),
        "image": image,
        "runs": runs,
        "disagree": len(rows),
        **tally(rows),
        # the images they agree on: both right, or both wrong with the same answer
        "both_right": int((agree & (a == labels)).sum()),
        "both_wrong_alike": int((agree & (a != labels)).sum()),
        "disagreements": named,
    }


def drawable(image: torch.Tensor) -> np.ndarray:
    """A stored (C, H, W) test image as an array images are drawn from: (H, W) or (H, W, 3)."""
    return image[0].numpy() if image.shape[0] == 1 else image.permute(1, 2, 0).numpy()


def _curves(ax, sides: list[Side], names: list[str]) -> None:
    """Accuracy as training recorded it, on the test images each run was scored on then (a
    ``--test-subset`` is said: the report's table scores every test image)."""
    for side, name, colour in zip(sides, names, COLOURS, strict=True):
        epochs, tested = [row["epoch"] for row in side.history], evaluated(side.history)
        subset = side.run.config.get("test_subset")
        on = f" ({subset:,} images)" if isinstance(subset, int) else ""
        ax.plot(
            [row["epoch"] for row in tested],
            [row["test_top1"] for row in tested],
            "s-",
            color=colour,
            ms=3,
            label=f"{name} test{on}",
        )
        ax.plot(
            epochs,
            [row["train_top1"] for row in side.history],
            "o--",
            color=colour,
            ms=3,
            alpha=0.6,
            label=f"{name} train",
        )
    ax.set(xlabel="epoch", ylabel="top-1 accuracy", title="accuracy recorded in training")
    integer_ticks(ax)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)


def _cost_bars(ax, side: Side, name: str, colour: str) -> None:
    """Params and multiply-adds of the layers that have either, on a log scale."""
    rows = [layer for layer in side.layers if layer["params"] or layer["macs"]]
    y = np.arange(len(rows))
    ax.barh(y - 0.2, [max(r["params"], 0.8) for r in rows], 0.4, color=colour, label="params")
    ax.barh(
        y + 0.2,
        [max(r["macs"], 0.8) for r in rows],
        0.4,
        color=colour,
        alpha=0.45,
        label="multiply-adds",
    )
    ax.set_yticks(y, [r["name"] for r in rows], fontsize=6)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_title(f"{name}: {side.params:,} params, {side.macs:,} MACs", fontsize=8)
    ax.legend(fontsize=6, loc="lower right")


def _kernel_panel(ax, run: Run, title: str) -> None:
    data = kernels(run.model)
    tiles, columns, _ = kernel_tiles(data["weights"][0])
    show_image(
        ax,
        mosaic(tiles, columns=columns, gap=max(1, tiles.shape[1] // 5)),
        title=f"{title}: {data['layer']} {tuple(data['shape'])}",
        fontsize=8,
    )


def stage_maps(run: Run, image: torch.Tensor) -> dict[str, torch.Tensor]:
    """The maps one uint8 test image gives at the stages snapshots keep: name → (maps, h, w)."""
    x = model_input(run, image[None])
    stages = probe_stages(run.model, x)
    return {name: value[0] for name, value in activations(run.model, x, list(stages)).items()}


def _maps_row(subfigure, sides: list[Side], names: list[str], image: torch.Tensor) -> None:
    maps = [stage_maps(side.run, image) for side in sides]
    axes = subfigure.subplots(1, 1 + sum(len(m) for m in maps))
    x = model_input(sides[0].run, image[None])[0]
    show_image(axes[0], display_image(x, sides[0].run).numpy(), title="the image", fontsize=8)
    panels = [
        (name, stage, value)
        for name, m in zip(names, maps, strict=True)
        for stage, value in m.items()
    ]
    for ax, (name, stage, value) in zip(axes[1:], panels, strict=True):
        shown = value[:16].float().numpy()
        sheet = mosaic(colourise(shown, MAGNITUDE_CMAP), columns=math.ceil(math.sqrt(len(shown))))
        show_image(ax, sheet, title=f"{name} {stage}\n{tuple(value.shape)}", fontsize=8)


def _disagreement_row(
    subfigure,
    rows: list[dict],
    images: torch.Tensor,
    classes: list[str],
    names: list[str],
    count: int,
) -> None:
    shown = rows[:count]
    axes = subfigure.subplots(1, max(count, 8), squeeze=False)[0]  # as wide whatever the count
    for ax in axes[len(shown) :]:
        ax.axis("off")
    for ax, row in zip(axes, shown, strict=False):
        show_image(ax, drawable(images[row["index"]]))
        ax.set_title(
            f"#{row['index']} {classes[row['true']]}\nA: {classes[row['a']]}\nB: "
            f"{classes[row['b']]}",
            fontsize=6,
        )
    if not shown:
        axes[0].text(0.5, 0.5, "the two agree on every test image", ha="center", fontsize=9)


def draw_comparison(
    sides: list[Side],
    names: list[str],
    rows: list[dict],
    images: torch.Tensor,
    *,
    image: int,
    count: int,
    title: str,
):
    """One figure: curves and per-layer costs; first-layer kernels; one test image's maps in each;
    the first ``count`` test images the two disagree on."""
    figure, _ = new_figure(1, width=13.0, height=14.0)
    figure.clear()
    top, middle, maps, bottom = figure.subfigures(4, 1, height_ratios=[1.4, 0.8, 0.9, 0.7])
    axes = top.subplots(1, 3)
    _curves(axes[0], sides, names)
    for ax, side, name, colour in zip(axes[1:], sides, names, COLOURS, strict=True):
        _cost_bars(ax, side, name, colour)
    for ax, side, name in zip(middle.subplots(1, 2), sides, names, strict=True):
        _kernel_panel(ax, side.run, name)
    _maps_row(maps, sides, names, images[image])
    maps.suptitle(f"test image #{image}: feature maps, each on its own scale", fontsize=9)
    _disagreement_row(bottom, rows, images, sides[0].run.classes, names, count)
    bottom.suptitle(
        f"{len(rows):,} test images where they disagree (the first {min(count, len(rows))}): true "
        f"class, then A = {names[0]} and B = {names[1]}",
        fontsize=9,
    )
    figure.suptitle(title, fontsize=11)
    return figure
