"""`cnnzoo predict --precision`: fp32 stays the plain model; int8 is the model the accuracy gate
kept (the same classes as eval's int8 path) with the gate's stored figures; no kept model is a
one-line error; bf16 agrees with fp32 where the CPU runs it natively."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from PIL import Image

from cnnzoo.cli import main
from cnnzoo.engine import precision_gate
from cnnzoo.engine.predict import predict_files
from cnnzoo.engine.quantize import missing
from cnnzoo.engine.run import load_run
from cnnzoo.engine.runtime import cpu_has_fast_bf16

needs_ort = pytest.mark.skipif(missing("onnxruntime") is not None,
                               reason="onnxruntime not installed")


@pytest.fixture(scope="module")
def trained(tiny_mnist_dir, tmp_path_factory):
    from cnnzoo.engine.config import TrainConfig
    from cnnzoo.engine.train import train

    out = tmp_path_factory.mktemp("predict-precision") / "lenet5_bn"
    train(TrainConfig(model="lenet5_bn", dataset="mnist", data_dir=str(tiny_mnist_dir), epochs=3,
                      batch_size=64, lr=0.05, out=str(out), precision="fp32"))
    return out


@pytest.fixture(scope="module")
def images(tiny_mnist_dir, tmp_path_factory):
    """Twelve test images as PNG files, and their uint8 pixels."""
    from cnnzoo.data.idx import read_idx_pair

    pixels, _ = read_idx_pair(tiny_mnist_dir / "t10k-images-idx3-ubyte.gz",
                              tiny_mnist_dir / "t10k-labels-idx1-ubyte.gz", limit=12)
    folder = tmp_path_factory.mktemp("pngs")
    paths = []
    for index, image in enumerate(pixels):
        paths.append(folder / f"{index}.png")
        Image.fromarray(image).save(paths[-1])
    return paths, torch.from_numpy(pixels)


def _predict(capsys, *argv) -> dict:
    assert main(["predict", *map(str, argv), "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_default_predict_is_fp32_and_plain_pytorch(trained, images, capsys):
    paths, pixels = images
    answer = _predict(capsys, trained, *paths, "--no-prepare", "--top-k", "10")
    assert "precision" not in answer and "gate" not in answer  # the output it always had
    run = load_run(trained)
    assert run.input.size == pixels.shape[-1]  # no padding: the normalisation below is all of it
    mean, std = (torch.tensor(v).view(1, -1, 1, 1) for v in (run.input.mean, run.input.std))
    with torch.no_grad():
        expected = run.model((pixels[:, None].float() / 255 - mean) / std).softmax(-1)
    for item, row in zip(answer["results"], expected, strict=True):
        got = torch.zeros(len(row))
        for p in item["predictions"]:
            got[p["index"]] = p["probability"]
        torch.testing.assert_close(got, row, atol=1e-5, rtol=0)


def test_int8_without_a_kept_model_is_one_line_and_exit_2(trained, images, tmp_path, capsys):
    bare = tmp_path / "run"
    shutil.copytree(trained, bare, ignore=shutil.ignore_patterns(precision_gate.GATE_FILE))
    assert main(["predict", str(bare), str(images[0][0]), "--precision", "int8"]) == 2
    error = capsys.readouterr().err.strip()
    assert "\n" not in error and "has no int8 model kept by the accuracy gate" in error
    assert f"cnnzoo eval {bare} --precision int8" in error and f"export {bare} --int8" in error


def test_a_damaged_gate_file_is_one_line_and_exit_2(trained, images, tmp_path, capsys):
    damaged = tmp_path / "run"
    shutil.copytree(trained, damaged)
    (damaged / precision_gate.GATE_FILE).write_text('{"int8": [1, 2')
    assert main(["predict", str(damaged), str(images[0][0]), "--precision", "int8"]) == 2
    error = capsys.readouterr().err.strip()
    assert "\n" not in error and f"{damaged / precision_gate.GATE_FILE} is damaged" in error


def test_bf16_is_refused_where_the_cpu_has_no_native_bf16(trained, images, monkeypatch, capsys):
    import cnnzoo.engine.inference as inference

    monkeypatch.setattr(inference, "cpu_has_fast_bf16", lambda: False)
    assert main(["predict", str(trained), str(images[0][0]), "--precision", "bf16"]) == 2
    error = capsys.readouterr().err.strip()
    assert "\n" not in error and "no native bf16" in error and "--precision fp32" in error


@needs_ort
def test_int8_is_the_model_the_gate_kept_with_its_figures(trained, images, tiny_mnist_dir,
                                                          capsys):
    data = str(tiny_mnist_dir)
    # --force: on a model this small int8 may not pay, and the gate would refuse it for that alone
    assert main(["eval", str(trained), "--precision", "int8", "--int8-backend", "onnxruntime",
                 "--force", "--data-dir", data]) == 0
    capsys.readouterr()
    paths, _ = images
    answer = _predict(capsys, trained, *paths, "--precision", "int8", "--data-dir", data)
    stored = precision_gate.stored_verdicts(trained)["int8"]
    assert answer["precision"] == "int8"
    assert answer["gate"] == {key: stored[key] for key in precision_gate.FIGURES}
    # eval's int8 path: the gate's own model, calibrated as it was when the verdict was stored
    run = load_run(trained)
    kept, report = precision_gate.gate(run, "int8", data_dir=data, force=True,
                                       int8_backend="onnxruntime")
    assert report["top1"] == stored["top1"]  # the same model as the stored verdict's
    expected = predict_files(run, paths, model=kept)
    got = answer["results"]
    assert [r["predictions"][0]["class"] for r in got] == [
        r["predictions"][0]["class"] for r in expected]
    assert [r["predictions"][0]["probability"] for r in got] == pytest.approx(
        [r["predictions"][0]["probability"] for r in expected], abs=1e-6)
    # the text output says what was traded, in the gate's figures
    assert main(["predict", str(trained), str(paths[0]), "--precision", "int8", "--data-dir",
                 data]) == 0
    err = capsys.readouterr().err
    assert "int8 (onnxruntime): the gate measured" in err
    assert f"top-1 {stored['top1']:.2%} against fp32 {stored['fp32_top1']:.2%}" in err
    assert f"agreement with fp32 {stored['top1_agreement_with_fp32']:.1%}" in err


@pytest.mark.skipif(not cpu_has_fast_bf16(), reason="this CPU has no native bf16 (avx512_bf16 or "
                                                    "AMX), so predict refuses bf16 here")
def test_bf16_agrees_with_fp32_top1(trained, images, capsys):
    paths, _ = images
    fp32 = _predict(capsys, trained, *paths)
    bf16 = _predict(capsys, trained, *paths, "--precision", "bf16")
    assert bf16["precision"] == "bf16"
    assert [r["predictions"][0]["class"] for r in bf16["results"]] == [
        r["predictions"][0]["class"] for r in fp32["results"]]


@pytest.mark.skipif(not cpu_has_fast_bf16(), reason="this CPU has no native bf16 (avx512_bf16 or "
                                                    "AMX), so predict refuses bf16 here")
def test_the_api_predicts_in_the_precision_asked_as_the_command_does(trained, images, capsys):
    import cnnzoo
    from cnnzoo.errors import ConfigError

    paths, _ = images
    command = _predict(capsys, trained, *paths, "--precision", "bf16")
    answers = cnnzoo.predict(trained, paths, precision="bf16")
    assert all(a["precision"] == "bf16" and a["gate"] == command["gate"] for a in answers)
    assert [a["predictions"] for a in answers] == [r["predictions"] for r in command["results"]]
    plain = cnnzoo.predict(trained, paths)  # fp32: the answers as they always were
    assert "precision" not in plain[0] and plain[0]["predictions"] != answers[0]["predictions"]
    with pytest.raises(ConfigError, match="fp32, bf16 or int8; got 'fp16'"):
        cnnzoo.predict(trained, paths, precision="fp16")
