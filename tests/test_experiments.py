"""Tests for cnnzoo.experiments: every experiment's quick mode on real Fashion-MNIST writes well-formed results,
the parameter counts are exact, the helpers compute what they say, and the CLI lists, runs and reports.

The quick modes train a few hundred images for an epoch or two, so what they measure is noise; these tests
check the plumbing and the ranges of the numbers, never whether a claim held.
"""

from __future__ import annotations

import csv
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from cnnzoo.experiments import EXPERIMENTS, run_experiment
from cnnzoo.experiments.base import RESULT_KEYS, markdown_table, mean_std

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


needs_data = pytest.mark.needs_fashion_mnist

# Rows each quick experiment writes (arms × seeds); batchnorm runs with 2 seeds to exercise the spread.
QUICK_SEEDS = {"batchnorm": 2}
EXPECTED_ROWS = {"relu-vs-tanh": 2, "dropout": 2, "lrn": 2, "overlapping-pool": 2, "batchnorm": 4, "depth": 4,
                 "params": 7}


def check_result_files(result: dict) -> list[dict]:
    """The result dict has every documented key; csv, md and png exist and agree with it. Returns the csv rows."""
    assert set(RESULT_KEYS) <= set(result)
    assert isinstance(result["verdict"], str) and len(result["verdict"]) > 40
    assert result["claim"] and result["paper"]
    json.dumps(result, allow_nan=False)  # plain JSON: no NaN, no tuples or paths
    run_dir = Path(result["run_dir"])
    for key, name in (("results_csv", "results.csv"), ("results_md", "results.md"), ("plot", "plot.png")):
        assert Path(result[key]) == run_dir / name and Path(result[key]).is_file()
    assert Path(result["plot"]).read_bytes()[:8] == PNG_SIGNATURE
    with open(result["results_csv"], newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == len(result["rows"]) == EXPECTED_ROWS[result["experiment"]]
    markdown = Path(result["results_md"]).read_text()
    assert "**Claim:**" in markdown and ("held here" in markdown or "did not hold here" in markdown)
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
    """Each training experiment run once in quick mode, when a test first asks for it (6–12 s each)."""

    def __init__(self, tmp_path_factory):
        super().__init__()
        self.tmp_path_factory = tmp_path_factory

    def __missing__(self, name: str) -> dict:
        out = self.tmp_path_factory.mktemp(name.replace("-", "_"))
        self[name] = run_experiment(name, quick=True, out=out, seeds=QUICK_SEEDS.get(name), log=lambda m: None)
        return self[name]


@pytest.fixture(scope="module")
def quick_results(tmp_path_factory) -> QuickResults:
    return QuickResults(tmp_path_factory)


# `make test` runs two of the quick experiments (an ablation with 2 seeds, one with 1); the rest are slow.
DEFAULT_QUICK = {"batchnorm", "lrn"}
QUICK = [name if name in DEFAULT_QUICK else pytest.param(name, marks=pytest.mark.slow)
         for name in EXPERIMENTS if name != "params"]


@needs_data
@pytest.mark.parametrize("name", QUICK)
def test_quick_experiment_writes_well_formed_results(quick_results, name):
    result = quick_results[name]
    assert result["experiment"] == name and result["quick"] is True
    rows = check_result_files(result)
    assert_fractions_in_range(rows)
    for row in result["rows"]:  # every arm trained to the end (a tiny run at these rates does not diverge)
        assert row.get("diverged") is False
    arms = Path(result["run_dir"]) / "arms"
    assert len(list(arms.glob("*/metrics.csv"))) == len(rows)


@needs_data
@pytest.mark.slow
def test_quick_relu_vs_tanh_reports_epochs_to_the_mark(quick_results):
    result = quick_results["relu-vs-tanh"]
    assert {row["activation"] for row in result["rows"]} == {"relu", "tanh"}
    for row in result["rows"]:
        assert row["epochs_to_25pct"] is None or 1 <= row["epochs_to_25pct"] <= row["epochs_run"]
        assert row["images_per_second"] > 0
    summary = result["summary"]
    assert set(summary["mean_epochs_to_25pct"]) == {"relu", "tanh"}
    assert "25%" in result["verdict"]


@needs_data
def test_quick_ablations_report_mean_and_spread(quick_results):
    batchnorm = quick_results["batchnorm"]["summary"]
    assert batchnorm["seeds"] == 2
    assert set(batchnorm["test_top1_mean"]) == {"batchnorm", "plain"}
    assert all(0.0 <= v <= 1.0 for v in batchnorm["test_top1_mean"].values())
    assert batchnorm["spread"] >= 0.0 and math.isfinite(batchnorm["difference"])
    assert {row["seed"] for row in quick_results["batchnorm"]["rows"]} == {0, 1}
    assert quick_results["lrn"]["summary"]["seeds"] == 1
    assert "one seed only" in quick_results["lrn"]["verdict"]


@needs_data
@pytest.mark.slow
def test_quick_dropout_measures_train_accuracy_in_eval_mode(quick_results):
    result = quick_results["dropout"]
    assert sorted(row["dropout"] for row in result["rows"]) == [0.0, 0.5]
    for row in result["rows"]:
        assert row["gap"] == pytest.approx(row["train_top1_eval_mode"] - row["test_top1"], abs=1e-4)


@needs_data
@pytest.mark.slow
def test_quick_depth_compares_four_networks(quick_results):
    result = quick_results["depth"]
    assert [row["model"] for row in result["rows"]] == ["plain20", "plain56", "resnet20", "resnet56"]
    assert {row["depth"] for row in result["rows"]} == {20, 56}
    assert set(result["summary"]["final_train_error"]) == {"plain20", "plain56", "resnet20", "resnet56"}


def _arms(**train_top1: float):
    from cnnzoo.experiments.base import ArmRun

    return {model: [ArmRun(model, 0, {}, [{"epoch": 1, "train_top1": top1, "test_top1": top1}])]
            for model, top1 in train_top1.items()}


@pytest.mark.parametrize("plain56, resnet56, held", [
    (0.80, 0.95, True),  # deeper plain trains worse, deeper residual better: the paper's finding
    (0.92, 0.95, False),  # no degradation of the plain net
    (0.80, 0.85, False),  # the residual net degrades too
])
def test_depth_verdict_on_synthetic_histories(plain56, resnet56, held):
    from cnnzoo.experiments.depth import judge

    verdict_held, summary, verdict = judge(_arms(plain20=0.90, plain56=plain56, resnet20=0.90, resnet56=resnet56))
    assert verdict_held is held
    assert summary["final_train_error"]["plain56"] == pytest.approx(1 - plain56)
    assert ("no degradation" in verdict) == (plain56 >= 0.90)


def test_a_diverged_arm_counts_as_chance():
    from cnnzoo.experiments.base import ArmRun
    from cnnzoo.experiments.depth import judge

    arms = _arms(plain20=0.90, resnet20=0.90, resnet56=0.95)
    arms["plain56"] = [ArmRun("plain56", 0, {}, [], diverged=True)]
    held, summary, _ = judge(arms)
    assert held and summary["final_train_error"]["plain56"] == pytest.approx(0.9)


def test_params_counts_are_exact(tmp_path):
    result = run_experiment("params", out=tmp_path / "params", log=lambda m: None)
    check_result_files(result)
    summary = result["summary"]
    assert summary["bottleneck_weights"] == 69_632
    assert summary["two_3x3_weights"] == 1_179_648
    assert round(summary["resnet_ratio"], 2) == 16.94
    # Inception 3a's 5×5 branch on 28×28×192: 192·16 + 25·16·32 weights against 25·192·32.
    assert summary["inception_5x5_weights"] == {"with_reduce": 15_872, "without_reduce": 153_600}
    assert summary["inception_5x5_macs"] == {"with_reduce": 28 * 28 * 15_872, "without_reduce": 28 * 28 * 153_600}
    assert result["held"] is True
    assert "69,632" in result["verdict"] and "1,179,648" in result["verdict"]


# ---------------------------------------------------------------------------------------------------- helpers


def test_epochs_to_reach_the_mark():
    from cnnzoo.experiments.relu_vs_tanh import epochs_to_reach, seconds_to_epoch

    history = [{"epoch": 1, "train_top1": 0.6, "epoch_seconds": 2.0}, {"epoch": 2, "train_top1": 0.75,
               "epoch_seconds": 2.5}, {"epoch": 3, "train_top1": 0.9, "epoch_seconds": 2.0}]
    assert epochs_to_reach(history, 0.25) == 2  # an error of exactly 25% counts as reaching it
    assert epochs_to_reach(history, 0.05) is None
    assert seconds_to_epoch(history, 2) == 4.5 and seconds_to_epoch(history, None) is None


def test_mean_std_and_markdown_table():
    assert mean_std([0.5]) == (0.5, 0.0)
    mean, std = mean_std([0.8, 0.9, float("nan")])
    assert mean == pytest.approx(0.85) and std == pytest.approx(0.0707107, rel=1e-5)
    table = markdown_table([{"arm": "a", "top1": 0.91234567, "n": 60000, "x": None}])
    assert table.splitlines() == ["| arm | top1 | n | x |", "|---|---|---|---|", "| a | 0.9123 | 60,000 | — |"]


def test_unknown_experiment_and_bad_seeds():
    from cnnzoo.experiments.catalog import UnknownExperimentError

    with pytest.raises(UnknownExperimentError, match="choose one of"):
        run_experiment("relu-vs-sigmoid")
    with pytest.raises(ValueError, match="at least 1"):
        run_experiment("params", seeds=0)


# ---------------------------------------------------------------------------------------------------- the CLI


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
    assert cli_with_experiment(["experiment", "params", "--json", "--out", str(tmp_path / "j")]) == 0
    captured = capsys.readouterr()
    result = json.loads(captured.out)  # exactly one JSON object on stdout
    assert result["summary"]["bottleneck_weights"] == 69_632 and result["run_dir"] == str(tmp_path / "j")
    assert "[params]" in captured.err  # progress on stderr
    assert cli_with_experiment(["experiment", "params", "--out", str(tmp_path / "t")]) == 0
    text = capsys.readouterr().out
    assert "HELD" in text and "results.md" in text


@pytest.mark.parametrize("argv", [["experiment", "params", "--seeds", "0"], ["experiment", "resnet-vs-vgg"]])
def test_cli_rejects_bad_arguments(capsys, cli_with_experiment, argv):
    with pytest.raises(SystemExit) as exit_info:
        cli_with_experiment(argv)
    assert exit_info.value.code == 2


def test_commands_module_imports_no_torch():
    code = ("import sys, cnnzoo.commands.experiment, cnnzoo.experiments; "
            "assert 'torch' not in sys.modules, 'torch was imported'")
    subprocess.run([sys.executable, "-c", code], check=True)
