"""The shape most experiments share: a network with and without one choice, judged by an interval.

A ``Comparison`` names the two arms (the one the claim favours first), the training plans (full and
quick), the measure (final test accuracy, or the train-test gap, which the claim wants smaller) and
the paper's own figure. ``run_comparison`` trains both arms with every seed, writes a row per run,
takes the per-seed effect (claimed arm minus the other, in percentage points, signed so that
positive is what the paper claims) and lets ``verdict.judge`` read its interval. The experiment
files (``ablations``, ``dropout``, ``gap_vs_fc``, ...) are mostly a ``Comparison`` and a paragraph
saying why.

The training accuracy of a run is measured after training, in eval mode, on the images it trained
on, without augmentation (``eval_train=True``): the running accuracy during training sees dropped
units and augmented images, so it understates the fit and would shrink the gap for the regularised
arm by construction.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from cnnzoo.experiments.base import (
    ArmRun,
    ExperimentSettings,
    Outcome,
    finish,
    mean_std,
    pct,
    train_arms,
)
from cnnzoo.experiments.verdict import judge
from cnnzoo.figures import integer_ticks, new_figure

CHANCE = 0.1  # ten classes: what a diverged run knows
MEASURES = {"test_top1": "test top-1", "gap": "train − test top-1 gap"}


@dataclass(frozen=True)
class Arm:
    label: str
    model: str
    model_kwargs: dict = field(default_factory=dict)
    # TrainConfig fields this arm sets differently (lr, flip, ...)
    config: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Comparison:
    name: str
    title: str
    paper: str
    claim: str
    claimed: Arm  # the arm the claim favours
    other: Arm
    full: dict  # TrainConfig fields of the full run
    quick: dict  # ... and of the seconds-long smoke test
    paper_figure: str  # the paper's own number, in words, with where it is
    # full mode, both arms, on 2 CPU cores (measured or estimated; said up front)
    minutes_per_seed: float
    measure: str = "test_top1"  # or "gap" (smaller is what the claim wants)
    paper_effect: float | None = None  # in points of the measure, where the paper's figure is
    negligible: float = 0.25  # points: an interval inside ±this is no effect
    minimum: float = 0.0  # points the effect must exceed (negative: "not worse by more than")
    default_seeds: int = 3
    # measure training accuracy in eval mode on the un-augmented training images
    eval_train: bool = False
    notes: tuple[str, ...] = ()


def eval_mode_accuracy(run_dir: Path, images, labels) -> float:
    """Top-1 accuracy of a run's final weights on the given uint8 images, in eval mode (dropout
    off)."""
    from cnnzoo.data.dataset import pad_images
    from cnnzoo.data.tensors import ImageTensors
    from cnnzoo.engine.evaluate import evaluate
    from cnnzoo.engine.run import load_run
    from cnnzoo.rundir import LAST

    loaded = load_run(Path(run_dir) / LAST)
    data = ImageTensors(pad_images(images, loaded.input.size), labels)
    return evaluate(
        loaded.model, data, loaded.input.eval_pipeline("center"), num_classes=len(loaded.classes)
    ).top1


def _train_accuracies(
    spec: Comparison, settings: ExperimentSettings, plan: dict, arms: dict[str, list[ArmRun]]
) -> dict[tuple[str, int], float]:
    """(label, seed) -> eval-mode accuracy on the training images that run saw."""
    if not spec.eval_train:
        return {(label, arm.seed): arm.train_top1 for label, runs in arms.items() for arm in runs}
    from cnnzoo.data.loading import load_dataset
    from cnnzoo.engine.prepare import subset_indices

    train = load_dataset("fashion-mnist", settings.data_dir).train
    found = {}
    for label, runs in arms.items():
        for arm in runs:
            # the images this run trained on
            seen = subset_indices(len(train), plan["train_subset"], arm.seed)
            found[(label, arm.seed)] = (
                float("nan")
                if arm.diverged
                else eval_mode_accuracy(
                    settings.run_dir / "arms" / f"{label}-seed{arm.seed}",
                    train.images[seen],
                    train.labels[seen],
                )
            )
    return found


def make_rows(
    spec: Comparison, settings: ExperimentSettings, plan: dict, arms: dict[str, list[ArmRun]]
) -> list[dict]:
    """One row per run; a diverged run counts as chance on the test set (it has learnt nothing
    usable)."""
    specs = {spec.claimed.label: spec.claimed, spec.other.label: spec.other}
    train_top1 = _train_accuracies(spec, settings, plan, arms)
    rows = []
    for label, runs in arms.items():
        for arm in runs:
            test = CHANCE if arm.diverged else arm.test_top1
            train = train_top1[(label, arm.seed)]
            rows.append(
                {
                    "arm": label,
                    "model": specs[label].model,
                    "model_kwargs": " ".join(
                        f"{k}={v}" for k, v in specs[label].model_kwargs.items()
                    ),
                    "seed": arm.seed,
                    "test_top1": test,
                    "train_top1": train,
                    "gap": train - test,
                    "params": arm.summary.get("params"),
                    "epochs": len(arm.history),
                    "train_seconds": arm.train_seconds,
                    "diverged": arm.diverged,
                }
            )
    return rows


def per_seed_effects(spec: Comparison, rows: list[dict]) -> list[float]:
    """Claimed arm minus the other, per seed, in points; for the gap, the other minus the
    claimed."""
    value = {(row["arm"], row["seed"]): row[spec.measure] for row in rows}
    sign = -1 if spec.measure == "gap" else 1
    seeds = sorted({row["seed"] for row in rows})
    return [
        sign * 100 * (value[(spec.claimed.label, s)] - value[(spec.other.label, s)]) for s in seeds
    ]


def _plot(spec: Comparison, arms: dict[str, list[ArmRun]], rows: list[dict]):
    figure, (curves, finals) = new_figure(2)
    colours = {spec.claimed.label: "tab:blue", spec.other.label: "tab:red"}
    for label, runs in arms.items():
        for index, arm in enumerate(runs):
            curves.plot(
                [row["epoch"] for row in arm.history],
                [row["test_top1"] for row in arm.history],
                "o-",
                color=colours[label],
                alpha=0.7,
                label=label if index == 0 else None,
            )
    curves.set(
        xlabel="epoch", ylabel="test top-1 accuracy", title="Test accuracy per epoch, every seed"
    )
    integer_ticks(curves)
    curves.grid(alpha=0.3)
    curves.legend()
    for position, label in enumerate(arms):
        values = [row[spec.measure] for row in rows if row["arm"] == label]
        finals.plot([position] * len(values), values, "o", color=colours[label], alpha=0.6)
        mean, std = mean_std(values)
        finals.errorbar([position + 0.15], [mean], yerr=[std], fmt="s", color="black", capsize=4)
    finals.set_xticks([0, 1], list(arms))
    finals.set(
        xlim=(-0.5, 1.5), ylabel=f"final {MEASURES[spec.measure]}", title="Per seed, and mean ± std"
    )
    finals.grid(alpha=0.3)
    figure.suptitle(spec.title)
    return figure


def _summary_table(spec: Comparison, rows: list[dict]) -> tuple[list[dict], dict]:
    keys = ("test_top1", "train_top1", "gap", "train_seconds")
    stats = {
        label: {key: mean_std([row[key] for row in rows if row["arm"] == label]) for key in keys}
        for label in (spec.claimed.label, spec.other.label)
    }
    params = {row["arm"]: row["params"] for row in rows}
    table = [
        {
            "arm": label,
            "params": params[label],
            "seeds": sum(r["arm"] == label for r in rows),
            "test_top1_mean": s["test_top1"][0],
            "test_top1_std": s["test_top1"][1],
            "train_top1_mean": s["train_top1"][0],
            "gap_mean": s["gap"][0],
            "train_seconds_mean": s["train_seconds"][0],
        }
        for label, s in stats.items()
    ]
    return table, stats


def run_comparison(spec: Comparison, settings: ExperimentSettings) -> dict:
    started = time.perf_counter()
    plan = spec.quick if settings.quick else spec.full
    seeds = settings.seed_list(spec.default_seeds, spec.minutes_per_seed)
    arms = train_arms(
        settings,
        spec.name,
        seeds,
        {
            arm.label: dict(
                plan, model=arm.model, model_kwargs=dict(arm.model_kwargs), **arm.config
            )
            for arm in (spec.claimed, spec.other)
        },
    )
    rows = make_rows(spec, settings, plan, arms)
    on, off = spec.claimed.label, spec.other.label
    measure = MEASURES[spec.measure]
    judgement = judge(
        per_seed_effects(spec, rows),
        paper_figure=spec.paper_figure,
        paper_effect=spec.paper_effect,
        negligible=spec.negligible,
        minimum=spec.minimum,
        measure=f"{measure}, {on} − {off} (points)"
        if spec.measure != "gap"
        else f"{measure}, {off} − {on} (points; positive: {on} overfits less)",
    )
    table, stats = _summary_table(spec, rows)
    verdict = (
        f"Over {len(seeds)} seed(s): test top-1 {on} {pct(stats[on]['test_top1'][0])}, {off} "
        f"{pct(stats[off]['test_top1'][0])}; train–test gap {on} {100 * stats[on]['gap'][0]:.2f}, "
        f"{off} {100 * stats[off]['gap'][0]:.2f} points. Effect ({judgement.measure}): "
        f"{judgement.effect_text()}."
    )
    outcome = Outcome(
        name=spec.name,
        title=spec.title,
        paper=spec.paper,
        claim=spec.claim,
        judgements=[judgement],
        verdict=verdict,
        settings={
            **plan,
            on: _arm_text(spec.claimed),
            off: _arm_text(spec.other),
            "seeds": len(seeds),
            "measure": measure,
        },
        summary={
            "test_top1_mean": {k: s["test_top1"][0] for k, s in stats.items()},
            "gap_mean": {k: s["gap"][0] for k, s in stats.items()},
            "params": {row["arm"]: row["params"] for row in rows},
            "seeds": len(seeds),
        },
        rows=rows,
        figure=_plot(spec, arms, rows),
        tables={"Mean over seeds": table},
        notes=list(spec.notes),
    )
    return finish(outcome, settings, started)


def _arm_text(arm: Arm) -> str:
    extra = " ".join(f"{k}={v}" for k, v in arm.config.items())
    return f"{arm.model} {arm.model_kwargs or ''} {extra}".strip()
