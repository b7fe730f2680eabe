"""One preparation path for a user's image: `cnnzoo predict`, every `show` view that takes an image,
`scoremap` and the explorer's API prepare the same photo-like image the same way, say so alike, and
give the same class probabilities (to float tolerance); `--no-prepare` (`?prepare=false`) exists on
each and changes the preparation; the light-background warning fires when, and only when, the
image's background is light. On two tiny runs: lenet5 (28 px, MNIST) and a convnet that reads
Fashion-MNIST's 28-px images at 48 px."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
from PIL import Image, ImageDraw

from cnnzoo.cli import main

LIGHT = {"garment.png": True, "drawing.jpg": False, "inverted.png": True, "test.png": False}
RUNS = ("lenet5", "convnet48")
# every path on every image takes seconds per pair on 2 cores: the larger model's other two under
# `make test-slow`
CASES = [pytest.param(name, run, marks=pytest.mark.slow)
         if run == "convnet48" and name in ("drawing.jpg", "inverted.png") else (name, run)
         for run in RUNS for name in LIGHT]


@pytest.fixture(scope="module")
def runs(tiny_mnist_dir, tmp_path_factory):
    """A folder of two runs, as the explorer serves them. Barely trained: agreement needs no
    accuracy."""
    from cnnzoo.engine.config import TrainConfig
    from cnnzoo.engine.train import train

    root = tmp_path_factory.mktemp("image-paths") / "runs"
    train(TrainConfig(model="lenet5", dataset="mnist", data_dir=str(tiny_mnist_dir), epochs=1,
                      batch_size=64, lr=0.05, out=str(root / "lenet5")))
    train(TrainConfig(model="convnet", dataset="fashion-mnist", data_dir=str(tiny_mnist_dir),
                      epochs=1, batch_size=50, train_subset=300, lr=0.05, input_size=48,
                      out=str(root / "convnet48")))
    return root


@pytest.fixture(scope="module")
def images(tiny_mnist_dir, tmp_path_factory) -> dict:
    """The four photo-like images of issue #23, as files."""
    from cnnzoo.data.loading import load_dataset

    folder = tmp_path_factory.mktemp("user-images")
    garment = Image.new("RGB", (300, 300), (242, 240, 236))  # a dark shirt photographed on a table
    ImageDraw.Draw(garment).polygon([(100, 60), (200, 60), (250, 110), (225, 135), (205, 115),
                                     (205, 250), (95, 250), (95, 115), (75, 135), (50, 110)],
                                    fill=(40, 45, 60))
    garment.save(folder / "garment.png")
    drawing = Image.new("L", (220, 180), 8)  # light strokes on a dark pad, off-centre, as a JPEG
    ImageDraw.Draw(drawing).line([(60, 30), (160, 30), (160, 150), (60, 150), (60, 30)], fill=240,
                                 width=14)
    drawing.save(folder / "drawing.jpg", quality=80)
    test = load_dataset("mnist", tiny_mnist_dir, in_channels=1).test.images[5, 0].numpy()
    Image.fromarray(test).save(folder / "test.png")
    Image.fromarray(255 - test).save(folder / "inverted.png")
    return {name: folder / name for name in LIGHT}


@pytest.fixture(scope="module")
def client(runs, tiny_mnist_dir):
    pytest.importorskip("fastapi", reason="the serve extra is not installed")
    pytest.importorskip("httpx", reason="FastAPI's test client needs httpx")
    from fastapi.testclient import TestClient

    from cnnzoo.serve.app import create_app

    with TestClient(create_app(runs, data_dir=str(tiny_mnist_dir))) as test_client:
        yield test_client


def _cli(capsys, *argv) -> dict:
    assert main([*map(str, argv), "--json"]) == 0, argv
    return json.loads(capsys.readouterr().out)


def _explorer(client, run: str, image, prepare: bool) -> dict[str, dict]:
    """What the page is told for an upload (or the drawing canvas, sent the same way)."""
    query = "" if prepare else "&prepare=false"
    answers = {}
    deadline = time.monotonic() + 120
    for route in ("predict", "neighbours"):
        # neighbours: 202 while the run's index builds in the background, as the page sees
        while True:
            response = client.post(f"/api/runs/{run}/{route}?top_k=5{query}",
                                   files={"image": (image.name, image.read_bytes(), "image/png")})
            if response.status_code != 202 or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert response.status_code == 200, response.text
        answers[route] = response.json()
    answers["predict"]["predictions"] = answers["predict"]["top_k"]
    return answers


def _every_path(capsys, client, runs, run, image, data_dir, prepare=True) -> dict[str, dict]:
    """The report of each command that takes an image, keyed by its name. The views write into the
    run's own show/ folder, where `show neighbours` keeps its features for the next image."""
    extra = [] if prepare else ["--no-prepare"]
    source, out = runs / run, runs / run / "show"
    reports = {"predict": _cli(capsys, "predict", source, image, *extra)["results"][0]}
    for view in ("maps", "cam", "neighbours"):
        more = ["--data-dir", data_dir, "--queries", "20"] if view == "neighbours" else []
        reports[f"show {view}"] = _cli(capsys, "show", view, source, image, "--out", out, *more,
                                       *extra)
    reports["scoremap"] = _cli(capsys, "scoremap", source, image, "--out", out, *extra)
    explorer = _explorer(client, run, image, prepare)
    reports["explorer"] = explorer["predict"]
    reports["explorer neighbours"] = explorer["neighbours"]
    return reports


def _agree(reports: dict[str, dict]) -> dict:
    """Every report says what `predict` says: the same steps, the same warning, the same top five
    (class by class, probabilities within 1e-5). Returns `predict`'s report."""
    expected = reports["predict"]
    for name, report in reports.items():
        assert report["prepared"] == expected["prepared"], name
        assert report.get("warning") == expected.get("warning"), name
        if "predictions" in report:
            shown = {p["class"]: p["probability"] for p in report["predictions"]}
            wanted = {p["class"]: p["probability"] for p in expected["predictions"]}
            assert report["predictions"][0]["class"] == expected["predictions"][0]["class"], name
            # classes tied to 1e-5 (near 0 after little training) may swap places at the fifth
            fifth = min(wanted.values())
            assert shown == pytest.approx({c: wanted.get(c, fifth) for c in shown}, abs=1e-5), name
    return expected


@pytest.mark.parametrize(("name", "run"), CASES)
def test_every_path_prepares_an_image_as_predict_does(name, run, runs, images, client,
                                                      tiny_mnist_dir, capsys):
    reports = _every_path(capsys, client, runs, run, images[name], tiny_mnist_dir)
    expected = _agree(reports)
    steps = expected["prepared"]
    assert ("warning" in expected) == LIGHT[name]  # the warning: a light background, nothing else
    inverted = ["inverted (light background)"] if LIGHT[name] else []
    assert [step for step in steps if step.startswith("inverted")] == inverted
    # the canvas: never trimmed or resized
    assert reports["scoremap"]["canvas_prepared"] == inverted
    if name == "test.png":  # already in the data set's form: used as it is, everywhere
        assert steps == []
        # the score map of an image the size of the training images is one window: predict's answer
        assert reports["scoremap"]["score_map"][1:] == [1, 1]
        assert reports["scoremap"]["argmax"] == [[expected["predictions"][0]["index"]]]
    else:
        assert any(step.startswith("longest side resized") for step in steps)


@pytest.mark.parametrize("run", RUNS)
def test_no_prepare_exists_on_every_path_and_changes_the_preparation(run, runs, images, client,
                                                                    tiny_mnist_dir, capsys):
    garment = images["garment.png"]
    reports = _every_path(capsys, client, runs, run, garment, tiny_mnist_dir, prepare=False)
    raw = _agree(reports)
    prepared = _cli(capsys, "predict", runs / run, garment)["results"][0]
    assert raw["prepared"] == ["shorter side resized to 28 and the centre 28×28 kept (of 300×300)"]
    assert prepared["prepared"][0] == "inverted (light background)"
    assert "not inverted" in raw["warning"] and "not inverted" not in prepared["warning"]
    # the network saw another image (its answers may both saturate at 100%)
    seen = _cli(capsys, "show", "maps", runs / run, garment, "--out", runs / run / "show")
    assert seen["prepared"] == prepared["prepared"]
    assert seen["stages"][0]["mean"] != reports["show maps"]["stages"][0]["mean"]


def test_the_warning_fires_for_a_light_background_only(runs, tmp_path):
    """A bright object filling a black frame is far brighter than the training images on average,
    but its background is theirs: no warning (a brightness test fired there). A faint object on a
    light ground gets one, prepared or not."""
    from cnnzoo.engine.predict import predict_files
    from cnnzoo.engine.run import load_run

    run = load_run(runs / "lenet5")
    bright = np.zeros((28, 28), np.uint8)
    bright[1:-1, 1:-1] = 250
    faint = np.full((120, 90), 200, np.uint8)
    faint[30:90, 20:70] = 160
    for name, array in (("bright.png", bright), ("faint.png", faint)):
        Image.fromarray(array).save(tmp_path / name)
    for prepare in (True, False):
        found = predict_files(run, [tmp_path / "bright.png", tmp_path / "faint.png"],
                              prepare=prepare)
        assert "warning" not in found[0]
        assert "background is light (grey 200 of 255)" in found[1]["warning"]


def test_scoremap_refuses_an_image_smaller_than_its_window_in_one_line(runs, tmp_path, capsys):
    Image.new("L", (20, 24)).save(tmp_path / "small.png")
    assert main(["scoremap", str(runs / "lenet5"), str(tmp_path / "small.png"),
                 "--out", str(tmp_path / "out")]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "small.png: 20×24 pixels" in error and "28×28 window" in error
