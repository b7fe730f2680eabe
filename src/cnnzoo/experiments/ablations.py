"""With-or-without checks of three design choices: LRN, overlapping pooling, BatchNorm.

Each trains the same network with the choice on and off, for the same number of epochs over the same images
(the papers' claims are per step, so the arms get equal steps, not equal seconds; the seconds are reported),
over several seeds, and compares the mean test accuracy:

- ``lrn`` — Krizhevsky et al. (2012), section 3.3: local response normalisation lowers the top-1 error by
  1.4% on ImageNet and the test error of a 4-layer CNN on CIFAR-10 from 13% to 11%.
  ``alexnet_small(lrn=True)`` against ``lrn=False``: 2 epochs over 8,000 images, 3 seeds.
- ``overlapping-pool`` — Krizhevsky et al. (2012), section 3.4: 3×3 pools with stride 2 (overlapping) instead of
  2×2 with stride 2 lower the top-1 error by 0.4%. ``alexnet_small(overlapping_pool=True/False)``, LRN off in
  both arms (it is beside the point and halves the CPU time): 2 epochs over 12,000 images, 3 seeds.
- ``batchnorm`` — Ioffe & Szegedy (2015): normalising each layer's inputs per mini-batch speeds training up
  (the same accuracy in 14 times fewer steps on ImageNet), so under the same short budget the normalised
  network should be ahead. ``lenet5_bn`` against ``lenet5``: 2 epochs over all 60,000 images, 5 seeds.

The AlexNet arms train with Adam (see ``ADAM`` for why) and test on the first 2,000 test images; LeNet with
SGD and momentum, tested on all 10,000.

The claim "held" when the with-arm's mean test accuracy beats the without-arm's by more than the seed-to-seed
spread (the larger of the two standard deviations): a difference smaller than that could be chance. With a
single seed there is no spread to compare against and any positive difference counts; the verdict says so.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from cnnzoo.experiments.base import ExperimentSettings, Outcome, finish, mean_std, pct, train_arms
from cnnzoo.figures import integer_ticks, new_figure

ALEXNET_PAPER = "Krizhevsky, Sutskever & Hinton, 2012 (AlexNet)"
# alexnet_small has no normalisation layer to keep its 8 layers' signal in range, and plain SGD leaves its
# starting plateau slowly: in 45 s of one-cycle training the AlexNet recipe reached 69% with SGD and 81% with
# Adam. Small batches give more steps for the same images at the same CPU throughput.
ADAM = dict(batch_size=32, optimizer="adam", lr=1e-3, weight_decay=0.0, schedule="cosine")
# lenet5 is shallow enough for SGD with momentum, the optimiser of the BatchNorm paper.
SGD = dict(batch_size=128, optimizer="sgd", lr=0.05, momentum=0.9, weight_decay=5e-4, schedule="onecycle")


@dataclass(frozen=True)
class Arm:
    label: str
    model: str
    model_kwargs: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Ablation:
    name: str
    title: str
    paper: str
    claim: str
    with_arm: Arm
    without_arm: Arm
    full: dict  # TrainConfig fields of the full run
    quick: dict  # ... and of the seconds-long smoke test
    default_seeds: int = 3


ABLATIONS = {
    "lrn": Ablation(
        name="lrn", title="Local response normalisation: with vs without",
        paper=f"{ALEXNET_PAPER}, section 3.3",
        claim="Local response normalisation after the first two convolutions improves test accuracy "
              "(top-1 error −1.4% on ImageNet; 13% → 11% test error on CIFAR-10 in the paper).",
        with_arm=Arm("lrn", "alexnet_small", {"lrn": True}),
        without_arm=Arm("no-lrn", "alexnet_small", {"lrn": False}),
        full=dict(ADAM, train_subset=8000, test_subset=2000, epochs=2),
        quick=dict(ADAM, train_subset=256, test_subset=256, epochs=1)),
    "overlapping-pool": Ablation(
        name="overlapping-pool", title="Overlapping pooling (3×3/2) vs non-overlapping (2×2/2)",
        paper=f"{ALEXNET_PAPER}, section 3.4",
        claim="Overlapping max-pooling (3×3 windows, stride 2) improves test accuracy over non-overlapping 2×2/2 "
              "pooling (top-1 error −0.4% on ImageNet in the paper).",
        with_arm=Arm("overlapping", "alexnet_small", {"overlapping_pool": True, "lrn": False}),
        without_arm=Arm("non-overlapping", "alexnet_small", {"overlapping_pool": False, "lrn": False}),
        full=dict(ADAM, train_subset=12000, test_subset=2000, epochs=2),
        quick=dict(ADAM, train_subset=256, test_subset=256, epochs=1)),
    "batchnorm": Ablation(
        name="batchnorm", title="Batch normalisation: lenet5_bn vs lenet5 under the same short budget",
        paper="Ioffe & Szegedy, 2015, 'Batch normalization: accelerating deep network training by reducing "
              "internal covariate shift'",
        claim="Batch normalisation speeds training up: under the same short training budget the normalised "
              "network reaches a higher test accuracy (the same accuracy in 14× fewer steps on ImageNet in the "
              "paper).",
        with_arm=Arm("batchnorm", "lenet5_bn"),
        without_arm=Arm("plain", "lenet5"),
        full=dict(SGD, train_subset=None, test_subset=None, epochs=2),
        quick=dict(SGD, train_subset=1000, test_subset=500, epochs=1),
        default_seeds=5),
}


def run(name: str, settings: ExperimentSettings) -> dict:
    spec = ABLATIONS[name]
    started = time.perf_counter()
    plan = spec.quick if settings.quick else spec.full
    seeds = settings.seed_list(spec.default_seeds)
    arms = train_arms(settings, name, seeds, {
        arm.label: dict(plan, model=arm.model, model_kwargs=dict(arm.model_kwargs))
        for arm in (spec.with_arm, spec.without_arm)})

    specs = {spec.with_arm.label: spec.with_arm, spec.without_arm.label: spec.without_arm}
    rows = [{"arm": label, "model": specs[label].model,
             "model_kwargs": " ".join(f"{k}={v}" for k, v in specs[label].model_kwargs.items()), "seed": arm.seed,
             "test_top1": arm.test_top1, "train_top1": arm.train_top1, "gap": arm.train_top1 - arm.test_top1,
             "epochs": len(arm.history), "train_seconds": arm.train_seconds, "diverged": arm.diverged}
            for label, runs in arms.items() for arm in runs]
    stats = {label: {key: mean_std([row[key] for row in rows if row["arm"] == label])
                     for key in ("test_top1", "train_top1", "gap", "train_seconds")} for label in arms}
    on, off = spec.with_arm.label, spec.without_arm.label
    (mean_on, std_on), (mean_off, std_off) = stats[on]["test_top1"], stats[off]["test_top1"]
    difference, spread = mean_on - mean_off, max(std_on, std_off)
    held = difference > 0 and difference > spread
    noise = (f"the seed-to-seed spread is {100 * spread:.2f} points" if len(seeds) > 1
             else "one seed only, so no spread to compare with")
    verdict = (f"Test accuracy over {len(seeds)} seed(s): {on} {pct(mean_on)} ± {100 * std_on:.2f}, {off} "
               f"{pct(mean_off)} ± {100 * std_off:.2f} (mean ± standard deviation); difference "
               f"{100 * difference:+.2f} points, and {noise}. Train–test gap: {on} "
               f"{100 * stats[on]['gap'][0]:.2f}, {off} {100 * stats[off]['gap'][0]:.2f} points.")
    summary_table = [{"arm": label, "model": specs[label].model, "seeds": len(seeds),
                      "test_top1_mean": s["test_top1"][0], "test_top1_std": s["test_top1"][1],
                      "train_top1_mean": s["train_top1"][0], "gap_mean": s["gap"][0],
                      "train_seconds_mean": s["train_seconds"][0]} for label, s in stats.items()]

    figure, (curves, finals) = new_figure(2)
    colours = {on: "tab:blue", off: "tab:red"}
    for label, runs in arms.items():
        for index, arm in enumerate(runs):
            curves.plot([row["epoch"] for row in arm.history], [row["test_top1"] for row in arm.history], "o-",
                        color=colours[label], alpha=0.7, label=label if index == 0 else None)
    curves.set(xlabel="epoch", ylabel="test top-1 accuracy", title="Test accuracy per epoch, every seed")
    integer_ticks(curves)
    curves.grid(alpha=0.3)
    curves.legend()
    for position, label in enumerate(arms):
        values = [row["test_top1"] for row in rows if row["arm"] == label]
        finals.plot([position] * len(values), values, "o", color=colours[label], alpha=0.6)
        mean, std = stats[label]["test_top1"]
        finals.errorbar([position + 0.15], [mean], yerr=[std], fmt="s", color="black", capsize=4)
    finals.set_xticks([0, 1], list(arms))
    finals.set(xlim=(-0.5, 1.5), ylabel="final test top-1 accuracy", title="Per seed, and mean ± std")
    finals.grid(alpha=0.3)
    figure.suptitle(spec.title)

    outcome = Outcome(
        name=name, title=spec.title, paper=spec.paper, claim=spec.claim, held=held, verdict=verdict,
        settings={**plan, "with": f"{spec.with_arm.model} {spec.with_arm.model_kwargs}",
                  "without": f"{spec.without_arm.model} {spec.without_arm.model_kwargs}", "seeds": len(seeds)},
        summary={"test_top1_mean": {on: mean_on, off: mean_off}, "test_top1_std": {on: std_on, off: std_off},
                 "difference": difference, "spread": spread, "seeds": len(seeds),
                 "gap_mean": {label: s["gap"][0] for label, s in stats.items()},
                 "train_seconds_mean": {label: s["train_seconds"][0] for label, s in stats.items()}},
        rows=rows, figure=figure, tables={"Mean over seeds": summary_table})
    return finish(outcome, settings, started)
