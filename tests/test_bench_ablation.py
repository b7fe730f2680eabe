"""`cnnzoo bench ablation`: every arm is the recipe with one setting changed and the same seeds,
each effect is the paired difference the runs themselves recorded, and the result lands in the
results table beside the recipes' rows."""

from __future__ import annotations

import json
import statistics

import pytest

from cnnzoo.bench.ablation import arm_settings, run_ablation
from cnnzoo.bench.recipes import write_ablation, write_results
from cnnzoo.cli import main
from cnnzoo.errors import ConfigError


@pytest.fixture(scope="module")
def ablation(tiny_mnist_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("ablation")
    steps = []
    result = run_ablation("budgetnet-fast", ["ema", "label-smoothing-0.2"], seeds=2,
                          out_root=out, log=lambda message: None,
                          step=lambda name, index, count: steps.append((name, index, count)),
                          dataset="mnist", data_dir=str(tiny_mnist_dir), epochs=1,
                          time_budget=None, train_subset=300, test_subset=100, precision="fp32",
                          compile="off", channels_last=False, snapshots="off")
    return result, out, steps


def _run_file(out, arm, seed, name):
    return json.loads((out / f"{arm}-seed{seed}" / name).read_text())


def test_each_arm_changes_one_setting_and_keeps_the_seed(ablation):
    result, out, steps = ablation
    # seed by seed, every arm within a seed
    assert [name for name, _, _ in steps] == ["recipe, seed 0", "ema, seed 0",
                                              "label-smoothing-0.2, seed 0", "recipe, seed 1",
                                              "ema, seed 1", "label-smoothing-0.2, seed 1"]
    assert [(index, count) for _, index, count in steps] == [(i, 6) for i in range(6)]
    for seed in (0, 1):
        recipe = _run_file(out, "recipe", seed, "config.json")
        for arm, changed in (("ema", {"ema_decay": 0.995}),
                             ("label-smoothing-0.2", {"label_smoothing": 0.2})):
            config = _run_file(out, arm, seed, "config.json")
            differing = {k: v for k, v in config.items() if recipe.get(k) != v and k != "out"}
            assert differing == changed and config["seed"] == seed


def test_effects_are_the_paired_differences_of_the_runs(ablation):
    result, out, _ = ablation
    arms = {row["arm"]: row for row in result["arms"]}
    assert list(arms) == ["recipe", "ema", "label-smoothing-0.2"] and "effect" not in arms["recipe"]
    recorded = {arm: [_run_file(out, arm, s, "summary.json")["test_top1"] for s in (0, 1)]
                for arm in arms}
    for arm in ("ema", "label-smoothing-0.2"):
        assert arms[arm]["test_top1_runs"] == recorded[arm]
        differences = [a - b for a, b in zip(recorded[arm], recorded["recipe"], strict=True)]
        effect = arms[arm]["effect"]
        assert effect["mean"] == pytest.approx(statistics.fmean(differences))
        assert effect["seeds"] == 2 and effect["low"] <= effect["mean"] <= effect["high"]
        assert arms[arm]["helps"] == (effect["low"] > 0)


def test_the_ablation_is_written_beside_the_recipes_rows(ablation, tmp_path):
    result, _, _ = ablation
    path = tmp_path / "results.md"
    row = {"recipe": "mlp", "model": "mlp", "params": 1, "macs_per_image": 1e6,
           "train_seconds": 1.0, "images_per_second": 1.0, "test_top1": 0.9,
           "test_top1_spread": None, "target_top1": 0.89, "budget_seconds": 60, "met": True}
    write_results([row], path)
    write_ablation(result, path)
    text = path.read_text()
    assert "| mlp | mlp | 1 |" in text and "## Ablation: each trick alone" in text
    ema = next(r for r in result["arms"] if r["arm"] == "ema")
    assert "| ema | ema_decay=0.995 |" in text
    assert f"{ema['effect']['mean'] * 100:+.2f}" in text
    write_results([dict(row, test_top1=0.91)], path)  # new recipe rows keep the ablation
    assert "## Ablation: each trick alone" in path.read_text() and "91.00%" in path.read_text()


def test_a_trick_the_recipe_already_has_is_refused():
    with pytest.raises(ConfigError, match="already trains with"):
        arm_settings({"label_smoothing": 0.2}, "label-smoothing-0.2")
    with pytest.raises(ConfigError, match="unknown trick 'swa'"):
        arm_settings({}, "swa")


def test_a_trick_that_does_not_apply_is_refused_by_name_and_left_out_of_the_default():
    from cnnzoo.bench.ablation import untried_tricks
    from cnnzoo.recipes import load_recipe

    sgd = load_recipe("resnet20").config  # SGD: Muon's fixed norm has nothing to hold
    with pytest.raises(ConfigError, match="muon-fixed-norm does not apply.*--optimizer muon"):
        arm_settings(sgd, "muon-fixed-norm")
    assert "muon-fixed-norm" not in untried_tricks(sgd) and "muon" in untried_tricks(sgd)
    assert "muon-fixed-norm" in untried_tricks(load_recipe("budgetnet-fast").config)


def test_one_seed_is_one_line_and_exit_2(capsys):
    assert main(["bench", "ablation", "--seeds", "1", "--tricks", "ema"]) == 2
    err = capsys.readouterr().err.strip()
    assert "--seeds 1" in err and len(err.splitlines()) == 1


def test_without_tricks_named_an_ablation_measures_those_the_recipe_lacks(tmp_path,
                                                                          monkeypatch):
    from cnnzoo.bench.ablation import TRICKS
    from cnnzoo.engine import train as train_module

    trained = []

    def fake_train(config, **kwargs):  # what each arm would train, without training it
        trained.append(config)
        return {"test_top1": 0.9, "train_seconds": 1.0, "epochs": 1}

    monkeypatch.setattr(train_module, "train", fake_train)
    result = run_ablation("budgetnet-fast", seeds=2, out_root=tmp_path, log=lambda message: None)
    arms = [row["arm"] for row in result["arms"]]
    # the fast recipe trains with Muon and alternating flips already: nothing to measure there
    assert arms == ["recipe"] + [t for t in TRICKS if t not in ("muon", "alternating-flips")]
    assert len(trained) == 2 * len(arms)
    assert {c.optimizer for c in trained} == {"muon"} and all(c.alternate_flips for c in trained)


def test_an_ablation_of_the_recipe_as_it_was_stays_and_a_repeat_replaces_its_own(ablation,
                                                                                  tmp_path):
    from cnnzoo.bench.recipes import ablation_path, kept_ablations

    result, _, _ = ablation
    path = tmp_path / "results.md"
    # an ablation written before several were kept: the file holds one result, not a list
    before = dict(result, recipe_config={**result["recipe_config"], "optimizer": "sgd"},
                  measured="2026-01-01 00:00", machine="an older machine")
    ablation_path(path).write_text(json.dumps(before))
    write_ablation(result, path)
    assert [r["measured"] for r in kept_ablations(path)] == [result["measured"], "2026-01-01 00:00"]
    text = path.read_text()
    assert text.count("## Ablation: each trick alone") == 1
    newer, older = text.index(f"### `budgetnet-fast`, {result['measured']} UTC"), \
        text.index("### `budgetnet-fast`, 2026-01-01 00:00 UTC")
    assert newer < older and "optimizer=sgd" in text[older:]
    again = dict(result, measured="2026-12-31 23:59")  # the same recipe, settings and overrides
    write_ablation(again, path)
    assert [r["measured"] for r in kept_ablations(path)] == ["2026-12-31 23:59", "2026-01-01 00:00"]
    assert f"### `budgetnet-fast`, {result['measured']} UTC" not in path.read_text()
    other = dict(result, overrides={**result["overrides"], "epochs": 2},
                 measured="2027-01-01 00:00")
    write_ablation(other, path)  # other overrides: another ablation, kept beside
    assert len(kept_ablations(path)) == 3
    # one trick measured again later leaves the ablation that measured the others with it
    one = dict(again, arms=[row for row in again["arms"] if row["arm"] in ("recipe", "ema")],
               measured="2027-02-01 00:00")
    write_ablation(one, path)
    assert [r["measured"] for r in kept_ablations(path)][:3] == [
        "2027-02-01 00:00", "2027-01-01 00:00", "2026-12-31 23:59"]
    write_ablation(dict(one, measured="2027-03-01 00:00"), path)  # ...and replaces its own repeat
    assert "2027-02-01 00:00" not in [r["measured"] for r in kept_ablations(path)]
