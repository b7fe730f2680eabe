"""One trick at a time: a recipe trained as it is and with each fast-training trick added alone,
the same seeds for every arm, and each trick's effect on test accuracy as a paired interval.

The tricks come from the fast-training literature (airbench's and Muon's author, fast.ai's
progressive resizing, Szegedy et al.'s label smoothing). Each arm changes one setting of the
recipe and nothing else, including its time budget: a trick that makes steps slower pays for it
in steps. Seed *s* of every arm starts from the same initial weights and data order as the
recipe's seed *s*, so an arm's effect is the mean of per-seed differences, with a Student-t
interval (``experiments.verdict``). ``cnnzoo bench ablation`` writes the result beside the recipe
results (``docs/results.md`` shows both).
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from cnnzoo.console import log_to_stderr
from cnnzoo.engine.config import TrainConfig
from cnnzoo.errors import ConfigError
from cnnzoo.experiments.verdict import paired_t_interval
from cnnzoo.recipes import load_recipe


@dataclass(frozen=True)
class Trick:
    settings: dict  # the training settings the arm changes
    source: str  # where the trick comes from


TRICKS: dict[str, Trick] = {
    "muon": Trick({"optimizer": "muon"},
                  "Jordan et al. 2024, Muon: orthogonalised momentum for the convolution filters"),
    # held at a fixed norm, a step of --muon-lr turns the filters by that much all run long: the
    # default 0.2 is far too large for it (5-minute runs: 94.0% at 0.1, 94.3% at 0.05, 94.5% at
    # 0.02)
    "muon-fixed-norm": Trick({"muon_fixed_norm": True, "muon_lr": 0.05},
                             "airbench: Muon's filters held at norm √(output channels), at Muon "
                             "rate 0.05"),
    "ema": Trick({"ema_decay": 0.995}, "Polyak averaging; an EMA of the weights is evaluated"),
    "label-smoothing-0.2": Trick({"label_smoothing": 0.2},
                                 "Szegedy et al. 2016; airbench uses 0.2"),
    "bn-bias-lr-64": Trick({"bn_bias_lr": 64.0},
                           "airbench: BatchNorm biases at 64× the learning rate"),
    "dirac-init": Trick({"dirac_init": True},
                        "airbench: convolutions start as partial identities"),
    "alternating-flips": Trick({"alternate_flips": True},
                               "airbench: each image mirrored every other epoch"),
    "flip-shift-tta": Trick({"test_views": "flip-shift"},
                            "airbench: test views mirrored and shifted by a pixel"),
    "progressive-resize": Trick({"progressive_resize": 20},
                                "fast.ai / FFCV: small images first, full size from 75%"),
    "cutout-8": Trick({"cutout": 8}, "DeVries & Taylor 2017: an 8×8 square of each image zeroed"),
}


def _trains_with(recipe_config: dict, settings: dict) -> bool:
    """Whether ``recipe_config`` has every one of ``settings`` already."""
    return all(recipe_config.get(name) == value for name, value in settings.items())


def _problem(recipe_config: dict, settings: dict) -> str | None:
    """Why ``settings`` cannot be added to ``recipe_config`` (``--muon-fixed-norm`` to an SGD
    recipe), or None."""
    try:
        TrainConfig.from_dict({**recipe_config, **settings})
    except ConfigError as error:
        return str(error)
    return None


def untried_tricks(recipe_config: dict) -> list[str]:
    """The tricks that would change ``recipe_config`` and apply to it: the arms of an ablation
    that names none."""
    return [name for name, trick in TRICKS.items()
            if not _trains_with(recipe_config, trick.settings)
            and _problem(recipe_config, trick.settings) is None]


def arm_settings(recipe_config: dict, trick: str) -> dict:
    """The settings ``trick`` changes, refused when the recipe already has them (no effect to
    measure) or cannot take them."""
    if trick not in TRICKS:
        raise ConfigError(f"unknown trick {trick!r}; the tricks are {', '.join(TRICKS)}")
    settings = TRICKS[trick].settings
    if _trains_with(recipe_config, settings):
        raise ConfigError(f"trick {trick}: the recipe already trains with {settings}; leave it "
                          "out of --tricks")
    problem = _problem(recipe_config, settings)
    if problem:
        raise ConfigError(f"trick {trick} does not apply to this recipe: {problem}")
    return settings


def run_ablation(recipe_name: str, tricks: list[str] | None = None, *, seeds: int = 3,
                 out_root: Path = Path("runs/bench-ablation"),
                 log: Callable[[str], None] = log_to_stderr,
                 step: Callable[[str, int, int], None] | None = None, **overrides) -> dict:
    """Train ``recipe_name`` (with ``overrides``) and each of ``tricks`` added alone, seeds
    0..``seeds``-1 each; the recipe's accuracies and every trick's paired effect."""
    from cnnzoo.engine.train import train  # torch: not needed for `cnnzoo bench --help`

    if seeds < 2:
        raise ConfigError(f"--seeds {seeds}: an effect's interval needs at least 2 seeds")
    recipe = load_recipe(recipe_name)
    tricks = untried_tricks(recipe.config) if tricks is None else tricks
    arms = {"recipe": {}, **{t: arm_settings(recipe.config, t) for t in tricks}}
    step = step or (lambda name, index, count: log(f"ablation: {name}"))
    runs: dict[str, list[dict]] = {arm: [] for arm in arms}
    for seed in range(seeds):  # seed by seed, so that a stopped ablation has every arm's seeds
        for number, (arm, settings) in enumerate(arms.items()):
            step(f"{arm}, seed {seed}", seed * len(arms) + number, seeds * len(arms))
            config = recipe.train_config(seed=seed, out=str(out_root / f"{arm}-seed{seed}"),
                                         **{**overrides, **settings})
            runs[arm].append(train(config, log=log, overwrite=True))
    return summarise(recipe_name, arms, runs, overrides, recipe.config)


def summarise(recipe_name: str, arms: dict[str, dict], runs: dict[str, list[dict]],
              overrides: dict, recipe_config: dict) -> dict:
    """Each arm's accuracies and seconds, and each trick's effect over the recipe, paired by
    seed."""
    base = [r["test_top1"] for r in runs["recipe"]]
    rows = []
    for arm, settings in arms.items():
        accuracies = [r["test_top1"] for r in runs[arm]]
        row = {"arm": arm, "settings": settings, "source": TRICKS[arm].source if arm in TRICKS
               else "the recipe as it is", "test_top1_runs": accuracies,
               "test_top1": round(statistics.fmean(accuracies), 4),
               "train_seconds": round(statistics.fmean(r["train_seconds"] for r in runs[arm]), 1),
               "epochs": round(statistics.fmean(r["epochs"] for r in runs[arm]), 1)}
        if arm != "recipe":
            interval = paired_t_interval([a - b for a, b in zip(accuracies, base, strict=True)])
            row["effect"] = {"mean": interval.mean, "low": interval.low, "high": interval.high,
                             "level": interval.level, "seeds": interval.n}
            row["helps"] = interval.low > 0
        rows.append(row)
    return {"recipe": recipe_name, "recipe_config": recipe_config, "seeds": len(base),
            "overrides": overrides, "arms": rows,
            "measured": f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M}"}


def _points(value: float) -> str:
    return f"{value * 100:+.2f}"


def _settings(settings: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in settings.items())


def _verdict(effect: dict) -> str:
    return "helps" if effect["low"] > 0 else "hurts" if effect["high"] < 0 else "unresolved"


def ablations_markdown(results: list[dict]) -> str:
    """The ablation section of ``docs/results.md``: each kept ablation, newest first."""
    heading = ("## Ablation: each trick alone\n\nNewest first; an ablation of a recipe as it was "
               "before stays below, as the evidence for what the recipe took up since.\n")
    return heading + "".join("\n" + ablation_markdown(r, r["machine"]) for r in results)


def ablation_markdown(result: dict, machine: str) -> str:
    """One ablation's part of ``docs/results.md``: what was run, and a row per arm."""
    tricks = [row["arm"] for row in result["arms"] if row["arm"] != "recipe"]
    lines = [
        f"### `{result['recipe']}`, {result['measured']} UTC",
        "",
        f"`cnnzoo bench ablation --recipe {result['recipe']} --tricks {' '.join(tricks)} "
        f"--seeds {result['seeds']}` on "
        f"{machine}, {result['measured']} UTC"
        + (f", with {result['overrides']}" if result["overrides"] else "") + ". "
        f"The recipe as it was then: {_settings(result['recipe_config'])}. "
        "Each arm is the recipe with one setting changed, the same time budget and the same "
        "seeds; **effect** is the mean of the per-seed differences in test top-1 from the recipe, "
        "in percentage points, with its 95% Student-t interval. **verdict**: *helps* when the "
        "whole interval is above zero, *hurts* when it is below, else *unresolved* at these "
        "seeds.",
        "",
        "| arm | settings | source | epochs | train s | test top-1 | effect (points) | "
        "95% interval | verdict |",
        "|---|---|---|---:|---:|---:|---:|---|:---:|",
    ]
    for row in result["arms"]:
        settings = _settings(row["settings"]) or "—"
        effect = row.get("effect")
        interval = (f"[{_points(effect['low'])}, {_points(effect['high'])}]" if effect else "")
        lines.append(
            f"| {row['arm']} | {settings} | {row['source']} | {row['epochs']:g} | "
            f"{row['train_seconds']:.0f} | {row['test_top1']:.2%} | "
            f"{_points(effect['mean']) if effect else ''} | {interval} | "
            f"{_verdict(effect) if effect else ''} |")
    return "\n".join(lines) + "\n"


__all__ = ["TRICKS", "ablation_markdown", "ablations_markdown", "run_ablation", "summarise"]
