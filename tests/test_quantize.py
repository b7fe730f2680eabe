"""The int8 toolchains' limits: torch 2.13's inductor pools int8 maps in floor mode whatever a
max-pool's ``ceil_mode`` says (GoogLeNet's pools), and a model a toolchain cannot compile falls to
the other toolchain with the reason kept, instead of ending ``bench inference`` or ``export``."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cnnzoo.engine import quantize as quantize_module
from cnnzoo.engine.quantize import floor_mode_pools, missing, quantize
from cnnzoo.errors import ConfigError
from cnnzoo.models.registry import create_model

needs_torchao = pytest.mark.skipif(missing("pt2e") is not None, reason="torchao not installed")
needs_ort = pytest.mark.skipif(missing("onnxruntime") is not None,
                               reason="onnxruntime not installed")


@pytest.mark.parametrize("kernel, stride", [(3, 2), (2, 2), (3, 1), (5, 3)])
@pytest.mark.parametrize("height, width", [(7, 8), (16, 16), (55, 58), (112, 113)])
def test_floor_mode_pools_give_every_ceil_mode_value(kernel, stride, height, width):
    pool = nn.MaxPool2d(kernel, stride, ceil_mode=True)
    x = torch.randn(2, 3, height, width)
    replaced = floor_mode_pools(nn.Sequential(pool))
    assert not any(isinstance(m, nn.MaxPool2d) for m in replaced.modules())
    assert torch.equal(replaced(x), pool(x))  # the same size and the same maxima


def test_floor_mode_pools_copy_googlenet_and_leave_other_models_alone():
    googlenet = create_model("googlenet", num_classes=10).eval()
    replaced = floor_mode_pools(googlenet)
    assert replaced is not googlenet
    assert any(isinstance(m, nn.MaxPool2d) and m.ceil_mode for m in googlenet.modules())
    assert not any(isinstance(m, nn.MaxPool2d) and m.ceil_mode for m in replaced.modules())
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        assert torch.equal(replaced(x), googlenet(x))
    alexnet = create_model("alexnet")  # overlapping pools, floor mode: nothing to replace
    assert floor_mode_pools(alexnet) is alexnet


@needs_torchao
def test_pt2e_int8_keeps_the_size_of_a_ceil_mode_pool():
    """Without the replacement this gives 7×7 maps for 8×8 (measured with torch 2.13)."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(),
                          nn.MaxPool2d(3, stride=2, ceil_mode=True)).eval()
    calibration = [torch.randn(8, 3, 16, 16) for _ in range(2)]
    run = quantize_module.quantize_pt2e(model, calibration)
    with torch.no_grad():
        expected = model(calibration[1])
    got = run(calibration[1])
    assert got.shape == expected.shape == (8, 16, 8, 8)
    assert (got - expected).abs().max() < 0.05 * expected.abs().max()


class _CannotCompile(torch._dynamo.exc.TorchDynamoException):
    pass


def _fails_to_compile(model, calibration):
    # after a blank line, as inductor's messages can start: the quoted line is the first with words
    raise _CannotCompile("\nLoweringException: a shape inductor could not lower\nmore detail")


@needs_ort
def test_a_toolchain_that_cannot_compile_the_model_falls_to_the_other(monkeypatch):
    monkeypatch.setattr(quantize_module, "quantize_pt2e", _fails_to_compile)
    model = create_model("lenet5").eval()
    calibration = [torch.randn(16, 1, 28, 28)]
    run, chosen = quantize(model, calibration, "auto")
    assert chosen["backend"] == "onnxruntime"
    assert chosen["not_tried"]["pt2e"] == ("pt2e could not compile this model (_CannotCompile: "
                                           "LoweringException: a shape inductor could not lower)")
    assert run(calibration[0]).shape == (16, 10)
    with pytest.raises(ConfigError, match="pt2e could not compile this model"):
        quantize(model, calibration, "pt2e")  # nothing left to fall to: one line, not a traceback


@needs_ort
def test_onnxruntime_quantisation_keeps_its_root_logger_warnings_to_itself(caplog):
    """ONNX Runtime's quantiser logs a line on the root logger for each BatchNorm left unfolded (a
    BatchNorm before its convolution, as in DenseNet): 62 for densenet121 in bench inference."""
    import logging

    model = create_model("densenet_bc_40_k12", in_channels=1).eval()  # 21 lines before
    with caplog.at_level(logging.WARNING):
        quantize_module.quantize_onnxruntime(model, [torch.randn(4, 1, 28, 28)])
        assert logging.getLogger().level == logging.WARNING  # the root logger as it was
    assert not [r for r in caplog.records if "out-of-range" in r.getMessage()]
