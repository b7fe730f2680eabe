"""How a run learned and how two runs differ (issue #25, sections 3 and 4): ``train --snapshots``
keeps the kernels and maps of each epoch and a resumed run continues the series; ``show timeline``
draws it; ``cnnzoo compare`` agrees with ``cnnzoo summary``, ``eval`` and ``predict``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import cnnzoo
from cnnzoo import rundir
from cnnzoo.cli import main
from cnnzoo.engine import checkpoint as ckpt
from cnnzoo.engine import elastic, snapshots
from cnnzoo.engine.config import TrainConfig, snapshot_epochs
from cnnzoo.engine.run import load_run
from cnnzoo.engine.snapshots import read_snapshot, read_snapshots
from cnnzoo.engine.train import train
from cnnzoo.errors import ConfigError, DataFormatError, RunDirectoryError, Stopped
from cnnzoo.visualize.activations import activations
from cnnzoo.visualize.source import model_input


def tiny(data_dir, out, **changes) -> TrainConfig:
    settings = dict(
        model="lenet5",
        dataset="mnist",
        data_dir=data_dir and str(data_dir),
        epochs=2,
        batch_size=128,
        lr=0.1,
        precision="fp32",
        channels_last=False,
        compile="off",
        snapshots="all",
        out=str(out),
    )
    return TrainConfig(**{**settings, **changes})


def first_conv(run_dir: Path, name: str = "features.0.weight") -> torch.Tensor:
    return ckpt.load_checkpoint(run_dir / rundir.LAST).group("model")[name]


@pytest.fixture(scope="module")
def extended_run(tiny_mnist_dir, tmp_path_factory):
    """lenet5 trained one epoch, then extended to two: (run dir, its first conv after epoch 1)."""
    out = tmp_path_factory.mktemp("snapshots") / "lenet5"
    train(tiny(tiny_mnist_dir, out, epochs=1))
    after_one = first_conv(out).clone()
    train(None, resume=out, overrides={"epochs": 2})
    return out, after_one


def test_each_snapshot_holds_the_kernels_and_maps_of_its_epoch(extended_run):
    run_dir, after_one = extended_run
    series = read_snapshots(run_dir)
    assert [s.epoch for s in series] == [
        0,
        1,
        2,
    ]  # the resume went on from 1, without a second copy
    assert torch.equal(series[1].kernels, after_one)
    assert torch.equal(series[2].kernels, first_conv(run_dir))
    assert not torch.equal(series[0].kernels, series[1].kernels)
    run = load_run(
        run_dir / rundir.LAST
    )  # the weights after epoch 2: the last snapshot's maps are theirs
    last = series[-1]
    assert list(last.maps) == ["C1", "C3"] and len(last.images) == 4
    assert len(set(last.labels.tolist())) == 4  # one image of each of four classes
    outputs = activations(run.model, model_input(run, last.images), list(last.maps))
    for stage, maps in last.maps.items():
        torch.testing.assert_close(
            maps, outputs[stage], atol=2e-3, rtol=2e-3
        )  # kept in half precision
    assert last.test_top1 == pytest.approx(rundir.read_metrics(run_dir)[-1]["test_top1"], abs=1e-5)
    assert sum(p.stat().st_size for p in rundir.snapshot_epochs(run_dir).values()) < 3 * 64 * 1024


def test_a_run_resumed_after_a_crash_continues_its_series_as_if_never_stopped(
    tiny_mnist_dir, tmp_path, monkeypatch
):
    """Killed in epoch 4 with its checkpoint at epoch 2 (every 2 epochs): epoch 3's snapshot is
    beyond the checkpoint, so the resumed run drops it and takes it again."""
    config = {"epochs": 4, "checkpoint_every": 2}
    train(tiny(tiny_mnist_dir, tmp_path / "reference", **config))

    def stop(*, epoch: int, step: int) -> None:
        if (epoch, step) == (4, 1):
            raise KeyboardInterrupt

    monkeypatch.setattr(elastic, "kill_if_test_asks", stop)
    with pytest.raises(Stopped):
        train(tiny(tiny_mnist_dir, tmp_path / "run", **config))
    assert list(rundir.snapshot_epochs(tmp_path / "run")) == [0, 1, 2, 3]
    monkeypatch.undo()
    said: list[str] = []
    train(None, resume=tmp_path / "run", log=said.append)
    assert any("dropped the snapshots of epochs 3" in line for line in said)
    resumed, reference = read_snapshots(tmp_path / "run"), read_snapshots(tmp_path / "reference")
    assert [s.epoch for s in resumed] == [s.epoch for s in reference] == [0, 1, 2, 3, 4]
    for got, expected in zip(resumed, reference, strict=True):
        assert torch.equal(got.kernels, expected.kernels)
        assert all(torch.equal(got.maps[k], expected.maps[k]) for k in expected.maps)


@pytest.mark.parametrize("share, kept", [(0.0, False), (1e9, True)])
def test_auto_keeps_snapshots_only_while_they_are_cheap_and_a_resume_keeps_to_it(
    tiny_mnist_dir, tmp_path, monkeypatch, share, kept
):
    monkeypatch.setattr(snapshots, "AUTO_SHARE", share)
    said: list[str] = []
    train(tiny(tiny_mnist_dir, tmp_path / "run", snapshots="auto"), log=said.append)
    line = next(line for line in said if line.startswith("snapshots: "))
    assert ("kept after every epoch" in line) == kept and "% of an epoch" in line
    assert ckpt.read_meta(tmp_path / "run" / rundir.LAST)["run_state"]["snapshots_kept"] is kept
    monkeypatch.setattr(snapshots, "AUTO_SHARE", 1e9 - share)  # the decision is not taken again
    train(None, resume=tmp_path / "run", overrides={"epochs": 3})
    assert list(rundir.snapshot_epochs(tmp_path / "run")) == ([0, 1, 2, 3] if kept else [0])


def test_chosen_epochs_and_models_without_a_convolution(tiny_mnist_dir, tmp_path):
    assert snapshot_epochs("2,0,2") == (0, 2) and snapshot_epochs("auto") is None
    for bad in ("", "1,x", "-1", "sometimes"):
        with pytest.raises(ConfigError, match="--snapshots must be"):
            TrainConfig(snapshots=bad)
    train(tiny(tiny_mnist_dir, tmp_path / "chosen", epochs=3, snapshots="0,2"))
    assert list(rundir.snapshot_epochs(tmp_path / "chosen")) == [0, 2]
    mlp = dict(model="mlp", model_kwargs={"hidden": [8]}, epochs=1)
    train(tiny(tiny_mnist_dir, tmp_path / "mlp", snapshots="auto", **mlp))
    assert not (tmp_path / "mlp" / rundir.SNAPSHOTS).exists()
    with pytest.raises(ConfigError, match="mlp has no convolution"):
        train(tiny(tiny_mnist_dir, tmp_path / "mlp-all", **mlp))
    assert not (tmp_path / "mlp-all").exists()  # a failed start leaves nothing


def test_snapshot_files_are_written_whole(extended_run, tmp_path, monkeypatch):
    run_dir = tmp_path / "run"
    shutil.copytree(extended_run[0], run_dir)
    path = rundir.snapshot_path(run_dir, 2)
    before = path.read_bytes()
    stale = path.parent / f".{path.name}.abcd1234.tmp"
    stale.write_bytes(before[:100])  # what a write killed midway leaves
    mine = path.parent / "notes.txt"
    mine.write_text("kept")
    rundir.make_run_dir(run_dir)
    assert not stale.exists() and mine.exists()
    snapshot = read_snapshot(path)
    taker = snapshots.SnapshotTaker.__new__(snapshots.SnapshotTaker)  # only what take() reads
    taker.run_dir, taker.first_seconds, taker.stages = run_dir, None, dict(C1="features.1")
    taker.images, taker.labels = snapshot.images, snapshot.labels
    run = load_run(run_dir / rundir.LAST)
    taker.x = model_input(run, snapshot.images)

    def full_disk(*args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("cnnzoo.files.os.fsync", full_disk)
    with pytest.raises(RunDirectoryError, match="the disk is full"):
        taker.take(run.model, 2)
    assert path.read_bytes() == before and sorted(p.name for p in path.parent.iterdir()) == [
        "epoch-0000.safetensors",
        "epoch-0001.safetensors",
        "epoch-0002.safetensors",
        "notes.txt",
    ]
    path.write_bytes(before[: len(before) // 2])
    with pytest.raises(DataFormatError, match="not a cnnzoo snapshot"):
        read_snapshot(path)


def _timeline(run_dir: Path, out: Path, capsys) -> dict:
    assert main(["show", "timeline", str(run_dir), "--out", str(out), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["wrote"] == [str(out / "timeline.png"), str(out / "timeline.gif")]
    gif = Image.open(out / "timeline.gif")
    assert gif.n_frames == len(report["epochs"])
    assert report["kernel_change"][0] == 0 and report["kernel_change"][-1] > 0
    return report


def test_show_timeline_on_lenet5(extended_run, tmp_path, capsys):
    report = _timeline(extended_run[0], tmp_path / "show", capsys)
    assert report["epochs"] == [0, 1, 2] and report["stages"] == ["C1", "C3"]
    assert report["layer"] == "features.0" and len(report["probe_classes"]) == 4
    assert main(["show", "timeline", "lenet5"]) == 2  # a model name has no history


@pytest.fixture(scope="module")
def colour_folder(tmp_path_factory) -> Path:
    """3 classes × 12 RGB 28×28 PNGs: a red, green or blue square on grey noise."""
    root = tmp_path_factory.mktemp("colour") / "images"
    rng = np.random.default_rng(0)
    for label in range(3):
        (root / f"class{label}").mkdir(parents=True)
        for index in range(12):
            pixels = rng.integers(60, 120, (28, 28, 3)).astype(np.uint8)
            pixels[8:20, 8:20, label] = 250
            Image.fromarray(pixels, "RGB").save(root / f"class{label}" / f"{index}.png")
    return root


def test_timeline_and_compare_on_three_channel_runs(colour_folder, tmp_path, capsys):
    dataset = f"folder:{colour_folder}"
    for seed in (0, 1):
        train(tiny(None, tmp_path / f"seed{seed}", dataset=dataset, seed=seed, batch_size=16))
    report = _timeline(tmp_path / "seed0", tmp_path / "show", capsys)
    assert read_snapshots(tmp_path / "seed0")[0].kernels.shape[1] == 3
    assert len(report["probe_classes"]) == 3
    out = tmp_path / "compare"
    assert (
        main(
            [
                "compare",
                str(tmp_path / "seed0"),
                str(tmp_path / "seed1"),
                "--out",
                str(out),
                "--json",
            ]
        )
        == 0
    )
    result = json.loads(capsys.readouterr().out)
    assert [run["name"] for run in result["runs"]] == ["lenet5 (A)", "lenet5 (B)"]
    assert (out / "compare.png").stat().st_size > 0 and "lenet5 (A)" in (
        out / "compare.md"
    ).read_text()


def test_compare_names_two_variants_of_one_builder_by_their_arguments():
    from cnnzoo.engine.run import Run
    from cnnzoo.visualize.compare import run_names

    a, b = (Run(None, "mlp", [], None, 28, config={"model_kwargs": {"hidden": [width]}})
            for width in (16, 32))
    assert run_names(a, b) == ["mlp variant (hidden=[16])", "mlp variant (hidden=[32])"]
    assert run_names(a, a) == ["mlp variant (hidden=[16]) (A)", "mlp variant (hidden=[16]) (B)"]


@pytest.fixture(scope="module")
def paper_and_modern(tiny_mnist_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("compare")
    for model in ("lenet5_1998", "lenet5"):
        train(tiny(tiny_mnist_dir, root / model, model=model, snapshots="off"))
    return root / "lenet5_1998", root / "lenet5"


def _json(capsys, *argv) -> dict:
    assert main(list(argv)) == 0
    return json.loads(capsys.readouterr().out)


def test_compare_agrees_with_summary_eval_and_predict(
    paper_and_modern, tiny_mnist_dir, tmp_path, capsys
):
    from cnnzoo.visualize.mistakes import probabilities
    from cnnzoo.visualize.source import load_data

    paper, modern = paper_and_modern
    out = tmp_path / "report"
    result = _json(
        capsys,
        "compare",
        str(paper),
        str(modern),
        "--data-dir",
        str(tiny_mnist_dir),
        "--out",
        str(out),
        "--json",
    )
    for run_dir, run in zip((paper, modern), result["runs"], strict=True):
        layers = _json(capsys, "summary", run["model"], "--json")["layers"]
        assert [(r["name"], r["params"], r["macs"]) for r in run["layers"]] == [
            (r["name"], r["params"], r["macs"]) for r in layers
        ]
        evaluated = _json(capsys, "eval", str(run_dir), "--data-dir", str(tiny_mnist_dir), "--json")
        assert run["test_top1"] == pytest.approx(evaluated["top1"], abs=1e-9)
    runs = [load_run(paper), load_run(modern)]
    test = load_data(runs[0], tiny_mnist_dir).test
    predicted = [probabilities(run, test.images).topk(1, dim=1).indices[:, 0] for run in runs]
    differ = (predicted[0] != predicted[1]).nonzero().flatten().tolist()
    assert [row["index"] for row in result["disagreements"]] == differ and result["disagree"] > 0
    assert result["a_right"] + result["b_right"] + result["both_wrong"] == len(differ)
    same = (predicted[0] == predicted[1]).nonzero().flatten().tolist()
    picked = differ[:2] + same[:1]
    files = []
    for index in picked:  # the same images through `cnnzoo predict`
        files.append(tmp_path / f"test{index}.png")
        Image.fromarray(test.images[index, 0].numpy(), "L").save(files[-1])
    answers = [
        [
            item["predictions"][0]["class"]
            for item in _json(
                capsys, "predict", str(run_dir), *map(str, files), "--no-prepare", "--json"
            )["results"]
        ]
        for run_dir in (paper, modern)
    ]
    assert [a != b for a, b in zip(*answers, strict=True)] == [True, True, False]
    markdown = (out / "compare.md").read_text()
    assert "![the comparison](compare.png)" in markdown and f"{len(differ):,} of" in markdown


SOURCE = Path(cnnzoo.__file__).resolve().parents[1]


# a torchrun job of two processes: about 12 s on two cores
def test_a_distributed_run_keeps_one_series_by_process_0_and_evaluates_alike(tiny_mnist_dir,
                                                                            tmp_path):
    out = tmp_path / "run"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(SOURCE), os.environ.get("PYTHONPATH", "")]),
        "OMP_NUM_THREADS": "1",
    }
    argv = [
        "train",
        "--model",
        "lenet5",
        "--dataset",
        "mnist",
        "--data-dir",
        str(tiny_mnist_dir),
        "--epochs",
        "3",
        "--eval-every",
        "2",
        "--batch-size",
        "100",
        "--threads",
        "1",
        "--no-progress",
        "--device",
        "cpu",
        "--precision",
        "fp32",
        "--snapshots",
        "all",
        "--out",
        str(out),
    ]
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc-per-node",
            "2",
            "-m",
            "cnnzoo",
            *argv,
        ],
        capture_output=True,
        text=True,
        timeout=240,
        env=env,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    series = read_snapshots(out)
    assert [s.epoch for s in series] == [0, 1, 2, 3]
    assert torch.equal(series[-1].kernels, first_conv(out))
    assert done.stderr.count("snapshots:") <= 1  # process 0 alone speaks (and takes them)
    # both processes evaluated (sharded) the same epochs, --eval-every's and the last
    assert [row["test_top1"] is None for row in rundir.read_metrics(out)] == [True, False, False]


@pytest.mark.parametrize("argv", [["compare", "--help"], ["show", "timeline", "--help"]])
def test_the_new_commands_explain_themselves(argv, capsys):
    with pytest.raises(SystemExit) as stopped:
        main(argv)
    assert stopped.value.code == 0 and "usage:" in capsys.readouterr().out


def test_compare_breaks_ties_as_eval_does(paper_and_modern, tiny_mnist_dir):
    """LeNet-1998's RBF outputs saturate and tie; argmax and eval's topk pick different classes."""
    from cnnzoo.engine.evaluate import evaluate
    from cnnzoo.visualize.compare import test_predictions
    from cnnzoo.visualize.source import load_data

    class Tied(torch.nn.Module):
        def __init__(self, model):
            super().__init__()
            self.model, self.cfg = model, model.cfg

        def forward(self, x):  # every class but 0 tied at the top
            return (
                self.model(x) * 0
                + 1
                - 5 * torch.nn.functional.one_hot(torch.zeros(len(x)).long(), 10)
            )

    run = load_run(paper_and_modern[0])
    run.model = Tied(run.model)
    test = load_data(run, tiny_mnist_dir).test
    predicted, labels = test_predictions(run, test)
    result = evaluate(
        run.model, test.pad_to(run.input.size), run.input.eval_pipeline("center"), num_classes=10
    )
    assert int((predicted == labels).sum()) == int(result.confusion.diag().sum())
    assert not torch.equal(predicted, torch.ones_like(predicted))  # argmax would say 1 everywhere
