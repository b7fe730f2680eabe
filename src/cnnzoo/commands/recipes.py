"""``cnnzoo recipes``: the named training settings, each with the budget and accuracy it was
measured at (``docs/results.md``)."""

from __future__ import annotations

import argparse

from cnnzoo.commands import options
from cnnzoo.console import print_json


def cmd_recipes(args: argparse.Namespace) -> int:
    from cnnzoo.model_table import recipe_table
    from cnnzoo.recipes import TIERS, list_recipes, measured_results

    if args.name:
        return _one_recipe(args)
    recipes, measured, networks = list_recipes(), measured_results(), recipe_table()
    if args.json:
        print_json([{"name": r.name, "model": r.config["model"],
                     "model_kwargs": r.config.get("model_kwargs", {}),
                     "variant": networks[r.name]["variant"], "params": networks[r.name]["params"],
                     "input_size": networks[r.name]["input_size"],
                     "family": r.family, "tier": r.tier, "budget_seconds": r.budget_seconds,
                     "target_top1": r.target_top1,
                     "measured_top1": measured.get(r.name, {}).get("test_top1"),
                     "description": r.description, "config": r.config} for r in recipes])
        return 0
    print(f"{'recipe':<19} {'tier':<9} {'model':<58} {'params':>9} {'input':<8} {'budget':>7} "
          f"{'target':>6} {'measured':>8}")
    for r in recipes:
        result, network = measured.get(r.name), networks[r.name]
        shown = f"{result['test_top1']:.2%}" if result else "-"
        size = "×".join(map(str, network["input_size"]))
        print(f"{r.name:<19} {r.tier:<9} {network['variant']:<58} {network['params']:>9,} "
              f"{size:<8} {r.budget_seconds:>6.0f}s {r.target_top1:>6.0%} {shown:>8}")
    print("\ntiers: " + "; ".join(f"{name}: {text}" for name, text in TIERS.items()))
    print("params: the network as the recipe trains it (its widths, its data's channels), which a "
          "variant's differs from `cnnzoo list`'s default; budget: training wall time on 2 CPU "
          "cores; target: test accuracy meant to be reached within it; measured: docs/results.md "
          "(`cnnzoo bench recipes`). Run one: cnnzoo train --recipe NAME")
    return 0


def _one_recipe(args: argparse.Namespace) -> int:
    """A recipe's description and every setting it trains with, as `cnnzoo train`'s options."""
    import json

    from cnnzoo.engine.config import flag
    from cnnzoo.recipes import load_recipe

    recipe = load_recipe(args.name)
    if args.json:
        print_json({"name": recipe.name, "description": recipe.description, "tier": recipe.tier,
                    "budget_seconds": recipe.budget_seconds, "target_top1": recipe.target_top1,
                    "config": recipe.config})
        return 0
    print(f"{recipe.name}: {recipe.description}\n\nits settings, as `cnnzoo train` options (one "
          f"given beside --recipe {recipe.name} replaces the recipe's; --model-kwargs merges key "
          "by key):")
    for key, value in recipe.config.items():
        shown = f"'{json.dumps(value)}'" if isinstance(value, dict) else value
        print(f"  {flag(key)}" + ("" if value is True else ": off" if value is False
                                  else f" {shown}"))
    return 0


def register(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("recipes", help="list the training recipes",
                            description="Named training settings, each with the budget and "
                                        "accuracy it was measured at; run one with `cnnzoo train "
                                        "--recipe NAME`.")
    p.add_argument("name", nargs="?", metavar="NAME",
                   help="one recipe: its description and every setting it trains with")
    options.add(p, "json")
    p.set_defaults(run=cmd_recipes)
