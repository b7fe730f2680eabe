"""Recipes load and train; the benchmark commands run on tiny settings and produce well-formed
output.

Speed itself is not asserted here: the benchmarks compare against a baseline in the same run and
report ratios.
"""

from __future__ import annotations

import json

import pytest
import torch

from cnnzoo.bench.hardware import matmul_peak, training_utilisation
from cnnzoo.bench.recipes import results_markdown, run_recipes, write_results
from cnnzoo.bench.training import PILDataset, TutorialDataset, training_throughput
from cnnzoo.cli import main
from cnnzoo.model_table import recipe_table
from cnnzoo.recipes import list_recipes, load_recipe

RECIPES = [r.name for r in list_recipes()]


def test_recipes_state_their_budget_and_target():
    tiers = {r.tier for r in list_recipes()}
    assert {"fast", "balanced"} <= tiers
    for recipe in list_recipes():
        assert 0 < recipe.target_top1 < 1 and recipe.budget_seconds > 0 and recipe.description
        assert recipe.config["model"]
        assert (
            recipe.config.get("time_budget") is None
            or recipe.config["time_budget"] <= recipe.budget_seconds
        )


@pytest.mark.parametrize("name", RECIPES)
def test_each_recipe_trains_one_step(name, tiny_mnist_dir, tmp_path):
    from cnnzoo.engine.train import train

    recipe = load_recipe(name)
    config = recipe.train_config(dataset="mnist", data_dir=str(tiny_mnist_dir),
                                 train_subset=recipe.config.get(
        "batch_size", 256), test_subset=50, epochs=1, time_budget=None, out=str(tmp_path / name))
    summary = train(config)
    assert summary["epochs"] == 1 and summary["model"] == recipe.config["model"]
    # tiny MNIST has Fashion-MNIST's shape: the run counts what `cnnzoo recipes` shows
    assert summary["params"] == recipe_table()[name]["params"]


def test_unknown_recipe_lists_the_known_ones():
    with pytest.raises(ValueError, match="lenet5-demo"):
        load_recipe("lenet6")


@pytest.mark.parametrize("damage, named", [
    ('{"description": "cut', "not valid JSON"),  # JSONDecodeError escaped
    ("[1, 2]", "holds list"),
    ({"hidden": 3}, "field 'hidden' is unknown"),  # TypeError out of Recipe(**data) escaped
    ({"tier": None}, "tier is null"),
    ({"tier": "fastest"}, "tier is 'fastest'"),
    ({"budget_seconds": "2 min"}, "budget_seconds is \"2 min\""),  # failed printing the list
    ({"target_top1": 93}, "target_top1 is 93"),
    ({"config": {"dataset": "mnist"}}, "config names no model"),  # KeyError listing the recipes
    ({"config": {"model": "lenet5", "epochs": -1}}, "config: --epochs must be")])
def test_a_damaged_recipe_file_is_one_line_naming_the_file_and_the_field(tmp_path, damage, named):
    from cnnzoo.errors import DataFormatError
    from cnnzoo.recipes import read_recipe

    path = tmp_path / "lenet5-demo.json"
    shipped = json.loads(json.dumps(vars(load_recipe("lenet5-demo"))))
    del shipped["name"]
    path.write_text(json.dumps(shipped))
    assert read_recipe(path) == load_recipe("lenet5-demo")  # the copy reads as the shipped file
    path.write_text(damage if isinstance(damage, str) else json.dumps({**shipped, **damage}))
    with pytest.raises(DataFormatError) as error:
        read_recipe(path)
    assert str(error.value).startswith(f"{path}: ") and named in str(error.value)
    assert len(str(error.value).splitlines()) == 1


def test_bench_recipes_writes_a_table(tiny_mnist_dir, tmp_path):
    steps = []

    def step(name, index, count, costs):
        steps.append((name.split(":")[0], index, count, costs))

    rows = run_recipes(["lenet5-demo"], seeds=2, out_root=tmp_path, dataset="mnist",
                       data_dir=str(tiny_mnist_dir),
                       epochs=1, train_subset=300, log=lambda message: None, step=step)
    # each run is a stage of the command's progress, counted over all of them, costing its budget
    budget = load_recipe("lenet5-demo").budget_seconds
    assert steps == [("lenet5-demo, seed 0", 0, 2, [budget, budget]),
                     ("lenet5-demo, seed 1", 1, 2, [budget, budget])]
    assert len(rows) == 1 and rows[0]["seeds"] == 2 and len(rows[0]["test_top1_runs"]) == 2
    assert rows[0]["params"] == 61_706 and rows[0]["macs_per_image"] > 0
    table = results_markdown(rows, "test machine")
    assert "| lenet5-demo | lenet5 | 61,706 |" in table and "2 seeds" in table


def test_results_of_some_recipes_replace_only_their_rows(tmp_path):
    def row(recipe, top1):
        return {"recipe": recipe, "model": "m", "params": 1, "macs_per_image": 1e6,
                "train_seconds": 1.0,
                "images_per_second": 1.0, "test_top1": top1, "test_top1_spread": None,
                "target_top1": 0.9,
                "budget_seconds": 10, "met": True, "measured": "2026-01-01 00:00"}

    path = tmp_path / "results.md"
    write_results([row("mlp", 0.80), row("lenet5-demo", 0.81), row("no-longer-a-recipe", 0.5)],
                  path)
    written = write_results([row("mlp", 0.90)], path)
    assert [(r["recipe"], r["test_top1"]) for r in written] == [("lenet5-demo", 0.81),
                                                                ("mlp", 0.90)]
    assert json.loads(path.with_suffix(".json").read_text()) == written
    assert "| mlp | m | 1 |" in path.read_text() and "no-longer-a-recipe" not in path.read_text()


def test_results_of_a_changed_recipe_are_dropped(tmp_path):
    recipe = load_recipe("mlp")
    row = {"recipe": "mlp", "model": "mlp", "params": 1, "macs_per_image": 1e6,
           "train_seconds": 1.0,
           "images_per_second": 1.0, "test_top1": 0.9, "test_top1_spread": None, "met": True,
           "target_top1": recipe.target_top1, "budget_seconds": recipe.budget_seconds,
           "config": recipe.config}
    path = tmp_path / "results.md"
    write_results([row], path)
    assert [r["recipe"] for r in write_results([], path)] == ["mlp"]  # unchanged: kept
    # evaluated every 5 epochs since it was measured: it learns the same, so the row stays
    write_results([dict(row, config={**recipe.config, "eval_every": 5})], path)
    assert [r["recipe"] for r in write_results([], path)] == ["mlp"]
    changed = dict(row, config={**recipe.config, "lr": recipe.config["lr"] * 2})
    write_results([changed], path)
    assert write_results([], path) == []  # measured with other settings than the recipe's: dropped
    path.with_suffix(".json").write_text("{not json")
    with pytest.raises(ValueError, match="results.json"):
        write_results([], path)


def test_training_benchmark_reports_each_baseline_against_one_cnnzoo_measurement():
    images = torch.randint(0, 256, (512, 1, 28, 28), dtype=torch.uint8)
    labels = torch.randint(0, 10, (512,))
    rows = training_throughput("lenet5", images, labels, batch_size=64, images_per_run=256,
                               repeats=2)
    assert [row["baseline"] for row in rows] == ["tensor", "pil"]
    assert rows[0]["cnnzoo_runs"] == rows[1]["cnnzoo_runs"] and len(rows[0]["cnnzoo_runs"]) == 2
    for row in rows:
        assert row["baseline_per_second"] > 0 and row["cnnzoo_per_second"] > 0
    with pytest.raises(ValueError, match="baselines"):
        training_throughput("lenet5", images, labels, baselines=("dali",))


@pytest.mark.parametrize("channels", [1, 3])
def test_tutorial_datasets_give_the_same_samples(channels):
    # the PIL path must be a slower route to the same tensor, or the comparison would not be like
    # for like
    images = torch.randint(0, 256, (4, channels, 6, 5), dtype=torch.uint8)
    labels = torch.arange(4)
    mean, std = [0.3] * channels, [0.2] * channels
    for index in range(4):
        expected, label = TutorialDataset(images, labels, mean, std)[index]
        got, pil_label = PILDataset(images, labels, mean, std)[index]
        assert got.shape == (channels, 6, 5) and label == pil_label == index
        torch.testing.assert_close(got, expected)


def test_hardware_figures_are_consistent():
    assert matmul_peak(torch.float32, size=256, seconds=0.05) > 1e8
    row = training_utilisation("lenet5", input_size=(1, 28, 28), batch_size=16, steps=1,
                               peak_size=128, peak_seconds=0.05)
    assert 0 < row["fraction_of_fp32_peak"] < 1.5
    assert row["training_gflops"] == pytest.approx(
        6 * row["macs_per_image"] * row["images_per_second"] / 1e9, rel=0.01
    )


def test_hardware_times_the_compiled_step_beside_the_eager_one():
    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    peaks = {"fp32": 1e11}
    row = training_utilisation("lenet5", input_size=(1, 28, 28), batch_size=16, steps=2,
                               peaks=peaks, compiled=True)
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] >= 1  # it did compile
    assert row["compile_seconds"] > 0
    assert row["compiled_training_gflops"] == pytest.approx(
        6 * row["macs_per_image"] * row["compiled_images_per_second"] / 1e9, rel=0.01)
    assert row["compiled_fraction_of_peak"] == pytest.approx(
        row["compiled_training_gflops"] * 1e9 / peaks["fp32"], abs=0.001)


def test_recipes_command_json(capsys):
    assert main(["recipes", "--json"]) == 0
    names = {row["name"] for row in json.loads(capsys.readouterr().out)}
    assert names == set(RECIPES)


def test_compare_each_interleaves_runs_and_takes_medians(monkeypatch):
    """On a fake clock where the baseline takes 4 ticks per item and the candidate 1 (one slow
    outlier run), the candidate is 4× faster: the median ignores the outlier, and runs alternate
    baseline/candidate."""
    from cnnzoo.bench import timing

    clock = {"now": 0.0}
    order = []
    monkeypatch.setattr(timing.time, "perf_counter", lambda: clock["now"])

    def runner(name: str, ticks_per_item: list[float]):
        def run() -> int:
            order.append(name)
            clock["now"] += 10 * ticks_per_item.pop(0)
            return 10
        return run

    result = timing.compare_each({"slow": runner("slow", [4, 4, 4, 4])},
                                 runner("fast", [1, 1, 9, 1]), repeats=3)
    assert order == ["slow", "fast"] + ["slow", "fast"] * 3  # warm-up, then interleaved
    assert result["slow"]["ratio"] == 4.0 and result["slow"]["cnnzoo_per_second"] == 1.0


def test_the_lenet_step_benchmark_times_the_same_network_each_way():
    """benchmarks/lenet_step.py compares ways of computing LeNet-5's step: a rewritten convolution
    or pool must give the plain model's outputs and gradients, or the timings compare different
    work."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "lenet_step.py"
    spec = importlib.util.spec_from_file_location("lenet_step", path)
    lenet_step = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(lenet_step)
    x = torch.randn(4, 1, 28, 28)
    plain = lenet_step.lenet("nchw")
    expected = plain(x)
    expected.square().sum().backward()
    rewritten = {"im2col": (0, lenet_step.UnfoldConv2d),
                 "reshape-max": (2, lenet_step.ReshapeMaxPool2d)}
    for way, (index, kind) in rewritten.items():
        model = lenet_step.lenet(way)
        assert isinstance(model.features[index], kind)
        out = model(x)
        torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)
        out.square().sum().backward()
        for (name, mine), theirs in zip(model.named_parameters(), plain.parameters(), strict=True):
            torch.testing.assert_close(mine.grad, theirs.grad, atol=1e-4, rtol=1e-4, msg=name)
