"""A folder of images trains as its images suggest: at their size and in their channels, even
when it holds fewer images than a batch, and alike in memory or streamed (issue #23, section 2)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cnnzoo import create_model
from cnnzoo.cli import main
from cnnzoo.data.image_survey import MAX_DEFAULT_SIDE
from cnnzoo.data.loading import load_dataset
from cnnzoo.engine.config import TrainConfig
from cnnzoo.engine.predict import predict_files
from cnnzoo.engine.run import load_run
from cnnzoo.engine.train import train
from cnnzoo.rundir import LAST, read_metrics

CLASSES = 3
PER_CLASS = 12  # 3 × 12 = 36 images: far fewer than the default batch of 256


def _band_image(label: int, rng: np.random.Generator, side: int = 28) -> np.ndarray:
    """A dark noisy square with a bright horizontal band whose height says the class."""
    pixels = rng.integers(0, 60, (side, side)).astype(np.uint8)
    band = side // CLASSES
    pixels[label * band:(label + 1) * band] += 150
    return pixels


@pytest.fixture(scope="module")
def grey_folder(tmp_path_factory) -> Path:
    """3 classes × 12 grey 28×28 PNGs."""
    root = tmp_path_factory.mktemp("grey") / "images"
    rng = np.random.default_rng(0)
    for label in range(CLASSES):
        (root / f"class{label}").mkdir(parents=True)
        for index in range(PER_CLASS):
            image = Image.fromarray(_band_image(label, rng), "L")
            image.save(root / f"class{label}" / f"{index}.png")
    return root


def _config(folder: Path, out: Path, **changes) -> TrainConfig:
    """The defaults a user gets (the batch size too), for a few epochs in a fixed runtime."""
    settings = dict(model="lenet5", dataset=f"folder:{folder}", epochs=3, out=str(out),
                    precision="fp32", channels_last=False, compile="off")
    return TrainConfig(**{**settings, **changes})


def test_a_small_grey_folder_trains_at_its_own_size_and_predicts_its_kind(grey_folder, tmp_path):
    said: list[str] = []
    summary = train(_config(grey_folder, tmp_path / "run"), log=said.append)
    assert summary["epochs"] == 3 and len(read_metrics(tmp_path / "run")) == 3
    run = load_run(tmp_path / "run")
    assert tuple(run.model.cfg.input_size) == (1, 28, 28) and run.input.size == 28
    grey_lenet = create_model("lenet5", num_classes=CLASSES, in_channels=1, input_size=28)
    assert summary["params"] == sum(p.numel() for p in grey_lenet.parameters())
    [read_as] = [line for line in said if "most images are" in line]
    assert "28×28" in read_as and "grey" in read_as and "read as 1×28×28" in read_as
    assert any("fewer than a batch of 256" in line for line in said)
    new = tmp_path / "new.png"  # an image of the folder's kind that was not in it
    Image.fromarray(_band_image(2, np.random.default_rng(99)), "L").save(new)
    [result] = predict_files(run, [new], top_k=CLASSES)
    assert {p["class"] for p in result["predictions"]} == {"class0", "class1", "class2"}
    assert sum(p["probability"] for p in result["predictions"]) == pytest.approx(1.0, abs=1e-4)


def test_the_input_size_option_sets_the_side_a_folder_is_read_at(grey_folder):
    data = load_dataset(f"folder:{grey_folder}", image_size=40)
    assert data.train.image_size == (40, 40) and data.in_channels == 1
    assert "read as 1×40×40 (--input-size)" in data.note
    # as `eval` reads a run's folder: at the run's side and channels, nothing to say
    given = load_dataset(f"folder:{grey_folder}", image_size=28, in_channels=3)
    assert given.in_channels == 3 and given.note is None


def test_a_folder_of_photos_is_read_in_colour_at_most_at_the_default_side(tmp_path):
    rng = np.random.default_rng(1)
    sizes = [(320, 240)] * 3 + [(200, 300)]  # the commonest wins; its shorter side is past the cap
    for name in ("cats", "dogs"):
        (tmp_path / name).mkdir()
        for index, (width, height) in enumerate(sizes):
            pixels = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(tmp_path / name / f"{index}.jpg")
    grey = rng.integers(0, 256, (240, 320), dtype=np.uint8)
    Image.fromarray(grey, "L").save(tmp_path / "cats" / "grey.png")
    data = load_dataset(f"folder:{tmp_path}")
    assert data.in_channels == 3
    assert data.train.image_size == (MAX_DEFAULT_SIDE, MAX_DEFAULT_SIDE)
    assert "most images are 320×240" in data.note and "colour" in data.note
    assert f"at most {MAX_DEFAULT_SIDE}" in data.note


def test_a_training_subset_smaller_than_a_batch_trains(tiny_mnist_dir, tmp_path):
    said: list[str] = []
    config = TrainConfig(model="lenet5", dataset="mnist", data_dir=str(tiny_mnist_dir),
                         train_subset=100, epochs=1, out=str(tmp_path / "run"), compile="off")
    summary = train(config, log=said.append)
    assert summary["epochs"] == 1 and (tmp_path / "run" / LAST).is_file()
    assert any("100 training images are fewer than a batch of 256" in line for line in said)
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["batch_size"] == 256  # as the user set it: a resume fits it again


def test_streamed_and_in_memory_folders_train_and_evaluate_alike(grey_folder, tmp_path, capsys):
    runs = {}
    for budget in (0, None):  # streamed, then in memory
        runs[budget] = tmp_path / f"budget-{budget}"
        train(_config(grey_folder, runs[budget], memory_budget=budget, epochs=2, batch_size=8))

    def untimed(run_dir: Path) -> list[dict]:
        timing = ("epoch_seconds", "images_per_second")
        return [{k: v for k, v in row.items() if k not in timing} for row in read_metrics(run_dir)]

    assert untimed(runs[0]) == untimed(runs[None])
    streamed, in_memory = (load_run(runs[b]).model.state_dict() for b in (0, None))
    assert all(torch.equal(streamed[name], in_memory[name]) for name in streamed)
    reports = []
    for budget in ("0", "100"):
        assert main(["eval", str(runs[0]), "--memory-budget", budget, "--json"]) == 0
        reports.append(json.loads(capsys.readouterr().out))
    assert reports[0]["top1"] == reports[1]["top1"]
    assert reports[0]["loss"] == pytest.approx(reports[1]["loss"])


def test_a_start_that_fails_before_its_first_checkpoint_leaves_nothing_in_the_way(
        grey_folder, tmp_path, capsys):
    command = ["train", "--model", "lenet5", "--dataset", f"folder:{grey_folder}", "--epochs", "1",
               "--out", str(tmp_path / "run"), "--compile", "off"]
    # a budget spent before the first step: no epoch finishes, no checkpoint is saved
    assert main([*command, "--time-budget", "1e-9"]) == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert "no epoch finished" in error and "run the same command again" in error
    assert not (tmp_path / "run").exists()
    assert main(command) == 0
    assert (tmp_path / "run" / LAST).is_file()
