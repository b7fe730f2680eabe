"""The explorer on runs made by `cnnzoo import` (the `imported_runs` fixture: a zoo lenet5's
state_dict, the same network as TorchScript and as .pt2, and a class in the user's own file
imported with --code): they are listed, predict as `cnnzoo predict` does, show their maps or say in
one line why they cannot, and the user's code runs only with --run-code. And the trust route: the
verdict on Grad-CAM for an uploaded image is `cnnzoo show trust --json`'s for the same image."""

from __future__ import annotations

import io
import json

import pytest
from PIL import Image

pytest.importorskip("fastapi", reason="the serve extra is not installed (pip install "
                                      "'cnnzoo[serve]')")
pytest.importorskip("httpx", reason="FastAPI's test client needs httpx")
from fastapi.testclient import TestClient  # noqa: E402

from cnnzoo.cli import main  # noqa: E402
from cnnzoo.serve.app import create_app  # noqa: E402
from cnnzoo.serve.limits import Limits  # noqa: E402

LIMITS = Limits(max_upload_bytes=200_000, max_image_pixels=250_000, max_inference=1, max_models=4)


@pytest.fixture(scope="module")
def client(imported_runs):
    with TestClient(create_app(imported_runs, LIMITS)) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def digit(tiny_mnist_dir, tmp_path_factory):
    """A test image of the tiny data set: its PNG bytes, and the same file on disk for the CLI."""
    from cnnzoo.data.loading import load_dataset

    test = load_dataset("mnist", tiny_mnist_dir, in_channels=1).test
    path = tmp_path_factory.mktemp("digit") / "digit.png"
    buffer = io.BytesIO()
    Image.fromarray(test.images[3, 0].numpy()).save(buffer, format="PNG")
    path.write_bytes(buffer.getvalue())
    return buffer.getvalue(), path


def _post(client, path: str, data: bytes):
    return client.post(path, files={"image": ("x.png", data, "image/png")})


def _cli(capsys, *argv: str) -> dict:
    assert main(list(argv)) == 0
    return json.loads(capsys.readouterr().out)


def _probabilities(client, run: str, data: bytes) -> dict:
    answer = _post(client, f"/api/runs/{run}/predict?top_k=10", data)
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_imported_runs_are_listed_and_predict_as_cnnzoo_predict(client, imported_runs, digit,
                                                                capsys):
    rows = {row["name"]: row for row in client.get("/api/runs").json()["runs"]}
    assert {name: (row["imported"], row["status"]) for name, row in rows.items()} == {
        "lenet5-imported": ("weights", "imported"), "lenet5-script": ("torchscript", "imported"),
        "lenet5-exported": ("exported", "imported"), "own-code": ("code", "imported")}
    assert rows["lenet5-imported"]["closed"] is None and rows["lenet5-script"]["closed"] is None
    data, path = digit
    for run in ("lenet5-imported", "lenet5-script", "lenet5-exported"):
        shown = _probabilities(client, run, data)["top_k"]
        expected = _cli(capsys, "predict", str(imported_runs / run), str(path), "--top-k", "10",
                        "--json")["results"][0]["predictions"]
        assert shown[0]["class"] == expected[0]["class"]
        # by class: far down the ranking, near-zero probabilities may tie in another order
        assert {p["class"]: p["probability"] for p in shown} == pytest.approx(
            {p["class"]: p["probability"] for p in expected}, abs=1e-5)


def test_a_zoo_import_shows_its_maps_and_a_compiled_program_says_why_not(client, digit):
    data, _ = digit
    zoo = _probabilities(client, "lenet5-imported", data)
    assert [s["name"] for s in zoo["stages"]] == ["C1", "S2", "C3", "S4", "C5", "F6"]
    assert zoo["cam"]["layer"] == "C3" and "stages_note" not in zoo
    card = client.get("/api/runs/lenet5-imported/model").json()
    assert card["total_params"] == 61_706 and card["note"] is None and card["layers"]

    for run in ("lenet5-script", "lenet5-exported"):
        program = _probabilities(client, run, data)
        note = program["stages_note"]
        assert program["stages"] == [] and program["cam"] == {"error": note}
        assert "hooks cannot see into" in note and "\n" not in note
        assert sum(program["softmax"]["probabilities"]) == pytest.approx(1, abs=1e-5)
        card = client.get(f"/api/runs/{run}/model").json()
        assert card["layers"] == [] and card["stages"] == [] and card["note"] == note
        assert card["total_params"] == 61_706  # counted without hooks
        refused = _post(client, f"/api/runs/{run}/cam?class_index=0", data)
        assert refused.status_code == 200 and "hooks cannot see into" in refused.json()["error"]


def test_a_code_import_is_listed_with_its_reason_and_opened_only_with_run_code(
        client, imported_runs, digit, capsys):
    row = next(r for r in client.get("/api/runs").json()["runs"] if r["name"] == "own-code")
    assert "--run-code" in row["closed"] and "Net in net.py" in row["closed"]
    refused = client.get("/api/runs/own-code/model")
    assert refused.status_code == 422 and "--run-code" in refused.json()["detail"]
    assert str(imported_runs.parent) not in refused.json()["detail"]  # no server paths
    data, path = digit
    with TestClient(create_app(imported_runs, LIMITS, run_code=True)) as trusting:
        row = next(r for r in trusting.get("/api/runs").json()["runs"] if r["name"] == "own-code")
        assert row["closed"] is None
        shown = _probabilities(trusting, "own-code", data)
    expected = _cli(capsys, "predict", str(imported_runs / "own-code"), str(path), "--top-k", "10",
                    "--json", "--run-code")["results"][0]["predictions"]
    assert {p["class"]: p["probability"] for p in shown["top_k"]} == pytest.approx(
        {p["class"]: p["probability"] for p in expected}, abs=1e-5)
    assert [s["name"] for s in shown["stages"]] == ["conv1"]  # fc is the head


def test_the_trust_verdict_is_cnnzoo_show_trusts(client, imported_runs, digit, capsys, tmp_path):
    data, path = digit
    answer = _post(client, "/api/runs/lenet5-imported/trust", data)
    assert answer.status_code == 200, answer.text
    served = answer.json()
    report = _cli(capsys, "show", "trust", str(imported_runs / "lenet5-imported"), str(path),
                  "--out", str(tmp_path), "--json")
    image = report["images"][0]
    assert served["cam_layer"] == report["cam_layer"]
    assert served["verdict"] == next(m for m in image["methods"] if m["method"] == "grad-cam")
    assert (served["class_index"], served["random"]) == (image["class_index"], image["random"])
    assert served["thresholds"] == report["thresholds"]
    assert served["verdict"]["verdict"].startswith("trust" if served["verdict"]["trust"]
                                                   else "do not trust")

    # the page's layer, as --cam-layer: its figures are those it had among the candidates (a
    # layer's checks do not depend on the others checked beside it)
    at_c1 = _post(client, "/api/runs/lenet5-imported/trust?layer=C1", data).json()
    assert at_c1["cam_layer"] == {"layer": "C1", "chosen_by": "the page", "candidates": []}
    c1 = next(c for c in served["cam_layer"]["candidates"] if c["layer"] == "C1")
    figures = at_c1["verdict"]
    assert at_c1["verdict"]["label"] == "Grad-CAM at C1"
    assert (c1["mean_randomised_rho"], c1["mean_gain"], c1["trusted"]) == (
        figures["randomised_rho"], figures["gain"], int(figures["trust"]))


def test_the_trust_route_says_in_one_line_what_it_cannot_check(client, digit):
    data, _ = digit
    script = _post(client, "/api/runs/lenet5-script/trust", data)
    assert script.status_code == 422 and "hooks cannot see into" in script.json()["detail"]
    wrong = _post(client, "/api/runs/lenet5-imported/trust?class_index=10", data)
    assert wrong.status_code == 422 and "outside 0…9" in wrong.json()["detail"]
    assert _post(client, "/api/runs/nothing/trust", data).status_code == 404
    assert _post(client, "/api/runs/lenet5-imported/trust", b"not an image").status_code == 400


def test_serve_passes_run_code_through(monkeypatch, imported_runs):
    """`cnnzoo serve --run-code` (after the command or before it) reaches the server; nothing else
    turns it on."""
    from cnnzoo.serve import app

    given = []
    monkeypatch.setattr(app, "serve", lambda *args, **kwargs: given.append(kwargs["run_code"]))
    for argv in (["serve", str(imported_runs)], ["serve", str(imported_runs), "--run-code"],
                 ["--run-code", "serve", str(imported_runs)]):
        assert main(argv) == 0
    assert given == [False, True, True]
