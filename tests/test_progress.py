"""Progress of long commands: a bar on a terminal, a line per stage elsewhere, nothing on stdout,
and a time left measured from this run's own pace; the experiment's printed table and its plots."""

from __future__ import annotations

import io
import json

import pytest

from cnnzoo.cli import main
from cnnzoo.task_progress import TaskProgress, duration


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_off_a_terminal_each_stage_is_one_line_and_the_time_left_is_measured():
    clock, stream = Clock(), io.StringIO()
    with TaskProgress("index", stream=stream, terminal=False, clock=clock) as progress:
        progress.stage("loading")
        clock.now = 3.0
        progress.stage("features", total=1000)
        assert progress.seconds_left() is None  # nothing measured yet: no guess
        clock.now = 3.5
        progress.advance(100)
        assert progress.seconds_left() is None  # under a second of the stage: still no figure
        clock.now = 23.0
        progress.advance(400)  # 500 of 1,000 in 20 s: 20 s left at this pace
        assert progress.seconds_left() == pytest.approx(20.0)
        clock.now = 43.0
        progress.advance(500)
    lines = stream.getvalue().splitlines()
    assert lines[0] == "index: loading …" and lines[1] == "index: features (1,000) …"
    assert lines[2] == "index: features 50% (500/1,000), about 20 s left"
    assert lines[-1] == "index: done in 43 s" and "\r" not in stream.getvalue()


def test_on_a_terminal_one_bar_is_redrawn_and_cleared():
    clock, stream = Clock(), io.StringIO()
    progress = TaskProgress("eval", stream=stream, terminal=True, clock=clock)
    progress.stage("test images", total=200)
    for _ in range(4):
        clock.now += 2.0
        progress.advance(50)
    progress.close()
    text = stream.getvalue()
    # redrawn in place, up to a full bar
    assert text.count("\r\x1b[2K") >= 5 and "[" + "#" * 24 + "]" in text
    assert text.endswith("\r\x1b[2Keval: done in 8 s\n") and text.count("\n") == 1


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_training_draws_its_bar_with_running_figures_on_a_terminal_only(tiny_mnist_dir, tmp_path,
                                                                         monkeypatch):
    from cnnzoo import task_progress
    from cnnzoo.engine import progress as training_progress
    from cnnzoo.engine.config import TrainConfig
    from cnnzoo.engine.train import train

    monkeypatch.setattr(task_progress, "REDRAW_EVERY", 0.0)  # a tiny run's epoch is quicker

    def train_into(stream, name: str) -> str:
        monkeypatch.setattr(training_progress.sys, "stderr", stream)
        train(TrainConfig(model="mlp", model_kwargs={"hidden": [16]}, dataset="mnist",
                          data_dir=str(tiny_mnist_dir), epochs=2, batch_size=10, precision="fp32",
                          compile="off", snapshots="off", out=str(tmp_path / name)),
              log=lambda message: None, progress=True)
        return stream.getvalue()

    drawn = train_into(Terminal(), "tty")
    assert "train: epoch 1/2 [" in drawn and "train: epoch 2/2 [" in drawn
    assert " img/s" in drawn and "acc " in drawn  # the running figures, after the bar
    assert drawn.endswith("\r\x1b[2K") and "\n" not in drawn  # cleared: the epoch lines stand alone
    assert train_into(io.StringIO(), "log") == ""  # a log file gets the epoch lines only


def test_a_commands_own_line_clears_the_bar_and_counted_batches_advance_it():
    clock, stream = Clock(), io.StringIO()
    progress = TaskProgress("race", stream=stream, terminal=True, clock=clock)
    progress.stage("tutorial", total=6)
    progress.note("  epoch 1: 80%")
    assert stream.getvalue().endswith("] 0% (0/6)\r\x1b[2K  epoch 1: 80%\n")
    seen = []
    for batch in progress.counted([[1, 2], [3, 4, 5, 6]]):
        seen.append((batch, progress.done))  # advanced once each batch is used, not before
        clock.now += 1.0
    assert seen == [([1, 2], 0), ([3, 4, 5, 6], 2)] and progress.done == 6


def test_the_time_left_over_alike_stages_follows_the_pace_so_far():
    clock, stream = Clock(), io.StringIO()
    progress = TaskProgress("bench", stream=stream, terminal=False, clock=clock)
    progress.step("lenet5", 0, 3)
    clock.now = 19.0
    progress.step("convnet", 1, 3)
    assert stream.getvalue().splitlines() == ["bench: lenet5 (1/3) …",
                                              "bench: convnet (2/3, about 38 s left) …"]
    clock.now = 38.0
    progress.step("resnet20", 2, 4, costs=[30, 30, 300, 300])  # the last two cost 10 times more
    assert stream.getvalue().splitlines()[-1] == "bench: resnet20 (3/4, about 6 min 20 s left) …"
    shown = [duration(s) for s in (8, 200, 1920, 3900)]
    assert shown == ["8 s", "3 min 20 s", "32 min", "1 h 05 min"]


def test_eval_reports_its_stages_on_stderr_and_keeps_stdout_json(tiny_mnist_dir, tmp_path, capsys):
    from cnnzoo.engine.config import TrainConfig
    from cnnzoo.engine.train import train

    out = tmp_path / "run"
    train(TrainConfig(model="lenet5", dataset="mnist", data_dir=str(tiny_mnist_dir), epochs=1,
                      batch_size=64, out=str(out)))
    capsys.readouterr()
    assert main(["eval", str(out), "--data-dir", str(tiny_mnist_dir), "--json"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["images"] == 200
    assert "eval: loading mnist" in captured.err and "eval: center view of each test image (200)" \
        in captured.err and "eval: done in" in captured.err


def test_experiment_prints_its_table_and_verdict(monkeypatch, capsys):
    """Quick or full, the command prints the runs' table before the verdict."""
    from cnnzoo.experiments import catalog

    rows = [{"activation": "relu", "seed": 0, "final_test_top1": 0.356},
            {"activation": "tanh", "seed": 0, "final_test_top1": 0.4}]
    effect = {"measure": "log(tanh epochs / ReLU epochs)", "mean": 0.1, "low": -0.2, "high": 0.4,
              "seeds": 1, "paper_figure": "6x"}
    result = {"experiment": "relu-vs-tanh", "claim": "ReLU is faster", "held": False, "quick": True,
              "finding": "not resolvable at this budget", "verdict": "not shown.", "rows": rows,
              "effects": [effect], "results_md": "r.md", "plot": "p.png"}
    monkeypatch.setattr(catalog, "run_experiment", lambda *args, **kwargs: result)
    assert main(["experiment", "relu-vs-tanh", "--quick"]) == 0
    out = capsys.readouterr().out
    assert "| activation | seed | final_test_top1 |" in out and "| tanh | 0 | 0.4 |" in out
    assert out.index("| relu |") < out.index("NOT RESOLVABLE AT THIS BUDGET") \
        < out.index("[-0.2, +0.4]")


def test_experiment_plots_count_whole_epochs_in_plain_numbers():
    from cnnzoo.experiments.base import ArmRun
    from cnnzoo.experiments.relu_vs_tanh import _plot

    def arm(errors):
        history = [{"epoch": e + 1, "train_top1": 1 - x} for e, x in enumerate(errors)]
        return ArmRun("a", 0, {}, history)

    figure = _plot({"relu": [arm([0.9, 0.63])], "tanh": [arm([0.75, 0.65])]},
                   {"relu": 0.1, "tanh": 0.03}, 500)
    figure.canvas.draw()
    (ax,) = figure.axes
    x_labels = [t.get_text() for t in ax.get_xticklabels() if t.get_text()]
    y_labels = [t.get_text() for t in ax.get_yticklabels(minor=True) + ax.get_yticklabels()
                if t.get_text()]
    assert x_labels and all(float(x).is_integer() for x in x_labels)  # no "1.2 epochs"
    assert y_labels and all(float(y) > 0 for y in y_labels)  # "0.6", not "6×10⁻¹"
