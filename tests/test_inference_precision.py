"""Reduced-precision inference: fp32 stays exact, int8 and bf16 agree with fp32 on a small trained
run, the gate refuses a model whose accuracy drops (a deliberately bad calibration) unless forced,
and the commands' JSON has the figures. No timed assertion: speed is `cnnzoo bench inference`'s."""

from __future__ import annotations

import json

import pytest
import torch

from cnnzoo.cli import main
from cnnzoo.engine import precision_gate
from cnnzoo.engine.inference import inference_precision, optimize_for_inference
from cnnzoo.engine.quantize import missing
from cnnzoo.engine.run import load_run
from cnnzoo.engine.runtime import cpu_has_fast_bf16
from cnnzoo.models.registry import create_model

needs_ort = pytest.mark.skipif(missing("onnxruntime") is not None,
                               reason="onnxruntime not installed")
needs_torchao = pytest.mark.skipif(missing("pt2e") is not None, reason="torchao not installed")


@pytest.fixture(scope="module")
def trained(tiny_mnist_dir, tmp_path_factory):
    from cnnzoo.engine.config import TrainConfig
    from cnnzoo.engine.train import train

    out = tmp_path_factory.mktemp("int8") / "lenet5_bn"
    train(TrainConfig(model="lenet5_bn", dataset="mnist", data_dir=str(tiny_mnist_dir), epochs=3,
                      batch_size=64, lr=0.05, out=str(out), precision="fp32"))
    return out


def test_the_default_path_is_fp32_and_equal_to_plain_pytorch():
    torch.manual_seed(0)
    model = create_model("resnet20", in_channels=1).eval()
    x = torch.randn(8, 1, 28, 28)
    fast = optimize_for_inference(model, x, method="script")
    with torch.no_grad():
        torch.testing.assert_close(fast(x), model(x), atol=1e-5, rtol=1e-5)


def test_bf16_is_asked_for_only_where_the_cpu_runs_it_natively(monkeypatch):
    import cnnzoo.engine.inference as inference

    monkeypatch.setattr(inference, "cpu_has_fast_bf16", lambda: False)
    precision, why = inference_precision("bf16", torch.device("cpu"))
    assert precision == "fp32" and "no native bf16" in why
    assert inference_precision("auto", torch.device("cpu"))[0] == "fp32"
    monkeypatch.setattr(inference, "cpu_has_fast_bf16", lambda: True)
    assert inference_precision("bf16", torch.device("cpu")) == ("bf16", "")


@needs_ort
def test_int8_agrees_with_fp32_on_a_small_trained_run(trained, tiny_mnist_dir):
    run = load_run(trained)
    _, report = precision_gate.gate(run, "int8", data_dir=str(tiny_mnist_dir),
                                    int8_backend="onnxruntime")
    assert report["backend"] == "onnxruntime" and report["images"] == 200
    assert report["fp32_top1"] > 0.9  # the run learned: the agreement below means something
    assert report["top1_agreement_with_fp32"] >= 0.98 and report["keeps_accuracy"]
    assert report["kept"] == report["pays"] and not report["forced"]


@needs_torchao
@pytest.mark.slow  # inductor compiles the int8 graph: half a minute or more on 2 cores
def test_pt2e_int8_agrees_with_fp32_on_a_small_trained_run(trained, tiny_mnist_dir):
    _, report = precision_gate.gate(load_run(trained), "int8", data_dir=str(tiny_mnist_dir),
                                    int8_backend="pt2e")
    assert report["backend"] == "pt2e" and report["top1_agreement_with_fp32"] >= 0.98


@pytest.mark.skipif(not cpu_has_fast_bf16(), reason="this CPU has no native bf16 (avx512_bf16 or "
                                                    "AMX): the bf16 path runs fp32 here, tested "
                                                    "above")
def test_bf16_agrees_with_fp32_where_native(trained, tiny_mnist_dir):
    _, report = precision_gate.gate(load_run(trained), "bf16", data_dir=str(tiny_mnist_dir))
    assert report["precision"] == "bf16" and report["top1_agreement_with_fp32"] >= 0.98


@needs_ort
def test_the_gate_refuses_a_model_whose_accuracy_drops_unless_forced(trained, tiny_mnist_dir,
                                                                     monkeypatch):
    batches = precision_gate.model_batches

    def bad_calibration(*args, **kwargs):
        # activations a thousandth of their real size: every real one saturates the int8 range
        return [batch * 1e-3 for batch in batches(*args, **kwargs)]

    monkeypatch.setattr(precision_gate, "model_batches", bad_calibration)
    run = load_run(trained)
    kept, report = precision_gate.gate(run, "int8", data_dir=str(tiny_mnist_dir),
                                       int8_backend="onnxruntime")
    assert kept is None and not report["keeps_accuracy"] and not report["kept"]
    assert report["accuracy_drop_points"] > 50 and "refused" in precision_gate.verdict(report)
    forced, report = precision_gate.gate(run, "int8", data_dir=str(tiny_mnist_dir), force=True,
                                         int8_backend="onnxruntime")
    assert forced is not None and report["kept"] and report["forced"]


@needs_ort
def test_export_int8_writes_the_file_and_its_figures(trained, tiny_mnist_dir, tmp_path, capsys):
    out = tmp_path / "m.onnx"
    code = main(["export", str(trained), "--out", str(out), "--int8", "--data-dir",
                 str(tiny_mnist_dir), "--json"])
    report = json.loads(capsys.readouterr().out)
    int8 = report["int8"]
    assert code == (0 if int8["kept"] else 1)
    assert int8["precision"] == "int8" and 0 <= int8["top1"] <= 1 and "accuracy_drop_points" in int8
    stored = json.loads((tmp_path / "m.int8.json").read_text())
    assert stored["top1"] == int8["top1"]
    assert (tmp_path / "m.int8.onnx").exists() == int8["kept"]


@needs_ort
def test_eval_precision_int8_prints_and_stores_the_verdict(trained, tiny_mnist_dir, capsys):
    assert main(["eval", str(trained), "--precision", "int8", "--int8-backend", "onnxruntime",
                 "--data-dir", str(tiny_mnist_dir), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert {"fp32_top1", "top1", "top1_agreement_with_fp32", "kept"} <= set(report)
    stored = json.loads((trained / "inference_gate.json").read_text())
    assert stored["int8"]["top1"] == report["top1"]


@needs_ort
def test_bench_inference_json_has_every_variant_with_its_figures(trained, tiny_mnist_dir, capsys,
                                                                 monkeypatch):
    monkeypatch.setattr("os.getloadavg", lambda: (9.0, 9.0, 9.0))  # another job on the cores
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    assert main(["bench", "inference", "--run", str(trained), "--data-dir", str(tiny_mnist_dir),
                 "--variants", "int8_onnxruntime", "fp16", "--repeats", "1", "--json"]) == 0
    out, err = capsys.readouterr()
    # figures not to report as they are say so, on stderr and in the JSON
    caution = json.loads(out)["caution"]
    assert len(caution) == 2 and "--repeats 3" in caution[0] and "load 9.0 on 2)" in caution[1]
    assert all(f"bench: caution: {line}" in err for line in caution)
    rows = {row["variant"]: row for row in json.loads(out)["inference"]}
    assert set(rows) == {"eager_fp32", "int8_onnxruntime", "fp16"}
    assert "GPU" in rows["fp16"]["skipped"]  # fp16 is measured on a GPU only
    for name in ("eager_fp32", "int8_onnxruntime"):
        row = rows[name]
        assert row["batch1_latency_ms"] > 0 and row["batch64_images_per_second"] > 0
        assert {"speedup_batch1", "speedup_batch64", "test_top1", "machine"} <= set(row)
        assert row["test_views"] == "center"  # the gate's view, named beside its accuracy
    assert rows["eager_fp32"]["speedup_batch64"] == 1.0
    assert rows["eager_fp32"]["top1_agreement_with_fp32"] == 1.0
    assert rows["int8_onnxruntime"]["top1_agreement_with_fp32"] >= 0.98


@needs_torchao
@pytest.mark.slow  # inductor compiles the int8 graph twice
def test_pt2e_compiles_every_batch_size_with_freezing(monkeypatch):
    """Freezing is what turns each quantise/dequantise pair and its convolution into one int8
    kernel; a batch size the first call did not have recompiles, and must compile frozen too (it
    once did not, and int8 ran at fp32 speed)."""
    import torch._inductor.compile_fx as compile_fx
    from torch._inductor import config as inductor_config

    from cnnzoo.engine.quantize import quantize_pt2e

    frozen, gradients = [], []
    real = compile_fx.compile_fx

    def spy(*args, **kwargs):
        frozen.append(inductor_config.freezing)
        gradients.append(torch.is_grad_enabled())
        return real(*args, **kwargs)

    monkeypatch.setattr(compile_fx, "compile_fx", spy)
    torch._dynamo.reset()
    torch.manual_seed(0)
    run = quantize_pt2e(create_model("lenet5").eval(), [torch.randn(8, 1, 28, 28)])
    # called as a benchmark calls it, gradients on: freezing needs an inference graph, and with
    # gradients on the int8 graph once ran at eager speed
    outputs = [run(torch.randn(batch, 1, 28, 28)) for batch in (3, 64)]
    assert len(frozen) >= 2 and all(frozen), frozen
    assert not any(gradients) and not any(out.requires_grad for out in outputs)
