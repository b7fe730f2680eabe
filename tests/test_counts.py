"""One parameter count per network, wherever it is shown: `cnnzoo list`, `cnnzoo summary`,
`cnnzoo recipes`, docs/results.json and the README (a recipe's training run:
tests/test_bench_recipes.py); and recipe tiers that match their targets."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from cnnzoo.cli import main
from cnnzoo.errors import CnnzooError
from cnnzoo.recipes import TIER_BOUNDS, list_recipes

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True, scope="module")
def _fresh_cache(tmp_path_factory):
    with pytest.MonkeyPatch.context() as patch:  # counted by this code, not an older table
        patch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("cache")))
        yield


def json_of(capsys, *argv: str):
    assert main(list(argv)) == 0
    return json.loads(capsys.readouterr().out)


# The ones with fixed parameters, and some the recipes train; the others under `make test-slow`.
QUICK = {"lenet5_1998", "budgetnet_s", "budgetnet_m", "lenet5", "mlp", "convnet", "resnet20",
         "nin_small"}


def _model_names() -> list:
    from cnnzoo.models.registry import list_models

    return [name if name in QUICK else pytest.param(name, marks=pytest.mark.slow)
            for name in list_models()]


@pytest.mark.parametrize("name", _model_names())
def test_list_and_summary_agree(capsys, name):
    (row,) = [row for row in json_of(capsys, "list", name, "--json") if row["name"] == name]
    shown = json_of(capsys, "summary", name, "--json")
    assert shown["trainable_params"] == row["params"]


@pytest.mark.parametrize("name", ["lenet5_1998", "budgetnet_s", "lenet5"])
def test_summary_table_leads_with_the_listed_count(capsys, name):
    """lenet5_1998's RBF prototypes and a budget net's whitening layer are fixed: the count shown
    first is the one `cnnzoo list` shows, the fixed ones after it."""
    (row,) = [row for row in json_of(capsys, "list", name, "--json") if row["name"] == name]
    assert main(["summary", name]) == 0
    footer = re.search(r"^parameters: ([\d,]+)", capsys.readouterr().out, re.MULTILINE)
    assert int(footer.group(1).replace(",", "")) == row["params"]


def test_recipes_show_their_own_network_and_list_shows_it_as_a_variant(capsys):
    recipes = {row["name"]: row for row in json_of(capsys, "recipes", "--json")}
    listed = {row["name"]: row for row in json_of(capsys, "list", "--json")}
    results = json.loads((ROOT / "docs" / "results.json").read_text())
    measured = {row["recipe"]: row for row in results}
    assert set(recipes) == {r.name for r in list_recipes()}
    for name, recipe in recipes.items():
        model = listed[recipe["model"]]
        variants = {v["recipe"]: v for v in model["recipe_variants"]}
        if recipe["model_kwargs"]:  # other widths: named a variant, and listed under the model
            assert "variant" in recipe["variant"] and name in variants, name
        shown_in_list = variants[name]["params"] if name in variants else model["params"]
        assert recipe["params"] == shown_in_list, name
        if name in measured:
            assert recipe["params"] == measured[name]["params"], name
    assert main(["list", "alexnet_small"]) == 0
    line = re.search(r"^ +└ recipe alexnet-small +([\d,]+) .*$", capsys.readouterr().out,
                     re.MULTILINE)
    assert int(line.group(1).replace(",", "")) == recipes["alexnet-small"]["params"]
    assert "alexnet_small variant (widths=" in line.group(0)


def test_the_readme_counts_the_models_cnnzoo_list_shows(capsys):
    listed = json_of(capsys, "list", "--json")
    readme = (ROOT / "README.md").read_text()
    counts = re.findall(r"(\d+) registered models", readme)
    assert counts and {int(c) for c in counts} == {len(listed)}
    assert main(["list"]) == 0
    assert f"{len(listed)} models" in capsys.readouterr().out


def test_every_recipe_is_within_its_tier():
    for recipe in list_recipes():
        _, top1, budget = TIER_BOUNDS[recipe.tier]
        assert top1 is None or recipe.target_top1 >= top1, recipe.name
        assert budget is None or recipe.budget_seconds <= budget, recipe.name


def test_a_recipe_outside_its_tier_does_not_load(tmp_path):
    from cnnzoo.recipes import read_recipe

    def recipe(tier: str) -> Path:
        path = tmp_path / "lenet5-demo.json"
        path.write_text(json.dumps({"description": "d", "family": "lenet", "tier": tier,
                                    "budget_seconds": 120, "target_top1": 0.90,
                                    "config": {"model": "lenet5"}}))
        return path

    with pytest.raises(CnnzooError, match="outside its tier 'fast'"):
        read_recipe(recipe("fast"))
    with pytest.raises(CnnzooError, match="tier is 'quick', not one of"):
        read_recipe(recipe("quick"))
    assert read_recipe(recipe("demo")).tier == "demo"
