"""Tests for cnnzoo.experiments: every experiment's quick mode on real Fashion-MNIST writes
well-formed results, the parameter counts are exact, the helpers compute what they say, and the CLI
lists, runs and reports.

The quick modes train a few hundred images for an epoch or two, so what they measure is noise; these
tests check the plumbing and the ranges of the numbers, never whether a claim held.
"""

from __future__ import annotations

import csv
import json
import math
import re
import subprocess
import sys
from pathlib import Path

import pytest

from cnnzoo.experiments import EXPERIMENTS, run_experiment
from cnnzoo.experiments.base import RESULT_KEYS, markdown_table, mean_std
from cnnzoo.experiments.verdict import FINDINGS

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


needs_data = pytest.mark.needs_fashion_mnist

# Rows each quick experiment writes (arms × seeds); batchnorm runs with 2 seeds to exercise the
# spread.
QUICK_SEEDS = {"batchnorm": 2}
EXPECTED_ROWS = {"relu-vs-tanh": 2, "dropout": 2, "lrn": 2, "overlapping-pool": 2, "batchnorm": 4,
                 "depth": 4, "params": 7, "gap-vs-fc": 2, "aux-classifiers": 2, "small-kernels": 2,
                 "batchnorm-lr": 2, "dense-vs-res": 2, "augmentation": 2}


def check_result_files(result: dict) -> list[dict]:
    """The result dict has every documented key; csv, md and png exist and agree with it. Returns
    the csv rows."""
    assert set(RESULT_KEYS) <= set(result)
    assert isinstance(result["verdict"], str) and len(result["verdict"]) > 40
    assert result["finding"] in FINDINGS and result["held"] == (result["finding"] == "held")
    for effect in result["effects"]:
        assert effect["finding"] in FINDINGS and effect["paper_figure"] and effect["measure"]
        assert effect["seeds"] in (0, result["settings"].get("seeds", 0))
    assert result["claim"] and result["paper"]
    json.dumps(result, allow_nan=False)  # plain JSON: no NaN, no tuples or paths
    run_dir = Path(result["run_dir"])
    for key, name in (("results_csv", "results.csv"), ("results_md", "results.md"),
                      ("plot", "plot.png")):
        assert Path(result[key]) == run_dir / name and Path(result[key]).is_file()
    assert Path(result["plot"]).read_bytes()[:8] == PNG_SIGNATURE
    with open(result["results_csv"], newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == len(result["rows"]) == EXPECTED_ROWS[result["experiment"]]
    markdown = Path(result["results_md"]).read_text()
    assert "**Claim:**" in markdown and f"**Result: {result['finding']}.**" in markdown
    assert "paper figure" in markdown and "seeds needed for the paper's effect" in markdown
    assert "|---|" in markdown and "plot.png" in markdown
    return rows


def assert_fractions_in_range(rows: list[dict]) -> None:
    """Every accuracy and error is a fraction in [0, 1]; gaps lie in [-1, 1]."""
    for row in rows:
        for key, value in row.items():
            if value in ("", None):
                continue
            if "top1" in key or ("error" in key and "errors" not in key):
                assert 0.0 <= float(value) <= 1.0, (key, value)
            if key == "gap":
                assert -1.0 <= float(value) <= 1.0


class QuickResults(dict):
    """Each training experiment run once in quick mode, when a test first asks for it (6–12 s
    each)."""

    def __init__(self, tmp_path_factory):
        super().__init__()
        self.tmp_path_factory = tmp_path_factory

    def __missing__(self, name: str) -> dict:
        out = self.tmp_path_factory.mktemp(name.replace("-", "_"))
        self[name] = run_experiment(name, quick=True, out=out, seeds=QUICK_SEEDS.get(name),
                                    log=lambda m: None)
        return self[name]


@pytest.fixture(scope="module")
def quick_results(tmp_path_factory) -> QuickResults:
    return QuickResults(tmp_path_factory)


# `make test` runs two of the quick experiments (an ablation with 2 seeds, one with 1); the rest are
# slow.
DEFAULT_QUICK = {"batchnorm", "lrn", "batchnorm-lr"}
QUICK = [name if name in DEFAULT_QUICK else pytest.param(name, marks=pytest.mark.slow)
         for name in EXPERIMENTS if name != "params"]


@needs_data
@pytest.mark.parametrize("name", QUICK)
def test_quick_experiment_writes_well_formed_results(quick_results, name):
    result = quick_results[name]
    assert result["experiment"] == name and result["quick"] is True
    rows = check_result_files(result)
    assert_fractions_in_range(rows)
    # every arm trained to the end (a tiny run at these rates does not diverge)
    for row in result["rows"]:
        # (in batchnorm-lr diverging is the point)
        assert row.get("diverged") is False or name == "batchnorm-lr"
    arms = Path(result["run_dir"]) / "arms"  # relu-vs-tanh's rate search trains more, under -lr*
    trained = [p for p in arms.glob("*/metrics.csv") if not re.search(r"-lr[0-9]", p.parent.name)]
    assert len(trained) == len(rows)
    # every arm in fp32, whatever the autotuner would pick for its model on this CPU
    for metrics in trained:
        config = json.loads((metrics.parent / "config.json").read_text())
        assert config["precision"] == "fp32", metrics.parent


@needs_data
@pytest.mark.slow
def test_quick_relu_vs_tanh_searches_a_rate_per_arm(quick_results):
    from cnnzoo.experiments.relu_vs_tanh import QUICK_GRID

    result = quick_results["relu-vs-tanh"]
    assert {row["activation"] for row in result["rows"]} == {"relu", "tanh"}
    chosen = result["summary"]["chosen_lr"]
    assert set(chosen) == {"relu", "tanh"} and set(chosen.values()) <= set(QUICK_GRID)
    for row in result["rows"]:  # each arm trained at the rate its own search chose
        assert row["lr"] == chosen[row["activation"]]
        first = row["epochs_to_threshold"]
        assert first is None or 0 < first <= row["epochs_run"]
    search = Path(result["run_dir"]) / "arms"
    assert len(list(search.glob("*-lr*-seed1000"))) == 2 * len(QUICK_GRID)
    assert "Learning-rate search" in Path(result["results_md"]).read_text()


@needs_data
def test_quick_ablations_judge_the_per_seed_difference(quick_results):
    result = quick_results["batchnorm"]
    summary, (effect,) = result["summary"], result["effects"]
    assert summary["seeds"] == 2 and {row["seed"] for row in result["rows"]} == {0, 1}
    assert set(summary["test_top1_mean"]) == {"batchnorm", "plain"}
    test = {(row["arm"], row["seed"]): row["test_top1"] for row in result["rows"]}
    differences = [100 * (test[("batchnorm", s)] - test[("plain", s)]) for s in (0, 1)]
    assert effect["mean"] == pytest.approx(sum(differences) / 2, abs=1e-3)
    assert effect["seeds"] == 2 and effect["low"] <= effect["mean"] <= effect["high"]
    lrn = quick_results["lrn"]  # one seed: no interval, so never a verdict either way
    assert lrn["finding"] == "not resolvable at this budget" and lrn["effects"][0]["low"] is None


@needs_data
@pytest.mark.slow
def test_quick_dropout_measures_train_accuracy_in_eval_mode(quick_results):
    result = quick_results["dropout"]
    assert sorted(row["model_kwargs"] for row in result["rows"]) == ["dropout=0.0 lrn=False",
                                                                     "dropout=0.5 lrn=False"]
    assert {row["arm"] for row in result["rows"]} == {"dropout0.5", "dropout0"}
    assert "gap" in result["effects"][0]["measure"]
    for row in result["rows"]:
        assert row["gap"] == pytest.approx(row["train_top1"] - row["test_top1"], abs=1e-4)


@needs_data
@pytest.mark.slow
def test_quick_depth_compares_four_networks(quick_results):
    result = quick_results["depth"]
    assert [row["model"] for row in result["rows"]] == ["plain20", "plain56", "resnet20",
                                                        "resnet56"]
    assert {row["depth"] for row in result["rows"]} == {20, 56}
    assert set(result["summary"]["final_train_error"]) == {"plain20", "plain56", "resnet20",
                                                           "resnet56"}


def test_model_variants_of_the_new_experiments():
    import torch

    from cnnzoo.models.registry import create_model

    def params(model):
        return sum(p.numel() for p in model.parameters())

    gap, fc = create_model("nin_small"), create_model("nin_small", head="fc")
    # the flattened 10×6×6 class maps → 10 classes
    assert params(fc) - params(gap) == 10 * 6 * 6 * 10 + 10
    assert fc(torch.zeros(2, 1, 28, 28)).shape == (2, 10)
    one, two = create_model("convnet"), create_model("convnet", stacked_3x3=True)
    # first stage: 5·5·1·32 → 3·3·1·32 + 3·3·32·32; second: 5·5·32·64 → 3·3·32·64 + 3·3·64·64
    extra = (9 * 32 + 9 * 32 * 32 + 32) - 25 * 32 + (9 * 32 * 64 + 9 * 64 * 64 + 64) - 25 * 32 * 64
    assert params(two) - params(one) == extra
    assert two(torch.zeros(2, 1, 28, 28)).shape == (2, 10)


@needs_data
@pytest.mark.slow
def test_quick_new_experiments_judge_their_measure(quick_results):
    for name in ("gap-vs-fc", "augmentation"):  # overfitting claims: judged on the gap
        result = quick_results[name]
        assert "gap" in result["effects"][0]["measure"]
        params = result["summary"]["params"]
        assert all(value > 0 for value in params.values())
    dense = quick_results["dense-vs-res"]["effects"][0]
    assert dense["minimum"] == -0.5 and dense["paper_effect"] == pytest.approx(1.9)
    notes = Path(quick_results["small-kernels"]["results_md"]).read_text()
    assert "multiply-adds per image" in notes


def _arms(**train_top1: tuple[float, ...]):
    from cnnzoo.experiments.base import ArmRun

    return {model: [ArmRun(model, seed, {}, [{"epoch": 1, "train_top1": top1, "test_top1": top1}])
                    for seed, top1 in enumerate(values)] for model, values in train_top1.items()}


PLAIN20 = RESNET20 = (0.90, 0.91, 0.89)


@pytest.mark.parametrize("plain56, resnet56, finding", [
    # deeper plain trains worse, deeper residual better, on every seed: the paper's finding
    ((0.80, 0.82, 0.79), (0.95, 0.955, 0.945), "held"),
    ((0.90, 0.91, 0.89), (0.95, 0.955, 0.945), "did not hold"),  # no degradation of the plain net
    ((0.80, 0.82, 0.79), (0.85, 0.86, 0.84), "did not hold"),  # the residual net degrades too
    ((0.80, 0.82, 0.79), (0.97, 0.89, 0.88), "not resolvable at this budget"),  # too noisy to tell
])
def test_depth_verdict_on_synthetic_histories(plain56, resnet56, finding):
    from cnnzoo.experiments.depth import judge_depth
    from cnnzoo.experiments.verdict import combine as combine_findings

    parts, summary, verdict = judge_depth(_arms(plain20=PLAIN20, plain56=plain56, resnet20=RESNET20,
                                                resnet56=resnet56))
    assert combine_findings([p.finding for p in parts]) == finding
    assert summary["final_train_error"]["plain56"] == pytest.approx(1 - sum(plain56) / 3)
    assert parts[0].mean == pytest.approx(100 * (sum(PLAIN20) - sum(plain56)) / 3)


def test_a_diverged_arm_counts_as_chance():
    from cnnzoo.experiments.base import ArmRun
    from cnnzoo.experiments.depth import judge_depth

    arms = _arms(plain20=PLAIN20, resnet20=RESNET20, resnet56=(0.95, 0.955, 0.945))
    arms["plain56"] = [ArmRun("plain56", seed, {}, [], diverged=True) for seed in range(3)]
    parts, summary, _ = judge_depth(arms)
    assert parts[0].finding == "held"
    assert summary["final_train_error"]["plain56"] == pytest.approx(0.9)


def test_params_counts_are_exact(tmp_path):
    result = run_experiment("params", out=tmp_path / "params", log=lambda m: None)
    check_result_files(result)
    summary = result["summary"]
    assert summary["bottleneck_weights"] == 69_632
    assert summary["two_3x3_weights"] == 1_179_648
    assert round(summary["resnet_ratio"], 2) == 16.94
    # Inception 3a's 5×5 branch on 28×28×192: 192·16 + 25·16·32 weights against 25·192·32.
    assert summary["inception_5x5_weights"] == {"with_reduce": 15_872, "without_reduce": 153_600}
    assert summary["inception_5x5_macs"] == {"with_reduce": 28 * 28 * 15_872,
                                             "without_reduce": 28 * 28 * 153_600}
    assert result["held"] is True
    assert "69,632" in result["verdict"] and "1,179,648" in result["verdict"]


# ------------------------------------------------------------------------------------------ helpers


def test_epochs_to_reach_the_mark_interpolates():
    from cnnzoo.experiments.relu_vs_tanh import choose_rate, epochs_to_reach

    history = [{"epoch": 1, "train_top1": 0.5}, {"epoch": 2, "train_top1": 0.85},
               {"epoch": 3, "train_top1": 0.95}]
    # from chance (90%) at 0 to 50% at epoch 1
    assert epochs_to_reach(history, 0.5) == pytest.approx(1.0)
    assert epochs_to_reach(history, 0.10) == pytest.approx(2.5)  # halfway from 15% to 5%
    assert epochs_to_reach(history, 0.01) is None
    # the fastest that got there
    errors = {0.01: 0.4, 0.1: 0.08, 0.3: 0.06, 1.0: 0.9}
    assert choose_rate({0.01: None, 0.1: 3.2, 0.3: 2.1, 1.0: None}, errors) == 0.3
    # none got there: the one that learned most, not a rate whose loss blew up (quick mode's 0.3
    # for ReLU: a loss of 678,746, 8.4% on the test set, below chance)
    assert choose_rate({0.03: None, 0.3: None}, {0.03: 0.55, 0.3: 0.885}) == 0.03
    assert choose_rate({0.01: None, 0.1: None}, {0.01: 0.9, 0.1: 0.9}) == 0.01


def test_relu_vs_tanh_verdict_on_synthetic_runs():
    from cnnzoo.experiments.relu_vs_tanh import judge_speed

    def rows(relu, tanh):
        return [{"activation": activation, "seed": s, "epochs_to_threshold": e}
                for activation, firsts in (("relu", relu), ("tanh", tanh))
                for s, e in enumerate(firsts)]

    clear, _ = judge_speed(rows([2.0, 2.2, 1.9], [12.0, 14.0, 11.0]), epochs=30)
    assert clear.finding == "held" and math.exp(clear.low) > 2
    none, _ = judge_speed(rows([4.0, 4.2, 3.9], [4.1, 4.0, 4.05]), epochs=30)
    assert none.finding == "did not hold"
    noisy, _ = judge_speed(rows([2.0, 6.0, 3.0], [9.0, 5.0, 14.0]), epochs=30)
    assert noisy.finding == "not resolvable at this budget" and noisy.seeds_needed > 3
    coarse, text = judge_speed(rows([0.8, 0.9, 0.7], [12.0, 14.0, 11.0]), epochs=30)
    assert coarse.finding == "not resolvable at this budget" and "first epoch" in text


def test_mean_std_and_markdown_table():
    assert mean_std([0.5]) == (0.5, 0.0)
    mean, std = mean_std([0.8, 0.9, float("nan")])
    assert mean == pytest.approx(0.85) and std == pytest.approx(0.0707107, rel=1e-5)
    table = markdown_table([{"arm": "a", "top1": 0.91234567, "n": 60000, "x": None}])
    assert table.splitlines() == ["| arm | top1 | n | x |", "|---|---|---|---|",
                                  "| a | 0.9123 | 60,000 | — |"]


def test_unknown_experiment_and_bad_seeds():
    from cnnzoo.experiments.catalog import UnknownExperimentError

    with pytest.raises(UnknownExperimentError, match="choose one of"):
        run_experiment("relu-vs-sigmoid")
    with pytest.raises(ValueError, match="at least 1"):
        run_experiment("params", seeds=0)


# ------------------------------------------------------------------------------------------ the CLI


@pytest.fixture
def cli_with_experiment():
    from cnnzoo import cli

    return cli.main


def test_cli_help_lists_every_experiment(capsys, cli_with_experiment):
    with pytest.raises(SystemExit) as exit_info:
        cli_with_experiment(["experiment", "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for name in [*EXPERIMENTS, "--quick", "--seeds", "--out", "--data-dir", "--json"]:
        assert name in text


def test_cli_params_json_and_text(tmp_path, capsys, cli_with_experiment):
    assert cli_with_experiment(["experiment", "params", "--json", "--out",
                                str(tmp_path / "j")]) == 0
    captured = capsys.readouterr()
    result = json.loads(captured.out)  # exactly one JSON object on stdout
    assert result["summary"]["bottleneck_weights"] == 69_632 and result["run_dir"] == str(
        tmp_path / "j"
    )
    assert "[params]" in captured.err  # progress on stderr
    assert cli_with_experiment(["experiment", "params", "--out", str(tmp_path / "t")]) == 0
    text = capsys.readouterr().out
    assert "HELD" in text and "results.md" in text


@pytest.mark.parametrize("argv", [["experiment", "params", "--seeds", "0"],
                                  ["experiment", "resnet-vs-vgg"]])
def test_cli_rejects_bad_arguments(capsys, cli_with_experiment, argv):
    with pytest.raises(SystemExit) as exit_info:
        cli_with_experiment(argv)
    assert exit_info.value.code == 2


def test_commands_module_imports_no_torch():
    code = ("import sys, cnnzoo.commands.experiment, cnnzoo.experiments; assert 'torch' not in "
            "sys.modules, 'torch was imported'")
    subprocess.run([sys.executable, "-c", code], check=True)
