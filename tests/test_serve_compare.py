"""``GET /api/compare``, the explorer's Compare tab: the report equals ``cnnzoo compare A B --json``
for the same two runs, the pictures match the report (one per disagreement, each run's kernels and
maps), answers are kept until a checkpoint changes, and runs that cannot be compared are a 422
whose detail is ``check_comparable``'s one line."""

from __future__ import annotations

import base64
import io
import json
import os
import shutil

import pytest
from PIL import Image

pytest.importorskip("fastapi", reason="the serve extra is not installed (pip install "
                                      "'cnnzoo[serve]')")
pytest.importorskip("httpx", reason="FastAPI's test client needs httpx")
from fastapi.testclient import TestClient  # noqa: E402

from cnnzoo.cli import main  # noqa: E402
from cnnzoo.serve.app import create_app  # noqa: E402

A, B = "lenet5-a", "lenet5bn-b"


@pytest.fixture(scope="module")
def compare_runs(explorer_runs, tmp_path_factory):
    """The two trained test runs, and two imports of an untrained lenet5: one said to be of
    Fashion-MNIST ("fashion"), one of no data set ("no-data")."""
    import torch

    from cnnzoo.models.registry import create_model

    root = tmp_path_factory.mktemp("compare") / "runs"
    for name in (A, B):
        shutil.copytree(explorer_runs / name, root / name)
    weights = root.parent / "lenet5.pt"
    torch.save(create_model("lenet5").state_dict(), weights)
    for name, dataset in (("fashion", ["--dataset", "fashion-mnist"]), ("no-data", [])):
        argv = ["import", str(weights), "--model", "lenet5", *dataset, "--out", str(root / name)]
        assert main(argv) == 0
    return root


@pytest.fixture(scope="module")
def client(compare_runs):
    with TestClient(create_app(compare_runs)) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def answer(client):
    response = client.get(f"/api/compare?a={A}&b={B}&image=3")
    assert response.status_code == 200, response.text
    return response.json()


def _png(b64: str) -> Image.Image:
    return Image.open(io.BytesIO(base64.b64decode(b64)))


def test_the_report_is_cnnzoo_compare_json(answer, compare_runs, tiny_mnist_dir, tmp_path,
                                           capsys):
    argv = ["compare", str(compare_runs / A), str(compare_runs / B), "--image", "3",
            "--data-dir", str(tiny_mnist_dir), "--out", str(tmp_path / "report"), "--json"]
    assert main(argv) == 0
    printed = json.loads(capsys.readouterr().out)
    for key in ("wrote", "seconds"):  # the command's own: files written, time taken
        printed.pop(key)
    served = {key: value for key, value in answer.items() if key != "pictures"}
    # the server names checkpoints from the runs folder, never by their path on its disk
    for run, name in zip(printed["runs"], (A, B), strict=True):
        assert run["checkpoint"].startswith(str(compare_runs / name))
        run["checkpoint"] = os.path.relpath(run["checkpoint"], compare_runs)
    assert [run["checkpoint"] for run in served["runs"]] == [
        f"{A}/checkpoints/best.safetensors", f"{B}/checkpoints/best.safetensors"]
    assert served == printed
    assert served["disagree"] > 0  # the strip below has something to show
    tallies = ("both_right", "a_right", "b_right", "both_wrong", "both_wrong_alike")
    assert sum(served[key] for key in tallies) == served["test_images"] == 200


def test_the_pictures_follow_the_report(answer):
    pictures = answer["pictures"]
    rows = answer["disagreements"]
    assert [p["index"] for p in pictures["disagreements"]] == [row["index"] for row in rows]
    assert {_png(p["png"]).size for p in pictures["disagreements"]} == {(28, 28)}
    for kernels in pictures["kernels"]:
        assert kernels["layer"] and kernels["shape"][0] == 6 and _png(kernels["png"]).width > 5
    maps = pictures["maps"]
    assert maps["image"] == 3 and _png(maps["input"]).size == (28, 28)
    for stages in maps["runs"]:
        assert len(stages) >= 2 and all(_png(stage["png"]).width > 1 for stage in stages)
        assert stages[0]["shape"][0] == 6 and stages[0]["shown"] == 6


def test_answers_are_kept_until_a_checkpoint_changes(client, answer, compare_runs, monkeypatch):
    from cnnzoo.visualize import compare

    explorer = client.app.app.state.explorer
    calls = []
    real = compare.compare_runs
    monkeypatch.setattr(compare, "compare_runs", lambda *a: calls.append(a) or real(*a))
    assert client.get(f"/api/compare?a={A}&b={B}&image=3").json() == answer
    assert calls == []  # kept: no prediction made again
    for checkpoint in (compare_runs / B / "checkpoints").glob("*.safetensors"):
        os.utime(checkpoint, ns=(0, checkpoint.stat().st_mtime_ns + 10**9))  # a newer checkpoint
    again = client.get(f"/api/compare?a={A}&b={B}&image=3").json()
    assert len(calls) == 1 and again["disagree"] == answer["disagree"]
    assert [key[:3] for key in explorer.comparisons._answers] == [(A, B, 3)] * 2


@pytest.mark.parametrize(("b", "status", "reason"), [
    ("fashion", 422, "the runs were trained on different data (mnist with 10 classes, "
                     "fashion-mnist with 10); compare two runs of the same data set"),
    ("no-data", 422, "lenet5 is a bare model, not a trained run; compare takes two run "
                     "directories (or checkpoints) trained on the same data set"),
    ("nowhere", 404, "no run named 'nowhere' in the runs folder"),
])
def test_runs_that_cannot_be_compared_say_why_in_one_line(client, b, status, reason):
    response = client.get(f"/api/compare?a={A}&b={b}")
    assert response.status_code == status
    assert response.json() == {"detail": reason}


def test_an_image_past_the_test_set_is_422(client):
    response = client.get(f"/api/compare?a={A}&b={B}&image=200")
    assert response.status_code == 422
    assert response.json()["detail"] == "image 200: the test set has 200 images"
