"""The explorer's Units tab through FastAPI's test client on a tiny trained lenet5: the layers it
offers are those `cnnzoo show features` and `show patches` accept, its numbers are their --json
reports' for the same run, layer and settings, its images are the files `show features` writes, and
a layer they refuse is a 4xx naming it and the valid ones."""

from __future__ import annotations

import base64
import io
import json

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("fastapi", reason="the serve extra is not installed (pip install "
                                      "'cnnzoo[serve]')")
pytest.importorskip("httpx", reason="FastAPI's test client needs httpx")
from fastapi.testclient import TestClient  # noqa: E402

from cnnzoo.cli import build_parser, main  # noqa: E402
from cnnzoo.serve import unit_routes  # noqa: E402
from cnnzoo.serve.app import create_app  # noqa: E402

RUN = "lenet5-a"


@pytest.fixture(scope="module")
def client(explorer_runs):
    with TestClient(create_app(explorer_runs)) as test_client:
        yield test_client


def _cli(capsys, *argv) -> dict:
    assert main([*argv, "--json"]) == 0, argv
    return json.loads(capsys.readouterr().out)


def _pixels(b64: str) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(b64))))


def test_the_layers_offered_are_the_ones_the_commands_accept(client):
    answer = client.get(f"/api/runs/{RUN}/units").json()
    assert answer["features"] == ["classes", "C1", "S2", "C3", "S4", "C5", "F6"]
    assert answer["patches"] == ["C1", "S2", "C3", "S4"]  # C5 and F6 are fully connected


@pytest.mark.parametrize("layer, units", [("classes", None), ("C3", 5)])
def test_features_are_show_features_json_with_its_images(client, explorer_runs, tiny_mnist_dir,
                                                         tmp_path, capsys, layer, units):
    query = f"layer={layer}&steps=6" + (f"&units={units}" if units else "")
    answer = client.post(f"/api/runs/{RUN}/features?{query}")
    assert answer.status_code == 200, answer.text
    served = answer.json()
    argv = ["show", "features", str(explorer_runs / RUN), "--layer", layer, "--steps", "6",
            "--quiet", "--data-dir", str(tiny_mnist_dir), "--out", str(tmp_path)]
    report = _cli(capsys, *argv, *(["--units", str(units)] if units else []))
    for key in ("layer", "module", "measure", "steps", "test_images", "above_test_max"):
        assert served[key] == report[key], key
    assert [u["unit"] for u in served["units"]] == [u["unit"] for u in report["units"]]
    assert [u["label"] for u in served["units"]] == [u["label"] for u in report["units"]]
    assert len(served["units"]) == (units or 10)
    for mine, theirs in zip(served["units"], report["units"], strict=True):
        for key in ("value", "test_mean", "test_max"):
            assert mine[key] == pytest.approx(theirs[key], abs=1e-5), (mine["unit"], key)
        # the image is the file the command saved, pixel for pixel
        assert np.array_equal(_pixels(mine["png"]), np.asarray(Image.open(theirs["file"])))


def test_patches_are_show_patches_json_with_each_units_receptive_field(
        client, explorer_runs, tiny_mnist_dir, tmp_path, capsys):
    answer = client.post(f"/api/runs/{RUN}/patches?layer=C3&units=4")
    assert answer.status_code == 200, answer.text
    served = answer.json()
    report = _cli(capsys, "show", "patches", str(explorer_runs / RUN), "--layer", "C3", "--units",
                  "4", "--data-dir", str(tiny_mnist_dir), "--out", str(tmp_path))
    for key in ("layer", "module", "receptive_field", "jump", "rf_start", "test_images"):
        assert served[key] == report[key], key
    assert len(served["units"]) == 4 and [len(row) for row in served["units"]] == [9] * 4
    for mine, theirs in zip(served["units"], report["units"], strict=True):
        assert [(p["image"], p["i"], p["j"]) for p in mine] == [(p["image"], p["i"], p["j"])
                                                               for p in theirs]
        assert [p["value"] for p in mine] == pytest.approx([p["value"] for p in theirs], abs=1e-5)
        assert [p["value"] for p in mine] == sorted((p["value"] for p in mine), reverse=True)
        assert all(_pixels(p["png"]).shape[:2] == (14, 14) for p in mine)  # C3's field: 14×14


@pytest.mark.parametrize("route, layer, valid", [
    ("features", "C9", "C1, S2, C3, S4, C5, F6"),
    ("patches", "C9", "C1, S2, C3, S4, C5, F6"),
    ("patches", "F6", "C1, S2, C3, S4"),
])
def test_a_layer_the_views_refuse_is_422_naming_it_and_the_valid_ones(client, route, layer,
                                                                      valid):
    answer = client.post(f"/api/runs/{RUN}/{route}?layer={layer}&steps=1&units=1")
    assert answer.status_code == 422
    message = answer.json()["detail"]
    assert layer in message and valid in message and "\n" not in message, message
    if route == "features":
        assert "'classes'" in message


def test_an_unknown_run_is_404(client):
    assert client.post("/api/runs/nothing-here/features?steps=1").status_code == 404
    assert client.get("/api/runs/nothing-here/units").status_code == 404


def test_the_apis_defaults_are_the_commands():
    parser = build_parser()
    features = parser.parse_args(["show", "features", "run"])
    patches = parser.parse_args(["show", "patches", "run", "--layer", "C3"])
    assert (unit_routes.STEPS, unit_routes.SEED, unit_routes.TEST_IMAGES) == (
        features.steps, features.seed, features.test_images)
    assert (unit_routes.PATCH_UNITS, unit_routes.TEST_IMAGES) == (patches.units,
                                                                  patches.test_images)
    assert unit_routes.CLASSES == features.layer
