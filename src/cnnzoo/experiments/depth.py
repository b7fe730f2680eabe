"""Depth: does a deeper plain network train worse than a shallower one, and do shortcuts fix it?

He, Zhang, Ren & Sun (2016), section 4.2 and Figs. 1 and 6: on CIFAR-10 the 56-layer plain network has a
*higher training error* than the 20-layer one — not overfitting but an optimisation difficulty, the
"degradation problem" — while with identity shortcuts the 56-layer ResNet trains to a lower error than the
20-layer ResNet.

Here: the paper's CIFAR networks ``plain20``, ``plain56``, ``resnet20`` and ``resnet56`` (built for one input
channel) on 28×28 Fashion-MNIST, with the paper's optimiser (SGD, momentum 0.9, weight decay 1e-4, the rate
held constant as in its first 32k iterations; batch 64 at rate 0.05, the paper's 128 at 0.1 scaled down) for
the same short budget: five passes over the first 5,000 training images, 390 steps. Training error is the
per-epoch mean of the mini-batch errors. The claim "held" when plain-56 ends with a higher training error
than plain-20 *and* ResNet-56 ends no higher than ResNet-20. A run whose loss diverges counts as
chance-level (90%) error.
"""

from __future__ import annotations

import time

from cnnzoo.experiments.base import ArmRun, ExperimentSettings, Outcome, finish, pct, train_arms
from cnnzoo.figures import new_figure, plain_numbers

NAME = "depth"
PAPER = "He, Zhang, Ren & Sun, 2016 (ResNet), section 4.2, Figs. 1 and 6"
CLAIM = ("Degradation: a 56-layer plain network trains to a higher training error than a 20-layer one; with "
         "identity shortcuts the 56-layer ResNet trains at least as well as the 20-layer ResNet.")
MODELS = ("plain20", "plain56", "resnet20", "resnet56")
DEFAULT_SEEDS = 1
CHANCE_ERROR = 0.9  # ten classes

# The paper's recipe is batch 128 at rate 0.1; half the batch at half the rate (the linear scaling rule) gives
# twice the steps for the same images, which a short CPU budget needs.
COMMON = dict(batch_size=64, optimizer="sgd", lr=0.05, momentum=0.9, nesterov=False, weight_decay=1e-4,
              schedule="constant")
FULL = dict(COMMON, train_subset=5000, test_subset=1000, epochs=5)
QUICK = dict(COMMON, train_subset=128, test_subset=128, epochs=1)


def final_train_error(arms: list[ArmRun]) -> float:
    """Mean over seeds of the last epoch's training error; a diverged run counts as chance."""
    errors = [CHANCE_ERROR if arm.diverged or not arm.history else 1.0 - arm.train_top1 for arm in arms]
    return sum(errors) / len(errors)


def judge(arms: dict[str, list[ArmRun]]) -> tuple[bool, dict, str]:
    """The verdict on the four arms: the claim held when plain-56 trains worse than plain-20 (degradation) and
    ResNet-56 trains at least as well as ResNet-20. Returns (held, summary, verdict sentence)."""
    error = {model: final_train_error(runs) for model, runs in arms.items()}
    degradation = error["plain56"] > error["plain20"]
    residual_ok = error["resnet56"] <= error["resnet20"]
    plain_text = ("degradation: the deeper plain net trains worse" if degradation
                  else "no degradation: the deeper plain net trains as well or better")
    residual_text = ("the deeper residual net trains at least as well" if residual_ok
                     else "the deeper residual net trains worse")
    verdict = (f"Final training error: plain-20 {pct(error['plain20'])}, plain-56 {pct(error['plain56'])} "
               f"({plain_text}); ResNet-20 {pct(error['resnet20'])}, ResNet-56 {pct(error['resnet56'])} "
               f"({residual_text}).")
    summary = {"final_train_error": error, "degradation": degradation, "residual_avoids_degradation": residual_ok}
    return degradation and residual_ok, summary, verdict


def run(settings: ExperimentSettings) -> dict:
    started = time.perf_counter()
    plan = QUICK if settings.quick else FULL
    seeds = settings.seed_list(DEFAULT_SEEDS)
    arms = train_arms(settings, NAME, seeds,
                      {model: dict(plan, model=model) for model in MODELS})

    rows = []
    for model, runs in arms.items():
        for arm in runs:
            rows.append({"model": model, "depth": int(model.removeprefix("plain").removeprefix("resnet")),
                         "shortcuts": model.startswith("resnet"), "seed": arm.seed,
                         "final_train_error": CHANCE_ERROR if arm.diverged else 1.0 - arm.train_top1,
                         "final_test_error": 1.0 - arm.test_top1 if not arm.diverged else CHANCE_ERROR,
                         "train_errors_per_epoch": " ".join(f"{1 - row['train_top1']:.4f}" for row in arm.history),
                         "params": arm.summary.get("params"), "train_seconds": arm.train_seconds,
                         "diverged": arm.diverged})
    held, summary, verdict = judge(arms)

    images = plan["train_subset"]
    figure, (train_ax, test_ax) = new_figure(2)
    styles = {"plain20": ("tab:red", "--", 1.2), "plain56": ("tab:red", "--", 2.5),
              "resnet20": ("tab:blue", "-", 1.2), "resnet56": ("tab:blue", "-", 2.5)}
    for model, runs in arms.items():
        colour, line, width = styles[model]
        for index, arm in enumerate(runs):
            seen = [row["epoch"] * images for row in arm.history]
            for ax, key in ((train_ax, "train_top1"), (test_ax, "test_top1")):
                ax.plot(seen, [1 - row[key] for row in arm.history], color=colour, linestyle=line, linewidth=width,
                        marker="o", label=model if index == 0 else None)
    train_ax.set(xlabel="training images seen", ylabel="training error (epoch mean)", title="Training error")
    test_ax.set(xlabel="training images seen", ylabel="test error", title="Test error")
    for ax in (train_ax, test_ax):
        plain_numbers(ax, "x")  # images seen: 30,000, not 3 with "1e4" above the axis
        ax.grid(alpha=0.3)
        ax.legend()
    figure.suptitle("Plain vs residual CIFAR networks at depth 20 and 56 (dashed: plain, thick: 56 layers)")

    outcome = Outcome(
        name=NAME, title="Depth: degradation of plain networks, and residual learning", paper=PAPER, claim=CLAIM,
        held=held, verdict=verdict, settings={**plan, "seeds": len(seeds)},
        summary=summary,
        rows=rows, figure=figure)
    return finish(outcome, settings, started)
