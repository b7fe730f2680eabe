"""Seeing inside: properties of the views, not their code — hooks on every model, the score map
equal to the network on each crop, Grad-CAM agreeing with occlusion, neighbours equal to a
brute-force search, ONNX equal to PyTorch — and the commands end to end on a tiny trained run."""

from __future__ import annotations

import copy
import json

import pytest
import torch

from cnnzoo.cli import main
from cnnzoo.errors import ConfigError
from cnnzoo.models.registry import create_model, list_models, model_limits
from cnnzoo.visualize import retrieval
from cnnzoo.visualize.activations import activations
from cnnzoo.visualize.cam import grad_cam, occlusion
from cnnzoo.visualize.filters import kernels
from cnnzoo.visualize.layers import default_stages
from cnnzoo.visualize.scoremap import convolutional_head, feature_stride, score_map

# built at their own small size
SMALL = [n for n in list_models() if model_limits(n).input_size[1] <= 32]
FC_HEADS = ["lenet5", "lenet5_bn", "convnet", "alexnet_small"]
DEEP = {"densenet_bc_100_k12", "resnet110", "plain110", "googlenet_small", "resnet56", "plain56",
        "resnet44",
        "plain44", "resnet32", "plain32"}  # seconds each on 2 cores: run with `make test-slow`
HOOKED = [pytest.param(n, marks=pytest.mark.slow) if n in DEEP else n for n in SMALL]


@torch.no_grad()
def _calibrate_batch_norm(model, x):
    """Running statistics from a batch, as after training: a deep fresh network with the default
    ones (mean 0, variance 1) grows its logits to 1e6 or more, where float rounding alone differs by
    whole units."""
    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    for norm in norms:
        norm.momentum = None  # a plain average of what it sees
    model.train()(x)
    return model.eval()


def _randomise_batch_norm(model):
    """Non-trivial running statistics, so that a BatchNorm conversion error would show."""
    for module in model.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.running_mean.uniform_(-1, 1)
            module.running_var.uniform_(0.5, 2)
    return model


@pytest.fixture(scope="module")
def tiny_run(tiny_mnist_dir, tmp_path_factory):
    from cnnzoo.engine.config import TrainConfig
    from cnnzoo.engine.train import train

    out = tmp_path_factory.mktemp("run") / "lenet5"
    train(TrainConfig(model="lenet5", dataset="mnist", data_dir=str(tiny_mnist_dir), epochs=3,
                      batch_size=64, lr=0.05, out=str(out)))
    return out


@pytest.fixture(scope="module")
def image_file(tiny_mnist_dir, tmp_path_factory):
    from PIL import Image

    from cnnzoo.data.loading import load_dataset

    test = load_dataset("mnist", tiny_mnist_dir, in_channels=1).test
    path = tmp_path_factory.mktemp("img") / "probe.png"
    Image.fromarray(test.images[0, 0].numpy()).save(path)
    return path


@pytest.mark.parametrize("name", HOOKED)
def test_hooks_capture_every_default_stage_in_forward_order(name):
    torch.manual_seed(0)
    side = model_limits(name).min_size  # the smallest input keeps 40 models' forward passes quick
    model = create_model(name, input_size=side).eval()
    x = torch.randn(2, model.cfg.input_size[0], side, side)
    outputs = activations(model, x)
    assert list(outputs) == list(default_stages(model)) and outputs
    assert all(v.shape[0] == 2 and torch.isfinite(v).all() for v in outputs.values())
    assert torch.equal(model(x), model(x))  # the hooks are gone and changed nothing


def test_lenet_stages_carry_the_papers_names_and_shapes():
    outputs = activations(create_model("lenet5").eval(), torch.randn(1, 1, 28, 28))
    shapes = {k: tuple(v.shape[1:]) for k, v in outputs.items()}
    assert shapes == {"C1": (6, 28, 28), "S2": (6, 14, 14), "C3": (16, 10, 10), "S4": (16, 5, 5),
                      "C5": (120,), "F6": (84,)}


def test_unknown_layer_lists_the_valid_ones():
    with pytest.raises(ConfigError, match="C1, S2, C3, S4, C5, F6"):
        activations(create_model("lenet5"), torch.randn(1, 1, 28, 28), ["C7"])


def test_grouped_convolution_gives_one_panel_per_group():
    data = kernels(create_model("alexnet_2012"), "conv2")
    assert (
        data["groups"] == 2 and [tuple(w.shape) for w in data["weights"]] == [(128, 48, 5, 5)] * 2
    )


@pytest.mark.parametrize("name", FC_HEADS)
def test_score_map_cells_equal_the_head_on_each_window(name):
    torch.manual_seed(0)
    model = _randomise_batch_norm(create_model(name)).eval()
    side, stride = model.cfg.input_size[1], feature_stride(model)
    x = torch.randn(1, 1, side + 3 * stride, side + 3 * stride)
    scores = score_map(model, x)["scores"]
    features = model.forward_features(x)
    window = model.forward_features(torch.zeros(1, 1, side, side)).shape[-1]
    assert scores.shape[1:] == (4, 4)
    for i in range(4):
        for j in range(4):
            expected = model.forward_head(features[:, :, i:i + window, j:j + window])[0]
            torch.testing.assert_close(scores[:, i, j], expected, atol=1e-4, rtol=1e-4)


def test_score_map_cells_equal_the_network_on_each_crop_without_padding():
    """lenet5 at 32 px has no padding: each cell is exactly the network applied to its crop."""
    torch.manual_seed(0)
    model = create_model("lenet5", input_size=32).eval()
    x = torch.randn(1, 1, 32 + 4 * 5, 32 + 4 * 5)
    scores = score_map(model, x)["scores"]
    assert scores.shape[1:] == (6, 6)
    crops = torch.cat(
        [x[:, :, 4 * i : 4 * i + 32, 4 * j : 4 * j + 32] for i in range(6) for j in range(6)]
    )
    torch.testing.assert_close(scores.flatten(1).T, model(crops), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", ["nin_small", "resnet20", "lenet5_1998"])
def test_models_without_an_fc_head_get_a_one_line_error(name):
    with pytest.raises(ConfigError) as error:
        convolutional_head(create_model(name))
    assert "\n" not in str(error.value)


def test_grad_cam_agrees_with_occlusion_on_a_trained_model(tiny_run, tiny_mnist_dir):
    from cnnzoo.engine.run import open_run
    from cnnzoo.visualize.source import load_data, model_input

    subject = open_run(tiny_run)
    images = load_data(subject, tiny_mnist_dir).test.images
    correlations = []
    for image in images[:6]:
        x = model_input(subject, image[None])
        cam = grad_cam(subject.model, x, layer="C1")
        occluded = occlusion(subject.model, x, cam["class"], patch=8, stride=2)
        correlations.append(torch.corrcoef(torch.stack([cam["cam"].flatten(),
                                                        occluded.flatten()]))[0, 1])
    assert torch.stack(correlations).mean() > 0.2, correlations


def test_neighbours_are_sorted_and_equal_a_brute_force_search():
    torch.manual_seed(0)
    bank, queries = torch.randn(500, 20), torch.randn(30, 20)
    distances, indices = retrieval.nearest(queries, bank, 7)
    brute = torch.cdist(queries.double(), bank.double())
    expected, expected_indices = brute.topk(7, dim=1, largest=False)
    assert (distances[:, 1:] >= distances[:, :-1]).all()
    torch.testing.assert_close(distances.double(), expected, atol=1e-4, rtol=1e-4)
    assert (indices == expected_indices).float().mean() > 0.99  # ties aside


def test_penultimate_features_are_the_last_linear_layers_input():
    model = create_model("lenet5").eval()
    x = torch.randn(3, 1, 28, 28)
    features = retrieval.penultimate(model, x)
    assert features.shape == (3, 84)
    torch.testing.assert_close(model.classifier[-1](features), model(x))


def test_confident_mistakes_are_the_wrong_answers_with_the_highest_probability():
    from cnnzoo.visualize.mistakes import confident_mistakes, confused_pairs

    torch.manual_seed(0)
    probs = torch.randn(400, 10).mul(3).softmax(-1)
    labels = torch.randint(0, 10, (400,))
    rows = confident_mistakes(probs, labels, 15)
    wrong = [i for i in range(400) if probs[i].argmax() != labels[i]]
    brute = sorted(wrong, key=lambda i: -probs[i].max().item())[:15]
    assert [r["index"] for r in rows] == brute
    assert all(r["true"] == labels[r["index"]] and r["predicted"] != r["true"] for r in rows)
    assert len(confident_mistakes(probs, labels, 10_000)) == len(wrong)
    pairs = confused_pairs(probs, labels, top=3)
    t, p, n = pairs[0]
    assert (
        n == sum(1 for i in wrong if labels[i] == t and probs[i].argmax() == p) and n >= pairs[1][2]
    )


def test_pca_projection_keeps_the_covariances_two_largest_eigenvalues():
    from cnnzoo.visualize.embedding import centroid_accuracy, pca_2d

    torch.manual_seed(0)
    vectors = torch.randn(300, 6) @ torch.randn(6, 6) + 5
    result = pca_2d(vectors)
    eigenvalues = torch.linalg.eigvalsh(torch.cov(vectors.double().T)).flip(0)
    torch.testing.assert_close(result["points"].double().var(0), eigenvalues[:2], rtol=1e-4,
                               atol=1e-6)
    torch.testing.assert_close(torch.tensor(result["explained"]),
                               (eigenvalues[:2] / eigenvalues.sum()).float())
    labels = torch.arange(300) % 3
    separated = torch.randn(300, 2) * 0.1 + torch.stack([labels * 5.0, labels * 0.0], 1)
    assert centroid_accuracy(separated, labels) == 1.0
    assert centroid_accuracy(torch.randn(300, 2), labels) < 0.6


@pytest.mark.parametrize(
    "name", [n if n in FC_HEADS else pytest.param(n, marks=pytest.mark.slow) for n in list_models()]
)
def test_every_model_exports_to_onnx_and_agrees(name, tmp_path):
    """Each at its own input size; the ImageNet-size ones (files of up to 575 MB) under ``make
    test-slow``."""
    pytest.importorskip("onnxruntime")
    from cnnzoo.visualize.export import compare, export_onnx

    torch.manual_seed(0)
    model = create_model(name)
    c, side, _ = model.cfg.input_size
    _calibrate_batch_norm(model, torch.randn(4, c, side, side))
    path = export_onnx(model, tmp_path / f"{name}.onnx", torch.randn(2, c, side, side))
    # another batch size: the axis is dynamic
    x = torch.randn(3, c, side, side)
    check = compare(path, model, x)
    path.unlink()
    # as close as float32 allows: PyTorch's own float32 logits are 6e-4 from float64's on plain56 (a
    # deep plain net, ill-conditioned at random weights), ONNX Runtime's 1.2e-3
    with torch.no_grad():
        exact = copy.deepcopy(model).double()(x.double())
        fp32_error = float((model(x).double() - exact).abs().max())
    assert check["max_abs_logit_diff"] < max(1e-3, 4 * fp32_error)
    assert check["top1_agreement"] == 1.0


def test_commands_end_to_end_on_a_trained_run(tiny_run, tiny_mnist_dir, image_file, tmp_path,
                                              capsys):
    out = tmp_path / "show"
    for argv in (["show", "filters", str(tiny_run)], ["show", "maps", str(tiny_run),
                                                      str(image_file)],
                 ["show", "cam", str(tiny_run), str(image_file)],
                 ["show", "neighbours", str(tiny_run), str(image_file), "--k", "4", "--queries",
                  "100"],
                 ["show", "errors", str(tiny_run), "--count", "5"], ["show", "embedding",
                                                                     str(tiny_run)],
                 ["scoremap", str(tiny_run)], ["export", str(tiny_run), "--out",
                                               str(tmp_path / "m.onnx")]):
        if argv[0] != "export":
            argv += ["--out", str(out)]
        if argv[1] in ("neighbours", "errors", "embedding", str(tiny_run)):
            argv += ["--data-dir", str(tiny_mnist_dir)]
        assert main([*argv, "--json"]) == 0, argv
        captured = capsys.readouterr()
        report = json.loads(captured.out)  # progress goes to stderr: stdout stays one JSON document
        label = argv[0] if argv[0] in ("export", "scoremap") else argv[1]
        if label in ("neighbours", "embedding", "errors", "export", "scoremap"):
            assert f"{label}: done in" in captured.err, captured.err
        if label == "errors":
            assert "errors: class probabilities of the test images (200) …" in captured.err
        if label == "scoremap":
            assert "scoremap: class scores of every window in one pass …" in captured.err
        if argv[1] == "neighbours":
            assert "neighbours: indexing the training images" in captured.err
        assert all(
            p.endswith((".png", ".onnx")) and __import__("os").path.getsize(p) > 1000
            for p in report["wrote"]
        )
        if argv[:2] == ["show", "neighbours"]:
            assert report["precision_at_k"]["features"] > 0.5
            assert (out / "features.safetensors").is_file()
        if argv[0] == "export":
            assert report["top1_agreement"] == 1.0
        if argv[:2] == ["show", "errors"]:
            shown = [r["probability"] for r in report["most_confident"]]
            assert len(shown) == min(5, report["mistakes"]) and shown == sorted(shown, reverse=True)
        if argv[:2] == ["show", "embedding"]:
            assert all(0 < sum(s["explained_variance"]) <= 1 for s in report["spaces"].values())


def test_an_exported_file_says_what_its_input_must_be(tiny_run, tiny_mnist_dir, tmp_path,
                                                      capsys):
    """Fed raw pixels, the ONNX file of a LeNet trained with cnnzoo's normalisation scored 27.6%
    where predict said 99.97%: the file now carries its input's recipe and the class names."""
    import numpy as np
    from PIL import Image

    from cnnzoo.engine.predict import predict_files
    from cnnzoo.engine.run import load_run

    ort = pytest.importorskip("onnxruntime")
    assert main(["export", str(tiny_run), "--out", str(tmp_path / "m.onnx"), "--data-dir",
                 str(tiny_mnist_dir), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    meta = ort.InferenceSession(str(tmp_path / "m.onnx"),
                                providers=["CPUExecutionProvider"]).get_modelmeta()
    recipe = json.loads(meta.custom_metadata_map["cnnzoo.input"])
    classes = json.loads(meta.custom_metadata_map["cnnzoo.classes"])
    assert recipe == report["input"] and classes == report["classes"]
    # an image at the model's side, prepared only as the file says, scores as predict does
    pixels = np.random.default_rng(0).integers(0, 256, recipe["shape"][1:], dtype=np.uint8)
    Image.fromarray(pixels, "L").save(tmp_path / "x.png")
    x = (pixels / 255.0 - recipe["mean"][0]) / recipe["std"][0]
    session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    logits = session.run(None, {"images": x[None, None].astype(np.float32)})[0][0]
    probabilities = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
    [answer] = predict_files(load_run(tiny_run), [tmp_path / "x.png"], top_k=1, prepare=False)
    best = answer["predictions"][0]
    assert classes[int(probabilities.argmax())] == best["class"]
    assert float(probabilities.max()) == pytest.approx(best["probability"], abs=1e-4)


def test_unknown_layer_is_a_one_line_cli_error(capsys):
    assert main(["show", "filters", "lenet5", "--layer", "conv9", "--out", "/tmp/never"]) == 2
    assert "features.0, features.3" in capsys.readouterr().err


@pytest.mark.parametrize("kind", ["fifo", "directory", "bomb"])
def test_scoremap_reads_an_image_with_predicts_checks(tiny_run, tmp_path, capsys, kind):
    """scoremap opened the file itself: a FIFO hung it and a decompression bomb was a traceback."""
    import os
    import time

    from PIL import Image

    path = tmp_path / "image.png"
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "directory":
        path.mkdir()
    else:
        Image.new("L", (20_000, 20_000)).save(path)  # 400 M pixels, a small file
    started = time.monotonic()
    assert main(["scoremap", str(tiny_run), str(path), "--out", str(tmp_path / "out")]) == 2
    assert time.monotonic() - started < 5
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and str(path) in error and "Traceback" not in error


def test_a_long_figure_title_wraps_inside_the_figure(tmp_path):
    from cnnzoo.visualize.drawing import save
    from cnnzoo.visualize.filters import draw_filters

    name = "budgetnet_l variant (depths=[2,1,1], full_resolution=true) (trained on fashion-mnist)"
    figure = draw_filters(kernels(create_model("lenet5"), None), title=name)
    save(figure, tmp_path / "filters.png")
    extent = figure._suptitle.get_window_extent(figure.canvas.get_renderer())
    assert 0 <= extent.x0 and extent.x1 <= figure.bbox.width
    assert extent.y1 <= figure.bbox.height
