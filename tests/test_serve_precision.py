"""`cnnzoo serve --precision`: the explorer's scores come from the model the run's accuracy gate
kept (as `cnnzoo predict --precision` gives them) and the answer names the precision and the gate's
figures; maps and Grad-CAM stay fp32 and say so; a run with no kept model is answered in fp32 with
the reason."""

from __future__ import annotations

import json
import shutil

import pytest
from PIL import Image

pytest.importorskip("fastapi", reason="the serve extra is not installed (pip install "
                                      "'cnnzoo[serve]')")
pytest.importorskip("httpx", reason="FastAPI's test client needs httpx")
from fastapi.testclient import TestClient  # noqa: E402

from cnnzoo.cli import main  # noqa: E402
from cnnzoo.engine import precision_gate  # noqa: E402
from cnnzoo.engine.quantize import missing  # noqa: E402
from cnnzoo.errors import ConfigError  # noqa: E402
from cnnzoo.serve.app import create_app  # noqa: E402
from cnnzoo.serve.limits import Limits  # noqa: E402

LIMITS = Limits(max_upload_bytes=200_000, max_image_pixels=250_000, max_inference=1, max_models=2)


@pytest.fixture()
def digit(tiny_mnist_dir, tmp_path):
    from cnnzoo.data.loading import load_dataset

    test = load_dataset("mnist", tiny_mnist_dir, in_channels=1).test
    path = tmp_path / "digit.png"
    Image.fromarray(test.images[3, 0].numpy()).save(path)
    return path


def _post(client, path, png):
    answer = client.post(path, files={"image": ("x.png", png.read_bytes(), "image/png")})
    assert answer.status_code == 200, answer.text
    return answer.json()


@pytest.mark.skipif(missing("onnxruntime") is not None, reason="onnxruntime not installed")
def test_predictions_use_the_kept_int8_model_and_views_stay_fp32(explorer_runs, tiny_mnist_dir,
                                                                 digit, tmp_path, capsys):
    runs = tmp_path / "runs"
    for name in ("gated", "ungated"):
        shutil.copytree(explorer_runs / "lenet5-a", runs / name,
                        ignore=shutil.ignore_patterns(precision_gate.GATE_FILE))
    data = str(tiny_mnist_dir)
    assert main(["eval", str(runs / "gated"), "--precision", "int8", "--int8-backend",
                 "onnxruntime", "--force", "--data-dir", data]) == 0
    assert main(["predict", str(runs / "gated"), str(digit), "--precision", "int8", "--top-k",
                 "3", "--data-dir", data, "--json"]) == 0
    expected = json.loads(capsys.readouterr().out)
    app = create_app(runs, LIMITS, data_dir=data, precision="int8")
    with TestClient(app) as client:
        gated = _post(client, "/api/runs/gated/predict?top_k=3", digit)
        ungated = _post(client, "/api/runs/ungated/predict?top_k=3", digit)
        cam = _post(client, "/api/runs/gated/cam?class_index=0", digit)
    assert gated["precision"] == "int8" and gated["gate"] == expected["gate"]
    wanted = expected["results"][0]["predictions"]
    assert [p["class"] for p in gated["top_k"]] == [p["class"] for p in wanted]
    assert [p["probability"] for p in gated["top_k"]] == pytest.approx(
        [p["probability"] for p in wanted], abs=1e-5)
    assert gated["stages"] and "fp32" in gated["fp32_views"] and "fp32_views" in cam
    assert ungated["precision"] == "fp32" and "fp32_views" not in ungated
    assert "has no int8 model kept by the accuracy gate" in ungated["precision_note"]
    assert str(tmp_path) not in ungated["precision_note"]  # the server's folders stay its own


def test_bf16_is_refused_at_start_without_native_bf16(explorer_runs, monkeypatch):
    import cnnzoo.engine.inference as inference

    monkeypatch.setattr(inference, "cpu_has_fast_bf16", lambda: False)
    with pytest.raises(ConfigError, match="no native bf16.*--precision fp32"):
        create_app(explorer_runs, LIMITS, precision="bf16")
