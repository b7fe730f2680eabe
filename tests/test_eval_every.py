"""``--eval-every N``: a run evaluates on the test set every N epochs and after its last, whether
the epochs or the time budget end it; the epochs between leave their test figures empty, and every
reader of metrics.csv (curves, compare, timeline, the race) takes only the evaluated ones."""

from __future__ import annotations

import json

import pytest

from cnnzoo import rundir
from cnnzoo.bench.race import seconds_to_reach
from cnnzoo.cli import main
from cnnzoo.engine import checkpoint as ckpt
from cnnzoo.engine.config import TrainConfig
from cnnzoo.engine.evaluate import evaluate_run
from cnnzoo.engine.run import load_run
from cnnzoo.engine.snapshots import read_snapshots
from cnnzoo.engine.train import train
from cnnzoo.errors import ConfigError

TEST_FIGURES = ("test_loss", "test_top1", "test_top5")


def tiny(data_dir, out, **changes) -> TrainConfig:
    settings = dict(model="lenet5", dataset="mnist", data_dir=str(data_dir), epochs=5,
                    batch_size=128, lr=0.1, precision="fp32", channels_last=False,
                    compile="off", snapshots="all", out=str(out))
    return TrainConfig(**{**settings, **changes})


def evaluated_epochs(run_dir) -> list[int]:
    return [row["epoch"] for row in rundir.read_metrics(run_dir)
            if row["test_top1"] is not None]


@pytest.fixture(scope="module")
def every_other(tiny_mnist_dir, tmp_path_factory):
    """lenet5 trained 5 epochs with --eval-every 2: (run dir, summary, the lines it logged)."""
    out = tmp_path_factory.mktemp("eval-every") / "run"
    said: list[str] = []
    summary = train(tiny(tiny_mnist_dir, out, eval_every=2), log=said.append)
    return out, summary, said


def test_a_run_evaluates_every_nth_epoch_and_its_last(every_other):
    run_dir, summary, said = every_other
    rows = rundir.read_metrics(run_dir)
    assert [row["epoch"] for row in rows] == [1, 2, 3, 4, 5]  # every epoch has its row
    assert evaluated_epochs(run_dir) == [2, 4, 5]
    for row in rows:
        skipped = row["epoch"] in (1, 3)
        assert all((row[key] is None) == skipped for key in TEST_FIGURES)
        assert row["train_top1"] is not None and row["epoch_seconds"] > 0
    epoch_lines = [line for line in said if line.startswith("epoch ")]
    assert [("test acc" in line) for line in epoch_lines] == [False, True, False, True, True]
    # the summary is the last epoch's evaluation, and `best` the best of the evaluated ones
    assert summary["test_top1"] == pytest.approx(rows[-1]["test_top1"], abs=1e-5)
    assert summary["best_test_top1"] == pytest.approx(
        max(row["test_top1"] for row in rundir.evaluated(rows)), abs=1e-5)
    best = ckpt.load_checkpoint(run_dir / rundir.BEST).meta
    assert best["epoch"] in (2, 4, 5)
    assert best["test_top1"] == pytest.approx(summary["best_test_top1"], abs=1e-9)


def test_what_reads_the_metrics_takes_the_evaluated_epochs_only(every_other, tiny_mnist_dir):
    run_dir, summary, _ = every_other
    rows = rundir.read_metrics(run_dir)
    # `cnnzoo eval` of the last checkpoint gives the summary's figure
    result = evaluate_run(load_run(run_dir / rundir.LAST), data_dir=str(tiny_mnist_dir))
    assert result.top1 == pytest.approx(summary["test_top1"], abs=1e-5)
    # snapshots carry the accuracy of the epochs that have one, and none for the others
    accuracy = {s.epoch: s.test_top1 for s in read_snapshots(run_dir)}
    assert accuracy[1] is None and accuracy[3] is None
    assert accuracy[4] == pytest.approx(rows[3]["test_top1"], abs=1e-5)
    # the race's "reached" reads past the empty rows rather than failing on them
    elapsed = sum(row["epoch_seconds"] for row in rows[:2])
    assert seconds_to_reach(rows, 0.0, rows[1]["test_top1"]) == pytest.approx(elapsed, abs=0.01)
    assert (run_dir / "curves.png").stat().st_size > 10_000


def test_compare_and_timeline_draw_the_evaluated_epochs(every_other, tiny_mnist_dir, tmp_path,
                                                        capsys):
    run_dir, summary, _ = every_other
    assert main(["compare", str(run_dir), str(run_dir), "--data-dir", str(tiny_mnist_dir),
                 "--out", str(tmp_path / "compare"), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["runs"][0]["best_epoch_top1"] == pytest.approx(summary["best_test_top1"],
                                                                 abs=1e-5)
    assert report["runs"][0]["epochs"] == 5
    assert main(["show", "timeline", str(run_dir), "--out", str(tmp_path / "timeline"),
                 "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["epochs"] == [0, 1, 2, 3, 4, 5]


def test_the_epoch_a_time_budget_ends_is_evaluated_and_saved_as_the_last(tiny_mnist_dir,
                                                                         tmp_path):
    # as many epochs as a second holds, a varying number: a gentle rate and a clipped gradient keep
    # the loss finite however many (lr 0.1 unclipped diverged after ten epochs on this tiny set)
    summary = train(tiny(tiny_mnist_dir, tmp_path / "run", epochs=10_000, time_budget=1.0,
                         eval_every=10_000, lr=0.02, grad_clip=1.0))
    assert summary["stopped_by"] == "time_budget" and summary["epochs"] >= 1
    epochs = summary["epochs"]
    assert evaluated_epochs(tmp_path / "run") == [epochs]
    assert ckpt.load_checkpoint(tmp_path / "run" / rundir.LAST).meta["epoch"] == epochs
    assert summary["test_top1"] == pytest.approx(
        rundir.read_metrics(tmp_path / "run")[-1]["test_top1"], abs=1e-5)


def test_a_resume_may_change_how_often_the_run_is_evaluated(tiny_mnist_dir, tmp_path):
    train(tiny(tiny_mnist_dir, tmp_path / "run", epochs=2, snapshots="off"))
    train(None, resume=tmp_path / "run", overrides={"epochs": 5, "eval_every": 3})
    assert evaluated_epochs(tmp_path / "run") == [1, 2, 3, 5]
    saved = json.loads((tmp_path / "run" / rundir.CONFIG).read_text())
    assert saved["eval_every"] == 3


def test_the_plateau_schedule_needs_every_epoch_evaluated(capsys, tmp_path):
    with pytest.raises(ConfigError, match="--eval-every 2"):
        TrainConfig(model="lenet5", schedule="plateau", eval_every=2)
    code = main(["train", "--model", "lenet5", "--schedule", "plateau", "--eval-every", "2",
                 "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert code == 2 and "--schedule plateau" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "r").exists()


def test_metrics_keep_rows_with_empty_test_figures_and_drop_rows_cut_short(tmp_path):
    (tmp_path / rundir.METRICS).write_text(
        "epoch,train_loss,test_top1,epoch_seconds\n"
        "1,0.5,,2.0\n"      # not evaluated
        "2,0.4,0.9,2.0\n"
        "3,0.3,0.91,\n"     # cut short as it was written
    )
    rows = rundir.read_metrics(tmp_path)
    assert rows == [{"epoch": 1, "train_loss": 0.5, "test_top1": None, "epoch_seconds": 2.0},
                    {"epoch": 2, "train_loss": 0.4, "test_top1": 0.9, "epoch_seconds": 2.0}]
    assert rundir.evaluated(rows) == rows[1:]
