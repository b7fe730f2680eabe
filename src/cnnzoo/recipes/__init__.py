"""Training recipes: named, tested settings that reach a stated accuracy within a stated time budget.

Each recipe is a small JSON file beside this module: a description, the budget and target it was measured
against (on the reference machine: 2 CPU cores), and the ``TrainConfig`` settings. ``cnnzoo recipes`` lists
them, ``cnnzoo train --recipe NAME`` runs one, and options given on the command line override its settings.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from cnnzoo.engine.config import TrainConfig
from cnnzoo.errors import ConfigError, UnknownNameError


@dataclass(frozen=True)
class Recipe:
    name: str
    description: str
    family: str
    tier: str  # a key of TIER_BOUNDS: fast | demo | balanced | best | family
    budget_seconds: float  # training wall time it is meant to fit, on 2 CPU cores
    target_top1: float  # test accuracy it is meant to reach within that budget
    config: dict

    def train_config(self, **overrides) -> TrainConfig:
        return TrainConfig.from_dict(merge_settings(self.config, overrides))


# What each tier is for, and the least target and longest budget a recipe of it may state (None:
# any). The tier's text is made from these numbers, and a recipe outside its tier's bounds does not
# load, so a label cannot promise more than its target (lenet5-demo, 90% in 2 min, is no `fast`).
TIER_BOUNDS: dict[str, tuple[str, float | None, float | None]] = {
    "fast": ("the quickest route to a good result", 0.91, 30),
    "demo": ("the `make demo` run: a first trained model", 0.90, 120),
    "balanced": ("a stronger result in a couple of minutes", 0.93, 120),
    "best": ("the best a laptop CPU reaches", 0.95, 1200),
    "family": ("one per model family, to compare the families at a stated budget", None, None),
}


def _duration(seconds: float) -> str:
    return f"{seconds / 60:g} min" if seconds >= 120 else f"{seconds:g} s"


TIERS = {name: f"{what} (≥ {top1:.0%} in ≤ {_duration(budget)})" if top1 is not None else what
         for name, (what, top1, budget) in TIER_BOUNDS.items()}


def check_tier(recipe: Recipe) -> None:
    """Refuse a recipe whose target or budget is outside its tier's bounds, or whose tier is
    unknown."""
    if recipe.tier not in TIER_BOUNDS:
        raise ConfigError(f"recipe {recipe.name}: unknown tier {recipe.tier!r}; the tiers are "
                          f"{', '.join(TIER_BOUNDS)}")
    _, top1, budget = TIER_BOUNDS[recipe.tier]
    if (top1 is not None and recipe.target_top1 < top1) or (budget is not None
                                                             and recipe.budget_seconds > budget):
        raise ConfigError(f"recipe {recipe.name} targets {recipe.target_top1:.0%} in "
                          f"{_duration(recipe.budget_seconds)}, outside its tier {recipe.tier!r}: "
                          f"{TIERS[recipe.tier]}")


def model_settings(config: dict) -> str:
    """A recipe's model with the builder arguments it sets, named as the variant it is:
    ``vgg16_bn_small variant (width=0.25)``; the bare name where it sets none."""
    options = ", ".join(f"{key}={json.dumps(value, separators=(',', ':'))}"
                        for key, value in config.get("model_kwargs", {}).items())
    return f"{config['model']} variant ({options})" if options else config["model"]


def merge_settings(base: dict, options: dict) -> dict:
    """A recipe's settings (``base``) with ``options`` given on top. Dictionaries merge key by key, so
    ``--model-kwargs '{"dropout": 0.3}'`` on a recipe keeps the recipe's other builder arguments."""
    merged = {**base, **options}
    for name, value in options.items():
        if isinstance(value, dict) and isinstance(base.get(name), dict):
            merged[name] = {**base[name], **value}
    return merged


def train_config(recipe: str | None, options: dict) -> TrainConfig:
    """The configuration of a run: the recipe's settings (if one is named) overridden by ``options``."""
    base = load_recipe(recipe).config if recipe else {}
    return TrainConfig.from_dict(merge_settings(base, options))


def measured_results() -> dict[str, dict]:
    """The rows of docs/results.json by recipe name, in a source checkout (empty where it is not shipped)."""
    path = Path(__file__).resolve().parents[3] / "docs" / "results.json"
    try:
        return {row["recipe"]: row for row in json.loads(path.read_text())}
    except (OSError, ValueError, KeyError, TypeError):
        return {}


def list_recipes() -> list[Recipe]:
    files = sorted(p for p in resources.files(__package__).iterdir() if p.name.endswith(".json"))
    return [_parse(p.name[:-5], json.loads(p.read_text())) for p in files]


def load_recipe(name: str) -> Recipe:
    recipes = {r.name: r for r in list_recipes()}
    if name not in recipes:
        raise UnknownNameError(f"unknown recipe {name!r}; `cnnzoo recipes` lists: {', '.join(sorted(recipes))}")
    return recipes[name]


def _parse(name: str, data: dict) -> Recipe:
    recipe = Recipe(name=name, **data)
    TrainConfig.from_dict(recipe.config)  # a broken recipe file fails here, naming its setting
    check_tier(recipe)
    return recipe
