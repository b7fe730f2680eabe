"""``cnnzoo bench race`` and ``cnnzoo bench hardware`` on tiny settings: well-formed output,
consistent figures.

No speed is asserted: the race's figures are checked against the run it made (its budget, its
metrics).
"""

from __future__ import annotations

import json

import pytest
import torch

from cnnzoo.bench.hardware import matmul_peak, measured_peaks, peak_precisions, training_utilisation
from cnnzoo.bench.race import seconds_to_reach
from cnnzoo.cli import main
from cnnzoo.engine.machine import machine_name
from cnnzoo.rundir import read_metrics


def test_time_to_reach_counts_epochs_up_to_the_first_one_at_the_accuracy():
    history = [{"epoch_seconds": "2.0", "test_top1": "0.80"}, {"epoch_seconds": "2.5",
                                                               "test_top1": "0.90"},
               {"epoch_seconds": "2.0", "test_top1": "0.95"}]
    assert seconds_to_reach(history, tuning_seconds=0.5, accuracy=0.90) == 5.0
    assert seconds_to_reach(history, tuning_seconds=0.0, accuracy=0.70) == 2.0
    assert seconds_to_reach(history, tuning_seconds=0.0, accuracy=0.99) is None


def test_race_gives_cnnzoo_the_tutorial_time_and_the_speedup_from_its_own_metrics(
    tiny_mnist_dir, tmp_path, capsys
):
    out = tmp_path / "race"
    assert main(["bench", "race", "--dataset", "mnist", "--data-dir", str(tiny_mnist_dir),
                 "--epochs", "1",
                 "--cnnzoo-epochs", "2", "--test-subset", "100", "--race-out", str(out),
                 "--json"]) == 0
    captured = capsys.readouterr()
    result = json.loads(captured.out)  # the stages and the runs' lines go to stderr
    tutorial, cnnzoo = result["tutorial"], result["cnnzoo"]
    assert isinstance(result["caution"], list)  # bench's warnings reach the race's JSON too
    stages = [line for line in captured.err.splitlines() if line.startswith("bench race: ")]
    same = f"{tutorial['seconds']:.1f} s"
    assert stages == ["bench race: loading mnist …",
                      "bench race: the tutorial's convnet for 1 epochs on 600 images …",
                      f"bench race: cnnzoo's budgetnet-fast in the same {same} …",
                      stages[-1]] and stages[-1].startswith("bench race: done in")
    assert (
        tutorial["model"] == "convnet" and tutorial["epochs"] == 1 and tutorial["batch_size"] == 256
    )
    assert (
        result["train_images"] == 600
        and result["test_images"] == 100
        and result["machine"] == machine_name()
    )
    # cnnzoo's run is the recipe's, for the tutorial's time at most, and the figures reported are
    # that run's
    config, summary = (
        json.loads((out / name).read_text()) for name in ("config.json", "summary.json")
    )
    assert cnnzoo["recipe"] == "budgetnet-fast" and config["time_budget"] == tutorial["seconds"]
    assert (cnnzoo["test_top1"], cnnzoo["seconds"], cnnzoo["epochs"]) == (
        summary["test_top1"], summary["train_seconds"], summary["epochs"])
    assert cnnzoo["epochs"] == 2 or (
        summary["stopped_by"] == "time_budget" and cnnzoo["seconds"] >= tutorial["seconds"]
    )
    # the time to the tutorial's accuracy is the first epoch at or above it in the run's own metrics
    reached = seconds_to_reach(read_metrics(out), summary["tuning"]["seconds"],
                               tutorial["test_top1"])
    assert cnnzoo["seconds_to_tutorial_accuracy"] == reached
    assert result["speedup"] == (round(tutorial["seconds"] / reached, 2) if reached else None)


def test_utilisation_is_against_the_peak_of_the_precision_trained_in():
    peaks = {"fp32": 2e9, "bf16": 2e8}
    fp32 = training_utilisation("lenet5", input_size=(1, 28, 28), batch_size=8, steps=1,
                                precision="fp32", channels_last=False, peaks=peaks)
    bf16 = training_utilisation("lenet5", input_size=(1, 28, 28), batch_size=8, steps=1,
                                precision="bf16", peaks=peaks)
    for row, peak in ((fp32, 2e9), (bf16, 2e8)):
        achieved = 6 * row["macs_per_image"] * row["images_per_second"]
        assert row["peak_precision"] == row["precision"]
        assert row["fraction_of_peak"] == pytest.approx(achieved / peak, rel=0.02, abs=1e-3)
    assert bf16["peak_bf16_gflops"] == 0.2
    assert bf16["fraction_of_fp32_peak"] < bf16["fraction_of_peak"]


def test_the_peak_is_at_least_a_plain_matmul_measured_in_the_same_run():
    """The peak was once 5x below what a plain fp32 matmul reached, which made every utilisation
    meaningless. A fifth of slack for a busy machine's noise between the two measurements."""
    plain = matmul_peak(torch.float32, size=1024, seconds=0.2)
    peaks = measured_peaks("cpu", seconds=0.6)
    assert peaks["fp32"]["flops"] >= 0.8 * plain
    assert set(peaks["fp32"]["gflops_each"]) == {"matmul 1024", "matmul 2048", "conv 3x3"}


def test_hardware_command_measures_each_precision_and_names_the_machine(capsys):
    assert main(["bench", "hardware", "--models", "lenet5", "--batch-size", "8", "--steps", "1",
                 "--peak-size", "64", "--peak-seconds", "0.02", "--compile", "off", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)["hardware"]
    assert set(result["peaks_gflops"]) == set(peak_precisions(torch.device("cpu")))
    assert result["machine"]
    row, = result["models"]
    assert row["precision"] in result["peaks_gflops"] and row["peak_precision"] == row["precision"]
    assert row["inference_precision"] in result["peaks_gflops"]
    assert row["inference_gflops"] > 0
    # far below its peak (a LeNet is), a model's figures come with where its time goes
    for stage in ("training", "inference"):
        fraction = row["fraction_of_peak" if stage == "training" else "inference_fraction_of_peak"]
        assert (f"{stage}_top_operators" in row) == (fraction < 0.25)
    # "measured (not cached: …)" where a busy machine made its rounds disagree
    assert row["chosen_by"].startswith(("measured", "cache")) and 0 < row["fraction_of_peak"]
    assert torch.get_num_threads() == result["threads"]
    assert "compile_seconds" not in row  # --compile off: the eager step only


def test_gpu_script_is_valid_bash_and_cnnzoo_parses_each_of_its_commands():
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    script = root / "benchmarks" / "gpu.sh"
    subprocess.run(["bash", "-n", str(script)], check=True)
    env = {**os.environ, "PYTHON": sys.executable, "PYTHONPATH": str(root / "src")}
    result = subprocess.run(["bash", str(script), "--dry-run"], env=env, capture_output=True,
                            text=True, check=True)
    commands = [line for line in result.stderr.splitlines() if line.startswith("+ cnnzoo bench")]
    expected = ["hardware", "training", "inference", "race", "recipes"]
    assert [c.split()[3] for c in commands] == expected
    # the race trains on the recipe's device (auto: the GPU)
    assert all("--device cuda" in command for command in commands if " race " not in command)
    assert all("results/gpu-" in command for command in commands if "--out" in command)
    assert (
        subprocess.run(["bash", str(script), "--bogus"], env=env, capture_output=True).returncode
        == 2
    )


def test_recipes_measured_on_other_settings_never_overwrite_the_published_table(capsys):
    assert main(["bench", "recipes", "--recipes", "budgetnet-fast", "--epochs", "1"]) == 2
    assert "--results PATH" in capsys.readouterr().err
