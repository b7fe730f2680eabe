"""`cnnzoo eval RUN --dataset OTHER`: another folder is scored on all of its images, its classes
matched to the model's by name whatever order its folder names sort in, and agreeing with
`predict` on each file; a class the model does not predict is refused, not scored by position; the
figure training recorded is offered only beside a score of the same images."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import cnnzoo
from cnnzoo.cli import main
from cnnzoo.engine.config import TrainConfig
from cnnzoo.engine.predict import predict_files
from cnnzoo.engine.run import load_run
from cnnzoo.engine.train import train

CLASSES = ("circle", "cross", "square")
PER_CLASS = 15


def _shape(name: str, rng: np.random.Generator) -> np.ndarray:
    """A bright shape on dark noise, drawn at a random place."""
    pixels = rng.integers(0, 50, (28, 28)).astype(np.uint8)
    top, left = rng.integers(2, 9, 2)
    rows, cols = np.mgrid[0:16, 0:16]
    mask = {"circle": (rows - 7.5) ** 2 + (cols - 7.5) ** 2 < 49,
            "cross": (abs(rows - 7.5) < 2) | (abs(cols - 7.5) < 2),
            "square": (rows < 3) | (rows > 12) | (cols < 3) | (cols > 12)}[name]
    pixels[top:top + 16, left:left + 16][mask] = 230
    return pixels


def _folder(root: Path, names: dict[str, str], seed: int) -> Path:
    """``PER_CLASS`` images of each class, in a sub-folder named ``names[class]``."""
    rng = np.random.default_rng(seed)
    for shape, folder in names.items():
        (root / folder).mkdir(parents=True)
        for index in range(PER_CLASS):
            Image.fromarray(_shape(shape, rng), "L").save(root / folder / f"{index}.png")
    return root


@pytest.fixture(scope="module")
def shapes_run(tmp_path_factory) -> Path:
    """lenet5 trained on a folder of three shapes, well above chance on new ones."""
    base = tmp_path_factory.mktemp("shapes")
    folder = _folder(base / "train", {name: name for name in CLASSES}, seed=0)
    train(TrainConfig(model="lenet5", dataset=f"folder:{folder}", epochs=8, batch_size=8,
                      lr=0.05, out=str(base / "run"), precision="fp32", channels_last=False,
                      compile="off", seed=0))
    return base / "run"


def _eval(capsys, *args: str) -> dict:
    assert main(["eval", *args, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def _predicted_right(run_dir: Path, folder: Path, names: dict[str, str]) -> tuple[int, float]:
    """How many images ``folder`` holds, and the share `predict` names as the class whose folder
    (``names[class]``) holds them."""
    files = sorted(folder.rglob("*.png"))
    answers = predict_files(load_run(run_dir), files, top_k=1)
    right = sum(names[answer["predictions"][0]["class"]] == path.parent.name
                for answer, path in zip(answers, files, strict=True))
    return len(files), right / len(files)


def test_another_folder_is_scored_whole_by_class_name_as_predict_answers(shapes_run, tmp_path,
                                                                         capsys):
    # "Square" sorts before "circle" and "cross": by position its images would be called circles
    renamed = {"circle": "circle", "cross": "cross", "square": "Square"}
    folder = _folder(tmp_path / "new", renamed, seed=1)
    report = _eval(capsys, str(shapes_run), "--dataset", f"folder:{folder}")
    images, top1 = _predicted_right(shapes_run, folder, renamed)
    assert report["images"] == images == 3 * PER_CLASS  # all of them, none held out
    assert report["top1"] == pytest.approx(top1)
    assert report["top1"] > 0.6 and report["recorded_top1"] is None


def test_a_folder_of_some_of_the_classes_is_scored_on_them(shapes_run, tmp_path, capsys):
    names = {"circle": "round", "cross": "CROSS", "square": "square"}  # no round ones here
    folder = _folder(tmp_path / "two", {"cross": "CROSS", "square": "square"}, seed=2)
    report = _eval(capsys, str(shapes_run), "--dataset", f"folder:{folder}")
    images, top1 = _predicted_right(shapes_run, folder, names)
    assert report["images"] == images == 2 * PER_CLASS
    assert report["top1"] == pytest.approx(top1)
    # the circles it has none of were not all missed: they have no accuracy
    result = cnnzoo.evaluate(shapes_run, f"folder:{folder}")
    assert result.per_class_accuracy[0] is None and None not in result.per_class_accuracy[1:]


def test_a_class_the_model_does_not_predict_is_refused(shapes_run, tmp_path, capsys):
    folder = _folder(tmp_path / "odd", {"circle": "circle", "cross": "plus", "square": "square"},
                     seed=3)
    assert main(["eval", str(shapes_run), "--dataset", f"folder:{folder}"]) == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert str(folder) in error and "plus" in error and "circle, cross, square" in error
    assert "Traceback" not in error


def test_the_runs_own_folder_is_scored_on_what_training_held_out(shapes_run, capsys,
                                                                  monkeypatch):
    report = _eval(capsys, str(shapes_run))
    held_out = round(0.2 * PER_CLASS) * len(CLASSES)
    assert report["images"] == held_out and report["recorded_top1"] == report["top1"]
    # named another way, from another directory, it is the same folder
    monkeypatch.chdir(shapes_run)
    again = _eval(capsys, ".", "--dataset", "folder:../train/./")
    assert again["images"] == held_out and again["recorded_top1"] == report["top1"]


def test_a_model_of_digit_classes_is_not_scored_by_position(tiny_mnist_dir, tmp_path, capsys):
    """MNIST's classes are named 0 to 9: named, not merely numbered."""
    train(TrainConfig(model="lenet5", dataset="mnist", data_dir=str(tiny_mnist_dir), epochs=1,
                      out=str(tmp_path / "digits"), precision="fp32", channels_last=False,
                      compile="off", snapshots="off"))
    rng = np.random.default_rng(4)
    folder = tmp_path / "words"
    for word in ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"):
        (folder / word).mkdir(parents=True)
        Image.fromarray(_shape("circle", rng), "L").save(folder / word / "0.png")
    assert main(["eval", str(tmp_path / "digits"), "--dataset", f"folder:{folder}"]) == 2
    assert "classes the model does not predict: eight" in capsys.readouterr().err


def test_views_refuse_a_runs_folder_whose_classes_changed_since(tmp_path, capsys):
    folder = _folder(tmp_path / "data", {name: name for name in CLASSES}, seed=5)
    train(TrainConfig(model="lenet5", dataset=f"folder:{folder}", epochs=1, batch_size=8,
                      out=str(tmp_path / "run"), precision="fp32", channels_last=False,
                      compile="off", snapshots="off"))
    (folder / "circle").rename(folder / "ring")  # now sorted after cross: labels would shift
    assert main(["show", "errors", str(tmp_path / "run"), "--out", str(tmp_path / "s")]) == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert "now has the classes cross, ring, square, not the 3 that lenet5 learned" in error
