"""`cnnzoo serve`, the explorer's API, through FastAPI's test client on tiny trained runs: every
route, what the page is told (checked against `cnnzoo predict`, `cnnzoo.visualize` and `cnnzoo
summary` on the same image), and every refusal: 404 for names and links leading outside the runs
folder, 400 for bad images, 413 for bodies over the limit (Content-Length or counted while
streaming), 408 for stalled bodies, 503 when inference is busy, 422 for a damaged checkpoint while
the other runs go on being served."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import ctrl_c_reaches_it

pytest.importorskip("fastapi", reason="the serve extra is not installed (pip install "
                                      "'cnnzoo[serve]')")
pytest.importorskip("httpx", reason="FastAPI's test client needs httpx")
from fastapi.testclient import TestClient  # noqa: E402

from cnnzoo import rundir  # noqa: E402
from cnnzoo.cli import main  # noqa: E402
from cnnzoo.serve import runs  # noqa: E402
from cnnzoo.serve.app import create_app  # noqa: E402
from cnnzoo.serve.limits import BodyLimit, Limits  # noqa: E402

LIMITS = Limits(max_upload_bytes=200_000, max_image_pixels=250_000, max_inference=1, max_models=2)


@pytest.fixture(scope="module")
def client(explorer_runs):
    with TestClient(create_app(explorer_runs, LIMITS)) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def digit_png(tiny_mnist_dir) -> bytes:
    from cnnzoo.data.loading import load_dataset

    test = load_dataset("mnist", tiny_mnist_dir, in_channels=1).test
    buffer = io.BytesIO()
    Image.fromarray(test.images[3, 0].numpy()).save(buffer, format="PNG")
    return buffer.getvalue()


def _post(client, path, data: bytes, name="x.png"):
    return client.post(path, files={"image": (name, data, "image/png")})


def _bytes(b64: str) -> np.ndarray:
    return np.frombuffer(base64.b64decode(b64), dtype=np.uint8)


def test_runs_list_shows_the_runs_inside_and_nothing_that_leads_out(client):
    body = client.get("/api/runs").json()
    rows = {row["name"]: row for row in body["runs"]}
    # "escape" links outside: not listed
    assert set(rows) == {"lenet5-a", "lenet5bn-b", "damaged", "leaky"}
    assert not rows["leaky"]["has_checkpoint"]  # its checkpoints link outside: as good as none
    a = rows["lenet5-a"]
    assert (a["model"], a["dataset"], a["epochs_done"], a["status"]) == (
        "lenet5",
        "mnist",
        2,
        "finished",
    )
    assert 0 <= a["test_top1"] <= 1 and a["date"][:2] == "20" and a["has_checkpoint"]
    assert body["limits"]["max_upload_bytes"] == LIMITS.max_upload_bytes


def test_run_details_and_figures(client, explorer_runs):
    details = client.get("/api/runs/lenet5-a").json()
    summary = json.loads((explorer_runs / "lenet5-a" / "summary.json").read_text())
    assert [row["epoch"] for row in details["metrics"]] == [1, 2]
    assert details["metrics"][-1]["test_top1"] == pytest.approx(summary["test_top1"], abs=1e-4)
    assert details["per_class"] == pytest.approx(summary["per_class_top1"], abs=1e-4)
    assert "out" not in details["config"] and "data_dir" not in details["config"]  # no server paths
    figure = client.get("/api/runs/lenet5-a/figures/confusion.png")
    assert figure.status_code == 200 and figure.content[:8] == b"\x89PNG\r\n\x1a\n"
    assert client.get("/api/runs/lenet5-a/figures/config.json").status_code == 404


def test_a_run_of_a_variant_is_listed_and_carded_with_its_builder_arguments(explorer_runs,
                                                                            tmp_path):
    root = tmp_path / "runs"
    shutil.copytree(explorer_runs / "lenet5-a", root / "variant")
    config_file = root / "variant" / "config.json"
    config = json.loads(config_file.read_text())
    config_file.write_text(json.dumps({**config, "model_kwargs": {"input_size": 28}}))
    row = runs.describe(root, "variant")
    assert (row["model"], row["variant"]) == ("lenet5", "lenet5 variant (input_size=28)")
    with TestClient(create_app(root, LIMITS)) as client:
        card = client.get("/api/runs/variant/model").json()
    assert (card["model"], card["variant"]) == ("lenet5", row["variant"])


def test_model_card_is_cnnzoo_summary(client):
    from cnnzoo.inspect.summary import summary
    from cnnzoo.models.registry import create_model

    card = client.get("/api/runs/lenet5-a/model").json()
    expected = summary(create_model("lenet5"))
    assert card["stages"] == ["C1", "S2", "C3", "S4", "C5", "F6"] and card["classes"] == [
        str(i) for i in range(10)
    ]
    assert card["total_params"] == expected.total_params == 61_706
    assert [
        (r["name"], r["output_shape"], r["params"], r["macs"], r["receptive_field"])
        for r in card["layers"]
    ] == [(r.name, r.output_shape, r.params, r.macs, r.receptive_field) for r in expected.layers]


def test_model_card_leads_with_the_count_cnnzoo_list_shows():
    """LeNet-1998's 840 fixed RBF prototypes are counted apart, as in `cnnzoo list` and summary."""
    from cnnzoo.engine.run import open_run
    from cnnzoo.models.base import parameter_count
    from cnnzoo.serve.explain import model_card
    from cnnzoo.serve.models import Entry

    subject = open_run("lenet5_1998")
    card = model_card(Entry(subject, (), None))
    assert card["params"] == parameter_count(subject.model) == 60_000  # `cnnzoo list`'s count
    assert (card["fixed_params"], card["total_params"]) == (840, 60_840)


def test_predict_agrees_with_cnnzoo_predict_and_the_visualisations(client, explorer_runs,
                                                                   digit_png, tmp_path):
    from cnnzoo.engine.predict import predict_files
    from cnnzoo.engine.run import load_run, open_run
    from cnnzoo.visualize.activations import activations
    from cnnzoo.visualize.cam import grad_cam
    from cnnzoo.visualize.source import load_input

    result = _post(client, "/api/runs/lenet5-a/predict?top_k=3", digit_png).json()
    path = tmp_path / "digit.png"
    path.write_bytes(digit_png)
    expected = predict_files(load_run(explorer_runs / "lenet5-a"), [path], top_k=3)[0][
        "predictions"
    ]
    assert [p["class"] for p in result["top_k"]] == [p["class"] for p in expected]
    assert [p["probability"] for p in result["top_k"]] == pytest.approx(
        [p["probability"] for p in expected], abs=1e-5
    )
    subject = open_run(explorer_runs / "lenet5-a")
    _, x, _ = load_input(subject, path)
    outputs = activations(subject.model, x)
    assert [(s["name"], s["shape"]) for s in result["stages"]] == [(k, list(v.shape[1:])) for k,
                                                                   v in outputs.items()]
    c1 = result["stages"][0]
    first = outputs["C1"][0, 0].numpy()
    sent = (
        _bytes(c1["data"])[: 28 * 28].reshape(28, 28) / 255 * (c1["max"][0] - c1["min"][0])
        + c1["min"][0]
    )
    # the map, to one grey level
    assert np.abs(sent - first).max() <= (first.max() - first.min()) / 255 + 1e-4
    assert c1["layer"]["formula"] == "(28 − 5 + 2·2) / 1 + 1 = 28" and c1["layer"][
        "weight_shape"
    ] == [6, 1, 5, 5]
    assert result["stages"][2]["layer"]["formula"] == "(14 − 5 + 2·0) / 1 + 1 = 10"
    assert result["cam"]["layer"] == grad_cam(subject.model, x)["layer"] == "C3"
    assert result["input"]["shape"] == [1, 28, 28]


def _neighbours_when_built(client, path: str, image: bytes, seconds: float = 60) -> dict:
    """The neighbours answer, asking again while the index is built (202) as the page does."""
    deadline = time.monotonic() + seconds
    while True:
        response = _post(client, path, image)
        if response.status_code != 202:
            assert response.status_code == 200, response.text
            return response.json()
        assert response.json()["index"]["state"] in ("loading", "building"), response.text
        assert time.monotonic() < deadline, "the index was not built in time"
        time.sleep(0.05)


def test_neighbours_and_test_images_come_from_the_runs_data(client, explorer_runs, tiny_mnist_dir,
                                                            digit_png):
    from cnnzoo.data.loading import load_dataset
    from cnnzoo.engine.run import open_run
    from cnnzoo.visualize import retrieval
    from cnnzoo.visualize.source import model_input

    data = load_dataset("mnist", tiny_mnist_dir, in_channels=1)
    found = _neighbours_when_built(client, "/api/runs/lenet5-a/neighbours?k=4", digit_png)
    subject = open_run(explorer_runs / "lenet5-a")
    bank = retrieval.dataset_features(subject, data.train.images)
    query = retrieval.penultimate(subject.model, model_input(subject, data.test.images[3:4]))
    assert [item["index"] for item in found["images"]] == retrieval.nearest(query, bank, 4)[1][
        0
    ].tolist()
    assert found["searched"] == len(data.train)
    item = client.get("/api/runs/lenet5-a/test-image?index=5").json()
    assert item["label"] == int(data.test.labels[5]) and item["count"] == len(data.test)
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(base64.b64decode(item["png"])))),
                          data.test.images[5, 0].numpy())
    assert client.get("/api/runs/lenet5-a/test-image?index=100000").status_code == 422
    # a value of the wrong type is an error like the others: one line, naming what it got
    typed = client.get("/api/runs/lenet5-a/test-image?index=abc")
    assert typed.status_code == 422 and isinstance(typed.json()["detail"], str)
    assert "query index" in typed.json()["detail"] and "'abc'" in typed.json()["detail"]


def test_the_index_builds_in_the_background_while_predict_answers(explorer_runs, digit_png,
                                                                  monkeypatch):
    """The first search starts the index in a thread of its own and answers 202 with its progress at
    once; meanwhile predict and the model card answer (200, not 503, with the test's one inference
    slot), the progress is served, and once built the index is searched, never built again."""
    import threading

    from cnnzoo.serve import index as index_module
    from cnnzoo.visualize import retrieval

    release, calls, real = threading.Event(), [], retrieval.penultimate

    def held(model, x):  # the builder's batches wait for the test; the requests' own calls do not
        if threading.current_thread().name == "cnnzoo-index":
            calls.append(len(x))
            assert release.wait(60)
        return real(model, x)

    monkeypatch.setattr(retrieval, "penultimate", held)
    monkeypatch.setattr(index_module, "BATCH", 100)
    with TestClient(create_app(explorer_runs, LIMITS)) as fresh:
        first = _post(fresh, "/api/runs/lenet5-a/neighbours", digit_png)
        assert first.status_code == 202
        assert first.json()["index"]["state"] in ("loading", "building")
        for _ in range(3):
            assert _post(fresh, "/api/runs/lenet5-a/predict", digit_png).status_code == 200
            assert fresh.get("/api/runs/lenet5-a/model").status_code == 200
        while not calls:
            time.sleep(0.01)
        progress = fresh.get("/api/runs/lenet5-a/index").json()["index"]
        assert progress["state"] == "building" and progress["done"] < progress["total"] == 600
        release.set()
        found = _neighbours_when_built(fresh, "/api/runs/lenet5-a/neighbours", digit_png)
        assert len(found["images"]) == 8 and found["index"]["done"] == 600
        built = len(calls)
        assert built == 6  # 600 training images in batches of 100
        _neighbours_when_built(fresh, "/api/runs/lenet5-a/neighbours", digit_png)
        assert len(calls) == built  # searched again, not built again
        assert fresh.get("/api/runs/lenet5bn-b/index").json()["index"]["state"] == "absent"


@pytest.mark.parametrize("path", ["/api/runs/..", "/api/runs/%2e%2e", "/api/runs/..%2f..%2fetc",
                                  "/api/runs/%2fetc",
                                  "/api/runs/.%2e/model", "/api/runs/escape",
                                  "/api/runs/escape/model",
                                  "/api/runs/nothing", "/api/runs/lenet5-a%00",
                                  "/api/runs/" + "a" * 300,
                                  "/api/runs/leaky/model",
                                  "/api/runs/lenet5-a/figures/..%2fconfig.json",
                                  "/static/..%2f..%2fserve%2froutes.py", "/api/runs/%252e%252e"])
def test_traversal_and_links_out_are_404(client, path):
    response = client.get(path)
    assert response.status_code == 404, response.text


def test_links_out_are_refused_before_anything_is_read(explorer_runs, monkeypatch):
    opened = []
    monkeypatch.setattr("cnnzoo.engine.run.open_run", lambda path, **kw: opened.append(path))
    with pytest.raises(runs.RunNotFound):
        runs.run_path(explorer_runs.resolve(), "escape")
    with TestClient(create_app(explorer_runs, LIMITS)) as fresh:
        assert fresh.get("/api/runs/leaky/model").status_code == 404
        assert _post(fresh, "/api/runs/escape/predict", b"x").status_code == 404
    assert opened == []


def test_bad_images_are_400_with_a_message(client, digit_png):
    big = io.BytesIO()
    Image.new("L", (600, 600)).save(big, format="PNG")  # 360,000 pixels: over the test's 250,000
    cases = {"not an image": b"hello, world", "truncated": digit_png[: len(digit_png) // 2],
             "empty": b"", "too many pixels": big.getvalue()}
    for what, data in cases.items():
        response = _post(client, "/api/runs/lenet5-a/predict", data)
        assert response.status_code == 400, what
        assert response.json()["detail"], what
    assert "pixels" in _post(client, "/api/runs/lenet5-a/predict", big.getvalue()).json()["detail"]
    missing = client.post("/api/runs/lenet5-a/predict",
                          files={"picture": ("x.png", digit_png, "image/png")})
    assert missing.status_code == 400 and "'image'" in missing.json()["detail"]


def test_a_body_over_the_limit_is_413(client):
    response = _post(client, "/api/runs/lenet5-a/predict", b"\0" * (LIMITS.max_upload_bytes + 1))
    assert response.status_code == 413 and "limit" in response.json()["detail"]


def _call(app, headers, chunks, delay=0.0):
    """Drive an ASGI app by hand: returns (status, how many body chunks it pulled)."""
    pulled, sent = [], []

    async def receive():
        await asyncio.sleep(delay)
        index = len(pulled)
        pulled.append(index)
        if index < len(chunks):
            return {"type": "http.request", "body": chunks[index],
                    "more_body": index < len(chunks) - 1}
        await asyncio.sleep(3600)

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/", "headers": headers}
    asyncio.run(app(scope, receive, send))
    return sent[0]["status"], len(pulled)


async def _reads_everything(scope, receive, send):
    while (await receive()).get("more_body"):
        pass
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


def test_body_limit_reads_nothing_past_the_limit():
    app = BodyLimit(_reads_everything, limit=1000, timeout=5)
    chunks = [b"x" * 300] * 100  # 30 kB, chunked: no Content-Length
    # refused before a byte is read
    assert _call(app, [(b"content-length", b"30000")], chunks) == (413, 0)
    # counted: the fourth chunk passes 1000 bytes; no fifth is read
    assert _call(app, [], chunks) == (413, 4)
    assert _call(app, [], chunks[:3]) == (200, 3)
    assert _call(app, [(b"content-length", b"12abc")], chunks)[0] == 400


def test_a_stalled_or_trickling_body_is_408():
    stalls = BodyLimit(_reads_everything, limit=10_000, timeout=0.05)
    assert _call(stalls, [], [b"x"] * 5, delay=0.2)[0] == 408
    trickles = BodyLimit(_reads_everything, limit=10_000, timeout=0.2, deadline=0.3)
    # each chunk in time, the whole too late
    status, pulled = _call(trickles, [], [b"x"] * 20, delay=0.05)
    assert status == 408 and pulled < 20
    assert _call(trickles, [], [b"x"] * 3, delay=0.05) == (200, 3)


def test_busy_inference_is_503_not_a_queue(client, digit_png):
    gate = client.app.app.state.explorer.gate
    with gate:  # the one slot of the test's limits is taken
        response = _post(client, "/api/runs/lenet5-a/predict", digit_png)
        assert response.status_code == 503 and response.headers["retry-after"] == "1"
        assert client.get("/api/runs/lenet5-a/model").status_code == 503
        assert client.get("/api/runs").status_code == 200  # listing needs no slot
    assert _post(client, "/api/runs/lenet5-a/predict", digit_png).status_code == 200


def test_a_damaged_checkpoint_is_422_for_its_run_only(client, explorer_runs, digit_png):
    card = client.get("/api/runs/damaged/model")
    detail = card.json()["detail"]
    assert card.status_code == 422 and detail.startswith("damaged/checkpoints/best.safetensors: "
                                                         "not a readable")
    assert str(explorer_runs.resolve()) not in detail  # no server paths in answers
    assert _post(client, "/api/runs/damaged/predict", digit_png).status_code == 422
    assert client.get("/api/runs/damaged").status_code == 200  # its metrics are still there
    assert _post(client, "/api/runs/lenet5bn-b/predict", digit_png).status_code == 200


def test_models_are_cached_lru_and_reloaded_when_the_checkpoint_changes(explorer_runs, tmp_path):
    root = tmp_path / "runs"
    for name in ("lenet5-a", "lenet5bn-b"):
        shutil.copytree(explorer_runs / name, root / name)
    app = create_app(root, Limits(max_models=1))
    cache = app.app.state.explorer.cache
    first = cache.get("lenet5-a")
    assert cache.get("lenet5-a") is first
    cache.get("lenet5bn-b")
    assert cache.names() == ["lenet5bn-b"]  # capacity 1: lenet5-a went
    checkpoint = root / "lenet5bn-b" / "checkpoints" / "best.safetensors"
    os.utime(checkpoint, ns=(time.time_ns(), time.time_ns() + 10**9))
    assert cache.get("lenet5bn-b") is not cache.get("lenet5-a") and len(cache) == 1


def test_a_run_still_training_is_live(explorer_runs, tmp_path):
    root = tmp_path / "runs"
    shutil.copytree(explorer_runs / "lenet5-a", root / "live")
    (root / "live" / "summary.json").unlink()
    metrics = root / "live" / "metrics.csv"
    lines = metrics.read_text().splitlines()
    metrics.write_text("\n".join(lines[:2]) + "\n")
    with rundir.writer_lock(root / "live"), TestClient(create_app(root)) as live:
        row = live.get("/api/runs").json()["runs"][0]
        assert (row["status"], row["epochs_done"]) == ("training", 1)
        # a row being written
        metrics.write_text("\n".join(lines) + "\n" + lines[-1].split(",")[0][:0] + "3,0.1")
        # the half row is left out
        assert live.get("/api/runs").json()["runs"][0]["epochs_done"] == 2


def test_serve_without_the_extra_is_one_line_exit_2(monkeypatch, capsys, explorer_runs):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name,
                        *a: None if name == "fastapi" else real(name, *a))
    assert main(["serve", str(explorer_runs)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "pip install 'cnnzoo[serve]'" in err


def test_serve_refuses_a_missing_folder_a_run_and_a_busy_port(capsys, explorer_runs):
    from cnnzoo.serve.app import bind

    assert main(["serve", str(explorer_runs / "nothing")]) == 2
    assert main(["serve", str(explorer_runs / "lenet5-a")]) == 2
    with bind("127.0.0.1", 0) as taken:
        assert main(["serve", str(explorer_runs), "--port", str(taken.getsockname()[1])]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert (
        len(lines) == 3
        and "no such folder" in lines[0]
        and "run directory itself" in lines[1]
        and "choose another --port" in lines[2]
    )


def test_binding_beyond_loopback_warns_there_is_no_authentication(monkeypatch, capsys,
                                                                  explorer_runs):
    import uvicorn

    monkeypatch.setattr(uvicorn.Server, "run", lambda self, sockets=None: None)
    assert main(["serve", str(explorer_runs), "--host", "0.0.0.0", "--port", "0"]) == 0
    err = capsys.readouterr().err
    assert "no authentication" in err and "http://0.0.0.0:" in err
    main(["serve", str(explorer_runs), "--port", "0"])
    assert "no authentication" not in capsys.readouterr().err


def test_a_real_server_refuses_big_bodies_unread_and_stops_on_ctrl_c(explorer_runs):
    """`cnnzoo serve` as a user starts it: the URL printed, 413 on a header that promises 50 MB
    (sent without a body, so only an answer before reading can come back), 413 on a chunked stream,
    and Ctrl-C ends it cleanly."""
    import re
    import signal
    import socket
    import subprocess
    import sys

    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    server = subprocess.Popen([sys.executable, "-m", "cnnzoo", "serve", str(explorer_runs),
                               "--port", "0",
                               "--max-upload-mb", "1"], stderr=subprocess.PIPE, text=True, env=env,
                              preexec_fn=ctrl_c_reaches_it)
    try:
        line = server.stderr.readline()
        host, port = re.search(r"http://([\d.]+):(\d+)/", line).groups()
        with socket.create_connection((host, int(port)), timeout=20) as sock:
            sock.sendall(b"POST /api/runs/lenet5-a/predict HTTP/1.1\r\nHost: "
                         b"%s:%s\r\nContent-Length: 50000000\r\n"
                         % (host.encode(), port.encode()) +
                         b"Content-Type: multipart/form-data; boundary=b\r\n\r\n")
            assert sock.recv(100).startswith(b"HTTP/1.1 413")
        with socket.create_connection((host, int(port)), timeout=20) as sock:
            sock.sendall(b"POST /api/runs/lenet5-a/predict HTTP/1.1\r\nHost: "
                         b"%s:%s\r\nTransfer-Encoding: chunked\r\n"
                         % (host.encode(), port.encode()) +
                         b"Content-Type: multipart/form-data; boundary=b\r\n\r\n")
            head = b'--b\r\nContent-Disposition: form-data; name="image"; filename="x.png"\r\n\r\n'
            # a well-formed start: the file goes on and on
            sock.sendall(b"%x\r\n%s\r\n" % (len(head), head))
            chunk = b"%x\r\n%s\r\n" % (65536, b"\0" * 65536)
            try:
                for _ in range(40):  # 2.5 MB offered; the server answers after 1 MB and closes
                    sock.sendall(chunk)
            except (BrokenPipeError, ConnectionResetError):
                pass
            assert sock.recv(100).startswith(b"HTTP/1.1 413")
        server.send_signal(signal.SIGINT)
        assert server.wait(timeout=20) == 0
        rest = server.stderr.read()
        assert "stopped" in rest and "Traceback" not in rest
    finally:
        server.kill()
        server.wait()


def test_a_pickle_upload_is_refused_and_never_runs(client, tmp_path):
    import pickle

    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    response = _post(client, "/api/runs/lenet5-a/predict", pickle.dumps(Payload()), name="model.pt")
    assert response.status_code == 400 and not marker.exists()


def test_the_page_is_shipped_in_the_wheel():
    import tomllib

    from cnnzoo.serve.routes import STATIC

    project = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())
    assert "serve/static/*" in project["tool"]["setuptools"]["package-data"]["cnnzoo"]
    assert {p.name for p in STATIC.iterdir()} >= {"index.html", "explorer.js", "explorer.css",
                                                  "charts.js", "colours.js"}
    assert all(p.is_file() for p in STATIC.iterdir())  # the glob takes files, not folders
    page = (STATIC / "index.html").read_text()
    assert "http://" not in page and "https://" not in page  # nothing from a CDN: works offline


def test_runs_on_one_data_set_share_it(explorer_runs):
    cache = create_app(explorer_runs, LIMITS).app.state.explorer.cache
    a, b = cache.get("lenet5-a"), cache.get("lenet5bn-b")
    assert cache.data_for(a) is cache.data_for(b)


def test_a_real_server_answers_only_its_own_page_and_names(explorer_runs, tmp_path):
    """Another site's page can make a browser POST to the explorer, and a DNS-rebinding page can
    reach it by a name of its own: refused (403, 421), while the explorer's own page is served with
    headers that forbid framing and scripts from elsewhere."""
    import http.client
    import re
    import subprocess
    import sys

    from PIL import Image

    image = tmp_path / "x.png"
    Image.new("L", (28, 28), 200).save(image)
    body = (b'--b\r\nContent-Disposition: form-data; name="image"; filename="x.png"\r\n'
            b"Content-Type: image/png\r\n\r\n" + image.read_bytes() + b"\r\n--b--\r\n")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    server = subprocess.Popen([sys.executable, "-m", "cnnzoo", "serve", str(explorer_runs),
                               "--port", "0"],
                              stderr=subprocess.PIPE, text=True, env=env)
    try:
        host, port = re.search(r"http://([\d.]+):(\d+)/", server.stderr.readline()).groups()
        own = f"{host}:{port}"

        def ask(method: str, path: str, **headers: str) -> http.client.HTTPResponse:
            connection = http.client.HTTPConnection(host, int(port), timeout=60)
            connection.request(method, path, body=body if method == "POST" else None,
                               headers={"Host": own,
                                        "Content-Type": "multipart/form-data; boundary=b",
                                        **headers})
            response = connection.getresponse()
            response.read()
            connection.close()
            return response

        page = ask("GET", "/")
        assert (
            page.status == 200
            and "frame-ancestors 'none'" in page.headers["Content-Security-Policy"]
        )
        assert page.headers["X-Content-Type-Options"] == "nosniff"
        assert page.headers["Referrer-Policy"] == "no-referrer"
        assert ask("GET", "/api/runs", Host=f"rebound.example:{port}").status == 421
        predict = "/api/runs/lenet5-a/predict"
        assert (
            ask(
                "POST", predict, Origin="http://evil.example", **{"Sec-Fetch-Site": "cross-site"}
            ).status
            == 403
        )
        assert ask("POST", predict, Origin="http://evil.example").status == 403
        assert ask("POST", predict, Origin="null").status == 403
        assert (
            ask("POST", predict, Origin=f"http://{own}", **{"Sec-Fetch-Site": "same-origin"}).status
            == 200
        )
        assert ask("POST", predict).status == 200  # not a browser: no Origin, no Sec-Fetch-Site
    finally:
        server.kill()
        server.wait()


def test_a_request_never_makes_the_server_download_a_data_set(explorer_runs, tmp_path, monkeypatch):
    """Asking for a test image of a run whose data set is not installed made the server try to
    download it."""
    import json
    import shutil

    import cnnzoo.data.download as download

    fetched = []
    monkeypatch.setattr(download, "urllib_fetch", lambda url, destination: fetched.append(url))
    # no copy in the user's cache either
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    root = tmp_path / "runs"
    shutil.copytree(explorer_runs / "lenet5-a", root / "elsewhere")
    config = json.loads((root / "elsewhere" / "config.json").read_text())
    (tmp_path / "empty").mkdir()
    config["data_dir"] = str(tmp_path / "empty")
    (root / "elsewhere" / "config.json").write_text(json.dumps(config))
    with TestClient(create_app(root, LIMITS)) as fresh:
        response = fresh.get("/api/runs/elsewhere/test-image?index=0")
    assert response.status_code >= 400 and fetched == []
    # paths named relative to the served folder, never absolutely
    assert str(tmp_path) not in response.text


def test_a_real_server_serves_a_client_while_100_connections_never_finish_their_headers(
    explorer_runs,
):
    """100 connections that send a request line and stop used to make every other request a 503 (or
    wait forever); their headers are now due within a few seconds, and a normal client is answered
    meanwhile."""
    import http.client
    import re
    import socket
    import subprocess
    import sys
    import time

    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    server = subprocess.Popen([sys.executable, "-m", "cnnzoo", "serve", str(explorer_runs),
                               "--port", "0"],
                              stderr=subprocess.PIPE, text=True, env=env)
    slow = []
    try:
        host, port = re.search(r"http://([\d.]+):(\d+)/", server.stderr.readline()).groups()
        for _ in range(100):
            connection = socket.create_connection((host, int(port)), timeout=30)
            connection.sendall(b"GET /api/runs HTTP/1.1\r\n")  # and never the rest
            slow.append(connection)
        for _ in range(3):
            started = time.monotonic()
            normal = http.client.HTTPConnection(host, int(port), timeout=30)
            normal.request("GET", "/api/runs", headers={"Host": f"{host}:{port}"})
            answer = normal.getresponse()
            assert answer.status == 200 and json.loads(answer.read())["runs"]
            assert time.monotonic() - started < 5
            normal.close()
        time.sleep(7)  # past the headers' deadline: the server has closed every slow connection
        assert all(connection.recv(1) == b"" for connection in slow)
    finally:
        for connection in slow:
            connection.close()
        server.kill()
        server.wait()


def test_a_position_grad_cam_and_softmax_come_from_the_model(client, explorer_runs, digit_png,
                                                              tmp_path):
    """The position route's arithmetic equals the model's own activations (a convolution, a pool and
    a fully connected stage), Grad-CAM of any class at any stage is ``grad_cam``'s (an all-zero map
    flagged), and the softmax table's numbers are the model's logits and probabilities."""
    from cnnzoo.engine.run import open_run
    from cnnzoo.visualize.activations import activations
    from cnnzoo.visualize.cam import grad_cam
    from cnnzoo.visualize.source import load_input

    path = tmp_path / "digit.png"
    path.write_bytes(digit_png)
    subject = open_run(explorer_runs / "lenet5-a")
    _, x, _ = load_input(subject, path)
    outputs = activations(subject.model, x)
    places = (("C1", 3, 0, 27), ("S2", 1, 7, 6), ("C3", 9, 4, 5), ("C5", 17, 0, 0))
    for stage, channel, y, column in places:
        query = f"stage={stage}&channel={channel}&y={y}&x={column}"
        answer = _post(client, f"/api/runs/lenet5-a/position?{query}", digit_png).json()
        value = outputs[stage][0, channel]
        value = value if stage == "C5" else value[y, column]
        assert answer["value"] == pytest.approx(float(value), abs=1e-5), stage
        for step in answer["steps"]:
            if "computed" in step:
                assert step["computed"] == pytest.approx(step["model_value"], abs=1e-5), stage
    c1 = _post(client, "/api/runs/lenet5-a/position?stage=C1&channel=3&y=0&x=27", digit_png).json()
    assert c1["image_window"]["top"] == -2 and c1["image_window"]["size"] == 5
    assert c1["animation"]["padding"] == 2 and len(c1["animation"]["output"]) == 28
    outside = _post(client, "/api/runs/lenet5-a/position?stage=C1&channel=6", digit_png)
    assert outside.status_code == 422
    result = _post(client, "/api/runs/lenet5-a/predict", digit_png).json()
    logits = subject.model(x)[0]
    assert result["softmax"]["logits"] == pytest.approx(logits.tolist(), abs=1e-5)
    assert sum(result["softmax"]["probabilities"]) == pytest.approx(1, abs=1e-5)
    for target in range(10):
        query = f"class_index={target}&layer=C1"
        cam = _post(client, f"/api/runs/lenet5-a/cam?{query}", digit_png).json()
        expected = grad_cam(subject.model, x, target, "C1")["cam"]
        assert cam["class_index"] == target and cam["all_zero"] == (float(expected.max()) == 0)


def test_a_run_is_training_while_its_writer_holds_the_lock_and_stopped_once_it_is_gone(
        explorer_runs, tmp_path):
    """An interrupted run's metrics.csv is as fresh as a live one's: its card said "training" for
    ten minutes after a Ctrl-C. The writer's lock says which it is."""
    root = tmp_path / "runs"
    shutil.copytree(explorer_runs / "lenet5-a", root / "half")
    (root / "half" / "summary.json").unlink()  # ended before its summary, a moment ago

    def status() -> str:
        with TestClient(create_app(root, LIMITS)) as client:
            runs = client.get("/api/runs").json()["runs"]
            return {run["name"]: run["status"] for run in runs}["half"]

    with rundir.writer_lock(root / "half"):
        assert status() == "training"
    assert status() == "stopped"
