"""Dropout: the gap between training and test accuracy with and without dropout in the FC layers.

Krizhevsky, Sutskever & Hinton (2012), section 4.2: dropout (p = 0.5) in the first two fully connected layers;
"without dropout, our network exhibits substantial overfitting" (Hinton et al., 2012 and Srivastava et al.,
2014 introduce the method).

Here: ``alexnet_small`` with ``dropout=0.5`` and ``dropout=0.0`` trained on the first 2,000 Fashion-MNIST
images for 24 epochs (Adam, batches of 32: 1,500 steps) — few enough images that the network can memorise
them in the time — without weight decay, so that dropout is the only regulariser. LRN is switched off in both
arms: it is beside the point here and costs half the training time on a CPU. The training accuracy is
measured after training, in eval mode (dropout off), on the same images: the running accuracy during
training would understate the dropout network's fit, because it is measured with half its hidden units
dropped.
"""

from __future__ import annotations

import time
from pathlib import Path

from cnnzoo.experiments.base import ExperimentSettings, Outcome, finish, mean_std, pct, train_arms
from cnnzoo.figures import integer_ticks, new_figure

NAME = "dropout"
PAPER = "Krizhevsky, Sutskever & Hinton, 2012 (AlexNet), section 4.2"
CLAIM = ("Dropout (p = 0.5) in the hidden fully connected layers substantially reduces overfitting: the gap "
         "between training and test accuracy is smaller than without it.")
RATES = (0.5, 0.0)
DEFAULT_SEEDS = 1
HELD_MARGIN = 0.02  # "substantially": the gap must shrink by at least 2 percentage points

# Adam and small batches for the reason given in ablations.ADAM: alexnet_small leaves its starting plateau
# much sooner with Adam than with plain SGD.
COMMON = dict(model="alexnet_small", batch_size=32, optimizer="adam", lr=1e-3, weight_decay=0.0, schedule="cosine")
FULL = dict(COMMON, train_subset=2000, test_subset=2000, epochs=24)
QUICK = dict(COMMON, train_subset=256, test_subset=256, epochs=1)


def label(rate: float) -> str:
    return f"dropout{rate:g}"


def eval_mode_accuracy(run_dir: Path, images, labels) -> float:
    """Top-1 accuracy of a run's final weights on the given uint8 images, in eval mode (dropout off)."""
    from cnnzoo.data.dataset import pad_images
    from cnnzoo.data.tensors import ImageTensors
    from cnnzoo.engine.evaluate import evaluate
    from cnnzoo.engine.run import load_run
    from cnnzoo.rundir import LAST

    loaded = load_run(Path(run_dir) / LAST)
    data = ImageTensors(pad_images(images, loaded.input.size), labels)
    return evaluate(loaded.model, data, loaded.input.eval_pipeline("center"), num_classes=len(loaded.classes)).top1


def run(settings: ExperimentSettings) -> dict:
    from cnnzoo.data.loading import load_dataset
    from cnnzoo.engine.prepare import subset_indices

    started = time.perf_counter()
    plan = QUICK if settings.quick else FULL
    seeds = settings.seed_list(DEFAULT_SEEDS)
    by_label = train_arms(settings, NAME, seeds,
                          {label(rate): dict(plan, model_kwargs={"dropout": rate, "lrn": False}) for rate in RATES})
    arms = {rate: by_label[label(rate)] for rate in RATES}

    train = load_dataset("fashion-mnist", settings.data_dir).train
    rows = []
    for rate, runs in arms.items():
        for arm in runs:
            seen = subset_indices(len(train), plan["train_subset"], arm.seed)  # the images this arm trained on
            train_top1 = float("nan") if arm.diverged else eval_mode_accuracy(
                settings.run_dir / "arms" / f"{label(rate)}-seed{arm.seed}", train.images[seen], train.labels[seen])
            rows.append({"dropout": rate, "seed": arm.seed, "train_top1_eval_mode": train_top1,
                         "train_top1_while_training": arm.train_top1, "test_top1": arm.test_top1,
                         "gap": train_top1 - arm.test_top1, "epochs": len(arm.history),
                         "train_seconds": arm.train_seconds, "diverged": arm.diverged})

    def stats(rate: float, key: str) -> tuple[float, float]:
        return mean_std([row[key] for row in rows if row["dropout"] == rate])

    with_dropout, without = RATES
    gap_with, gap_without = stats(with_dropout, "gap")[0], stats(without, "gap")[0]
    test_with, test_without = stats(with_dropout, "test_top1")[0], stats(without, "test_top1")[0]
    train_with = stats(with_dropout, "train_top1_eval_mode")[0]
    train_without = stats(without, "train_top1_eval_mode")[0]
    held = gap_without - gap_with >= HELD_MARGIN
    verdict = (f"Without dropout: training accuracy {pct(train_without)}, test {pct(test_without)}, gap "
               f"{100 * gap_without:.2f} points; with dropout {with_dropout:g}: training {pct(train_with)}, test "
               f"{pct(test_with)}, gap {100 * gap_with:.2f} points. The gap shrank by "
               f"{100 * (gap_without - gap_with):.2f} points ('held' needs ≥ {100 * HELD_MARGIN:g}).")

    figure, (curves, bars) = new_figure(2)
    colours = {with_dropout: "tab:blue", without: "tab:red"}
    for rate, runs in arms.items():
        for index, arm in enumerate(runs):
            epochs = [row["epoch"] for row in arm.history]
            name = f"dropout {rate:g}" if index == 0 else None
            curves.plot(epochs, [row["train_top1"] for row in arm.history], color=colours[rate], linestyle="--",
                        marker=".", label=f"{name}: train (during training)" if name else None)
            curves.plot(epochs, [row["test_top1"] for row in arm.history], color=colours[rate], marker="o",
                        label=f"{name}: test" if name else None)
    integer_ticks(curves)
    curves.set(xlabel="epoch", ylabel="top-1 accuracy",
               title=f"alexnet_small, {plan['train_subset']:,} training images")
    curves.grid(alpha=0.3)
    curves.legend(fontsize=8)
    positions = range(len(RATES))
    bars.bar([p - 0.2 for p in positions], [stats(r, "train_top1_eval_mode")[0] for r in RATES], width=0.4,
             label="train (eval mode)")
    bars.bar([p + 0.2 for p in positions], [stats(r, "test_top1")[0] for r in RATES], width=0.4, label="test")
    bars.set_xticks(list(positions), [f"dropout {r:g}\ngap {100 * stats(r, 'gap')[0]:.1f} pts" for r in RATES])
    low = min(stats(r, "test_top1")[0] for r in RATES)
    bars.set(ylabel="top-1 accuracy", ylim=(max(0.0, low - 0.1), 1.0), title="Final accuracy")
    bars.legend(fontsize=8)

    outcome = Outcome(
        name=NAME, title="Dropout: train–test gap with and without", paper=PAPER, claim=CLAIM, held=held,
        verdict=verdict,
        settings={**plan, "model_kwargs": "dropout=0.5|0.0, lrn=False", "seeds": len(seeds)},
        summary={"gap": {"with_dropout": gap_with, "without_dropout": gap_without},
                 "test_top1": {"with_dropout": test_with, "without_dropout": test_without},
                 "train_top1_eval_mode": {"with_dropout": train_with, "without_dropout": train_without},
                 "gap_reduction": gap_without - gap_with},
        rows=rows, figure=figure)
    return finish(outcome, settings, started)
