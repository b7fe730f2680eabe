"""Depth: does a deeper plain network train worse than a shallower one, and do shortcuts fix it?

He, Zhang, Ren & Sun (2016), section 4.2 and Figs. 1 and 6: on CIFAR-10 the 56-layer plain network
has a *higher training error* than the 20-layer one — not overfitting but an optimisation
difficulty, the "degradation problem" — while with identity shortcuts the 56-layer ResNet trains to
a lower error than the 20-layer ResNet.

Here: the paper's CIFAR networks ``plain20``, ``plain56``, ``resnet20`` and ``resnet56`` (built for
one input channel) on 28×28 Fashion-MNIST with the paper's optimiser (SGD, momentum 0.9, weight
decay 1e-4; batch 64 at rate 0.05, the paper's 128 at 0.1 scaled down) and the shape of its schedule
scaled to the budget: the paper divides the rate by 10 twice (at 32k and 48k of 64k iterations);
here twice too, at a third and two thirds of 12 epochs over the first 4,000 training images (the
engine's step schedule divides every N epochs, so the three stages are equal where the paper's are
2:1:1), meant to let ResNet-20's training error flatten in the last stage (the plot shows whether it
did). Training error is the last epoch's mean of the mini-batch errors; a run whose loss diverges
counts as chance (90%). Two parts, each judged by its interval over seeds (the seed pairs the four
nets): degradation, plain-56's training error minus plain-20's; and residual learning, ResNet-20's
minus ResNet-56's. The claim held when both did. Full mode takes about 18 minutes per seed on two
CPU cores.
"""

from __future__ import annotations

import time

from cnnzoo.experiments.base import (
    CHANCE_ERROR,
    ArmRun,
    ExperimentSettings,
    Outcome,
    finish,
    pct,
    train_arms,
)
from cnnzoo.experiments.verdict import Judgement, judge
from cnnzoo.figures import new_figure, plain_numbers

NAME = "depth"
PAPER = "He, Zhang, Ren & Sun, 2016 (ResNet), section 4.2, Figs. 1 and 6"
CLAIM = ("Degradation: a 56-layer plain network trains to a higher training error than a 20-layer "
         "one; with identity shortcuts the 56-layer ResNet trains to a lower training error than "
         "the 20-layer ResNet.")
MODELS = ("plain20", "plain56", "resnet20", "resnet56")
DEFAULT_SEEDS = 3
MINUTES_PER_SEED = 10.2  # the four nets, full mode; measured: 2-core Xeon (AMX), fp32, 2026-12-05
NEGLIGIBLE = 0.5  # points of training error

# The paper's recipe is batch 128 at rate 0.1; half the batch at half the rate (the linear scaling
# rule) gives twice the steps for the same images, which a short CPU budget needs.
COMMON = dict(batch_size=64, optimizer="sgd", lr=0.05, momentum=0.9, nesterov=False,
              weight_decay=1e-4, schedule="step")
FULL = dict(COMMON, train_subset=4000, test_subset=1000, epochs=12, step_epochs=4)
QUICK = dict(COMMON, train_subset=128, test_subset=128, epochs=2, step_epochs=1)


def judge_depth(arms: dict[str, list[ArmRun]]) -> tuple[list[Judgement], dict, str]:
    """The two parts of the claim, judged per seed: plain-56 trains worse than plain-20
    (degradation), and ResNet-56 trains better than ResNet-20. Returns the judgements, a summary
    and a verdict sentence."""
    error = {model: {arm.seed: arm.final_train_error for arm in runs}
             for model, runs in arms.items()}
    seeds = sorted(error["plain20"])

    def points(worse: str, better: str) -> list[float]:
        return [100 * (error[worse][s] - error[better][s]) for s in seeds]

    parts = [
        judge(points("plain56", "plain20"), measure="training error, plain-56 − plain-20 (points)",
              paper_figure="plain-56 above plain-20 throughout training (Figs. 1 and 6, left; no "
                           "table "
                           "value)", negligible=NEGLIGIBLE, claim="degradation of the plain net"),
        judge(points("resnet20", "resnet56"), measure="training error, ResNet-20 − ResNet-56 "
                                                      "(points)",
              paper_figure="ResNet-56 below ResNet-20 in training error (Fig. 6, middle); test "
                           "error 6.97% vs 8.75% (Table 6)", negligible=NEGLIGIBLE,
              claim="the residual net gains from depth"),
    ]
    mean = {model: sum(by_seed.values()) / len(by_seed) for model, by_seed in error.items()}
    verdict = (f"Final training error, mean over {len(seeds)} seed(s): plain-20 "
               f"{pct(mean['plain20'])}, plain-56 {pct(mean['plain56'])} (degradation "
               f"{parts[0].effect_text()} points: {parts[0].finding}); ResNet-20 "
               f"{pct(mean['resnet20'])}, ResNet-56 {pct(mean['resnet56'])} (gain "
               f"{parts[1].effect_text()} points: {parts[1].finding}).")
    return parts, {"final_train_error": mean}, verdict


def run(settings: ExperimentSettings) -> dict:
    started = time.perf_counter()
    plan = QUICK if settings.quick else FULL
    seeds = settings.seed_list(DEFAULT_SEEDS, MINUTES_PER_SEED)
    arms = train_arms(settings, NAME, seeds,
                      {model: dict(plan, model=model) for model in MODELS})

    rows = []
    for model, runs in arms.items():
        for arm in runs:
            rows.append(
                {
                    "model": model,
                    "depth": int(model.removeprefix("plain").removeprefix("resnet")),
                    "shortcuts": model.startswith("resnet"),
                    "seed": arm.seed,
                    "final_train_error": arm.final_train_error,
                    "final_test_error": 1.0 - arm.test_top1 if not arm.diverged else CHANCE_ERROR,
                    "train_errors_per_epoch": " ".join(
                        f"{1 - row['train_top1']:.4f}" for row in arm.history
                    ),
                    "params": arm.summary.get("params"),
                    "train_seconds": arm.train_seconds,
                    "diverged": arm.diverged,
                }
            )
    judgements, summary, verdict = judge_depth(arms)

    images = plan["train_subset"]
    figure, (train_ax, test_ax) = new_figure(2)
    styles = {"plain20": ("tab:red", "--", 1.2), "plain56": ("tab:red", "--", 2.5),
              "resnet20": ("tab:blue", "-", 1.2), "resnet56": ("tab:blue", "-", 2.5)}
    for model, runs in arms.items():
        colour, line, width = styles[model]
        for index, arm in enumerate(runs):
            seen = [row["epoch"] * images for row in arm.history]
            for ax, key in ((train_ax, "train_top1"), (test_ax, "test_top1")):
                ax.plot(seen, [1 - row[key] for row in arm.history], color=colour, linestyle=line,
                        linewidth=width, marker="o", label=model if index == 0 else None)
    train_ax.set(xlabel="training images seen", ylabel="training error (epoch mean)",
                 title="Training error")
    test_ax.set(xlabel="training images seen", ylabel="test error", title="Test error")
    for ax in (train_ax, test_ax):
        plain_numbers(ax, "x")  # images seen: 30,000, not 3 with "1e4" above the axis
        ax.grid(alpha=0.3)
        ax.legend()
    figure.suptitle("Plain vs residual CIFAR networks at depth 20 and 56 (dashed: plain, thick: "
                    "56 layers)")

    outcome = Outcome(
        name=NAME, title="Depth: degradation of plain networks, and residual learning",
                      paper=PAPER, claim=CLAIM,
        judgements=judgements, verdict=verdict, settings={**plan, "seeds": len(seeds)},
        summary=summary,
        rows=rows, figure=figure)
    return finish(outcome, settings, started)
