"""Training recipes: named, tested settings that reach a stated accuracy within a stated time
budget.

Each recipe is a small JSON file beside this module: a description, the budget and target it was
measured against (on the reference machine: 2 CPU cores), and the ``TrainConfig`` settings. ``cnnzoo
recipes`` lists them, ``cnnzoo train --recipe NAME`` runs one, and options given on the command line
override its settings.

``read_recipe`` checks a file field by field: a damaged or edited one (an installation gone
wrong) is one ``DataFormatError`` naming the file and the field, never a traceback out of every
``--recipe``.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

from cnnzoo.engine.config import TrainConfig, variant_name
from cnnzoo.errors import ConfigError, DataFormatError, UnknownNameError
from cnnzoo.files import read_bytes

MAX_RECIPE_BYTES = 64 * 1024  # a recipe is under 1 kB


@dataclass(frozen=True)
class Recipe:
    name: str
    description: str
    family: str
    tier: str  # a key of TIER_BOUNDS: fast | demo | balanced | strong | best | family
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
    "strong": ("a 94% model in a coffee break", 0.94, 300),
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
    return variant_name(config["model"], config.get("model_kwargs", {}))


def merge_settings(base: dict, options: dict) -> dict:
    """A recipe's settings (``base``) with ``options`` given on top. Dictionaries merge key by key,
    so ``--model-kwargs '{"dropout": 0.3}'`` on a recipe keeps the recipe's other builder
    arguments."""
    merged = {**base, **options}
    for name, value in options.items():
        if isinstance(value, dict) and isinstance(base.get(name), dict):
            merged[name] = {**base[name], **value}
    return merged


def train_config(recipe: str | None, options: dict) -> TrainConfig:
    """The configuration of a run: the recipe's settings (if one is named) overridden by
    ``options``."""
    base = load_recipe(recipe).config if recipe else {}
    return TrainConfig.from_dict(merge_settings(base, options))


def measured_results() -> dict[str, dict]:
    """The rows of docs/results.json by recipe name, in a source checkout (empty where it is not
    shipped)."""
    path = Path(__file__).resolve().parents[3] / "docs" / "results.json"
    try:
        return {row["recipe"]: row for row in json.loads(path.read_text())}
    except (OSError, ValueError, KeyError, TypeError):
        return {}


def list_recipes() -> list[Recipe]:
    return [read_recipe(path) for path in sorted(Path(__file__).parent.glob("*.json"))]


def load_recipe(name: str) -> Recipe:
    recipes = {r.name: r for r in list_recipes()}
    if name not in recipes:
        raise UnknownNameError(f"unknown recipe {name!r}; `cnnzoo recipes` lists: "
                               f"{', '.join(sorted(recipes))}")
    return recipes[name]


def read_recipe(path: Path) -> Recipe:
    """The recipe in the file ``path`` (named by the file's stem), every field checked: a
    ``DataFormatError`` naming the file and the first field that is missing, unknown or wrong."""
    data = read_bytes(path, MAX_RECIPE_BYTES, "recipe file")
    try:
        value = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as error:
        reason = (str(error).splitlines() or [type(error).__name__])[0][:200]
        raise DataFormatError(f"{path}: not valid JSON ({reason}); the recipe is damaged") from None
    if not isinstance(value, dict):
        raise DataFormatError(f"{path}: holds {type(value).__name__}, not a recipe's JSON object")
    fields = [f.name for f in dataclasses.fields(Recipe) if f.name != "name"]
    wrong = sorted(set(value) ^ set(fields))
    if wrong:
        state = "unknown" if wrong[0] in value else "missing"
        raise DataFormatError(f"{path}: field {wrong[0][:80]!r} is {state}; a recipe has {fields}")
    problem = _field_problem(value)
    if problem:
        raise DataFormatError(f"{path}: {problem}")
    try:
        TrainConfig.from_dict(value["config"])
    except ConfigError as error:
        raise DataFormatError(f"{path}: config: {str(error).splitlines()[0][:300]}") from None
    recipe = Recipe(name=Path(path).stem, **value)
    try:
        check_tier(recipe)
    except ConfigError as error:
        raise DataFormatError(f"{path}: {error}") from None
    return recipe


def _field_problem(value: dict) -> str | None:
    """What is wrong with a recipe's fields other than ``config``'s settings, or None."""
    for name in ("description", "family", "tier"):
        if not isinstance(value[name], str):
            return f"{name} is {json.dumps(value[name])[:60]}, not text"
    if value["tier"] not in TIERS:
        return f"tier is {value['tier'][:60]!r}, not one of {', '.join(TIERS)}"
    budget, target = value["budget_seconds"], value["target_top1"]
    if isinstance(budget, bool) or not isinstance(budget, (int, float)) or not 0 < budget <= 10**6:
        return f"budget_seconds is {json.dumps(budget)[:60]}, not a number of seconds in (0, 10^6]"
    if isinstance(target, bool) or not isinstance(target, (int, float)) or not 0 < target <= 1:
        return f"target_top1 is {json.dumps(target)[:60]}, not an accuracy in (0, 1]"
    if not isinstance(value["config"], dict):
        return f"config is {type(value['config']).__name__}, not an object of training settings"
    if "model" not in value["config"]:  # a recipe is listed by its model
        return "config names no model"
    return None
