"""The explorer's occlusion panel and timeline slider (issue #25), through FastAPI's test client:
``POST /api/runs/{run}/occlusion`` is ``cnnzoo show occlusion --json`` for the same run, image and
class, computed on the image as ``predict`` prepares it; ``GET /api/runs/{run}/snapshots[/{epoch}]``
gives the snapshot files' kernels (the last epoch's are the checkpoint's) and ``show timeline``'s
kernel change, and a run without snapshots gets one line saying how to get them."""

from __future__ import annotations

import base64
import json
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

pytest.importorskip("fastapi", reason="the serve extra is not installed (pip install "
                                      "'cnnzoo[serve]')")
pytest.importorskip("httpx", reason="FastAPI's test client needs httpx")
from fastapi.testclient import TestClient  # noqa: E402

from cnnzoo import rundir  # noqa: E402
from cnnzoo.cli import main  # noqa: E402
from cnnzoo.engine import checkpoint as ckpt  # noqa: E402
from cnnzoo.engine.run import open_run  # noqa: E402
from cnnzoo.engine.snapshots import read_snapshot  # noqa: E402
from cnnzoo.serve.app import create_app  # noqa: E402
from cnnzoo.serve.limits import Limits  # noqa: E402
from cnnzoo.visualize.cam import grad_cam  # noqa: E402
from cnnzoo.visualize.occlusion import probability_drop  # noqa: E402
from cnnzoo.visualize.source import load_input  # noqa: E402
from cnnzoo.visualize.trust import occlusion_settings  # noqa: E402

LIMITS = Limits(max_upload_bytes=400_000, max_image_pixels=250_000, max_inference=1, max_models=2)


@pytest.fixture(scope="module")
def learning_runs(tiny_mnist_dir, tmp_path_factory):
    """"timeline": lenet5 trained two epochs keeping every snapshot (0, 1, 2); "plain": the same run
    with its snapshots removed."""
    from cnnzoo.engine.config import TrainConfig
    from cnnzoo.engine.train import train

    root = tmp_path_factory.mktemp("learning") / "runs"
    train(TrainConfig(model="lenet5", dataset="mnist", data_dir=str(tiny_mnist_dir), epochs=2,
                      batch_size=128, lr=0.1, snapshots="all", out=str(root / "timeline")))
    shutil.copytree(root / "timeline", root / "plain")
    shutil.rmtree(root / "plain" / rundir.SNAPSHOTS)
    return root


@pytest.fixture(scope="module")
def client(explorer_runs, learning_runs):
    for name in ("lenet5-a",):  # the shared trained run, beside the two above
        shutil.copytree(explorer_runs / name, learning_runs / name, dirs_exist_ok=True)
    with TestClient(create_app(learning_runs, LIMITS)) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def images(tiny_mnist_dir, tmp_path_factory) -> dict:
    """A test digit as stored (dark background), and the same digit as a user would photograph it:
    dark on white, 112 px, off centre; ``predict`` inverts, trims and centres the second."""
    from cnnzoo.data.loading import load_dataset

    test = load_dataset("mnist", tiny_mnist_dir, in_channels=1).test
    folder = tmp_path_factory.mktemp("occlusion-images")
    digit = test.images[3, 0].numpy()
    paper = np.full((112, 112), 255, np.uint8)
    paper[10:66, 30:86] = 255 - np.kron(digit, np.ones((2, 2), np.uint8))
    found = {}
    for name, array in (("digit", digit), ("paper", paper)):
        path = folder / f"{name}.png"
        Image.fromarray(array).save(path)
        found[name] = path
    return found


def _post(client, path: str, data: bytes):
    return client.post(path, files={"image": ("x.png", data, "image/png")})


def _cli(capsys, *argv: str) -> dict:
    assert main(list(argv)) == 0
    return json.loads(capsys.readouterr().out)


def _floats(packed: dict) -> np.ndarray:
    return np.frombuffer(base64.b64decode(packed["data"]), "<f4").reshape(packed["shape"])


@pytest.mark.parametrize("options", [(), ("--class", "4"), ("--class", "7", "--cam-layer", "C1")])
def test_occlusion_is_cnnzoo_show_occlusions(client, learning_runs, images, capsys, tmp_path,
                                             options):
    query = dict(zip(("class_index", "layer"), options[1::2], strict=False))
    answer = _post(client, "/api/runs/lenet5-a/occlusion?" + "&".join(
        f"{key}={value}" for key, value in query.items()), images["digit"].read_bytes())
    assert answer.status_code == 200, answer.text
    served = answer.json()
    report = _cli(capsys, "show", "occlusion", str(learning_runs / "lenet5-a"),
                  str(images["digit"]), "--out", str(tmp_path), "--json", *options)
    for key in ("class", "class_index", "patch", "squares", "cam_layer", "rank_correlation"):
        assert served[key] == report[key], key
    for key in ("probability", "largest_drop"):
        assert served[key] == pytest.approx(report[key], abs=1e-5)
    # the map itself, against the command's computation on the same file
    run = open_run(learning_runs / "lenet5-a")
    _, x, _ = load_input(run, images["digit"])
    settings = occlusion_settings(x.shape[-1])
    assert (served["patch"], served["stride"]) == (settings["patch"], settings["stride"]) == (4, 2)
    expected = probability_drop(run.model, x, report["class_index"], **settings)["map"]
    np.testing.assert_allclose(_floats(served["map"]), expected.numpy(), atol=1e-5)
    assert float(expected.abs().max()) > (1e-4 if options else 1e-3)  # a map, not zeros
    cam = grad_cam(run.model, x, report["class_index"], report["cam_layer"])["cam"].numpy()
    shown = np.frombuffer(base64.b64decode(served["cam"]["data"]), np.uint8).reshape(cam.shape)
    low, high = served["cam"]["min"][0], served["cam"]["max"][0]  # scaled to its range
    assert (low, high) == pytest.approx((cam.min(), cam.max()), abs=1e-5)
    np.testing.assert_allclose(low + shown / 255 * (high - low), cam, atol=0.5 / 255 + 1e-5)


def test_occlusion_sees_the_image_as_predict_prepares_it(client, learning_runs, images):
    """A digit on white paper: predicted, occluded and Grad-CAM'd on the prepared image (inverted,
    trimmed, centred); without preparation the map is another one."""
    data = images["paper"].read_bytes()
    predicted = _post(client, "/api/runs/lenet5-a/predict?top_k=10", data).json()
    served = _post(client, "/api/runs/lenet5-a/occlusion", data).json()
    raw = _post(client, "/api/runs/lenet5-a/occlusion?prepare=false", data).json()
    assert served["prepared"] == predicted["prepared"] and "inverted" in " ".join(
        served["prepared"])
    top = predicted["top_k"][0]
    assert (served["class"], served["probability"]) == (top["class"],
                                                       pytest.approx(top["probability"], abs=1e-5))
    run = open_run(learning_runs / "lenet5-a")
    _, x, _ = load_input(run, images["paper"])  # the file through predict's preparation
    expected = probability_drop(run.model, x, served["class_index"], patch=4, stride=2)["map"]
    np.testing.assert_allclose(_floats(served["map"]), expected.numpy(), atol=1e-5)
    assert not np.allclose(_floats(raw["map"]), _floats(served["map"]), atol=1e-3)


def test_occlusion_refuses_what_it_cannot_do_in_one_line(client, images):
    data = images["digit"].read_bytes()
    wrong = _post(client, "/api/runs/lenet5-a/occlusion?class_index=10", data)
    assert wrong.status_code == 422 and "outside 0…9" in wrong.json()["detail"]
    assert _post(client, "/api/runs/nothing/occlusion", data).status_code == 404
    assert _post(client, "/api/runs/lenet5-a/occlusion", b"not an image").status_code == 400


def test_a_snapshots_kernels_are_the_files_and_the_last_the_checkpoints(client, learning_runs,
                                                                        capsys, tmp_path):
    listed = client.get("/api/runs/timeline/snapshots").json()
    assert listed == {"run": "timeline", "epochs": [0, 1, 2], "hint": None}
    report = _cli(capsys, "show", "timeline", str(learning_runs / "timeline"), "--out",
                  str(tmp_path), "--json")
    run_dir = learning_runs / "timeline"
    for epoch, change in zip(listed["epochs"], report["kernel_change"], strict=True):
        shown = client.get(f"/api/runs/timeline/snapshots/{epoch}").json()
        snapshot = read_snapshot(rundir.snapshot_path(run_dir, epoch))
        assert shown["epoch"] == epoch and shown["layer"] == snapshot.layer == "features.0"
        assert np.array_equal(_floats(shown["kernels"]), snapshot.kernels.numpy())
        assert shown["kernel_change"] == pytest.approx(change, abs=1e-6)
        assert shown["test_top1"] == snapshot.test_top1
        assert shown["probe"]["labels"] == snapshot.labels.tolist()
        assert [s["name"] for s in shown["stages"]] == list(snapshot.maps) == ["C1", "C3"]
        c1 = shown["stages"][0]
        maps = snapshot.maps["C1"]
        assert (c1["probes"], c1["count"], c1["height"], c1["width"]) == tuple(maps.shape)
        assert c1["min"][0] == pytest.approx(float(maps[0, 0].min()), abs=1e-4)
    weights = ckpt.load_checkpoint(run_dir / rundir.LAST).group("model")["features.0.weight"]
    assert torch.equal(torch.from_numpy(_floats(shown["kernels"]).copy()), weights)
    assert shown["test_top1"] == pytest.approx(report["test_top1"][-1])


def test_a_run_without_snapshots_gets_the_one_line_hint(client):
    listed = client.get("/api/runs/plain/snapshots").json()
    assert listed["epochs"] == [] and "\n" not in listed["hint"]
    assert "cnnzoo train" in listed["hint"] and "--snapshots all" in listed["hint"]
    missing = client.get("/api/runs/plain/snapshots/0")
    assert missing.status_code == 404 and "--snapshots all" in missing.json()["detail"]
    other = client.get("/api/runs/timeline/snapshots/7")
    assert other.status_code == 404 and "its epochs: 0, 1, 2" in other.json()["detail"]
    assert client.get("/api/runs/nothing/snapshots").status_code == 404
    assert client.get("/api/runs/timeline/snapshots/-1").status_code == 422


def test_a_damaged_snapshot_is_422_in_words(client, learning_runs):
    path = rundir.snapshot_path(learning_runs / "timeline", 1)
    kept = path.read_bytes()
    try:
        path.write_bytes(b"\xff" * 64)
        answer = client.get("/api/runs/timeline/snapshots/1")
        assert answer.status_code == 422 and "not a cnnzoo snapshot" in answer.json()["detail"]
        assert str(learning_runs) not in answer.json()["detail"]  # no server paths
    finally:
        path.write_bytes(kept)

