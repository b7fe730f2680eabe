"""What a unit wants to see and what it answers to: ``show features`` (activation maximisation),
``show patches`` and ``show occlusion``, checked by their properties on lenet5 and a 3-channel
model.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from cnnzoo.cli import main
from cnnzoo.models.registry import create_model
from cnnzoo.visualize.features import Settings, layer_values, resolve_target, synthesise


@pytest.fixture(scope="module")
def tiny_run(tiny_mnist_dir, tmp_path_factory):
    from cnnzoo.engine.config import TrainConfig
    from cnnzoo.engine.train import train

    out = tmp_path_factory.mktemp("units") / "lenet5"
    train(
        TrainConfig(
            model="lenet5",
            dataset="mnist",
            data_dir=str(tiny_mnist_dir),
            epochs=2,
            batch_size=64,
            lr=0.05,
            out=str(out),
        )
    )
    return out


@pytest.mark.parametrize(
    "name, layer", [("lenet5", "C3"), ("lenet5", "classes"), ("resnet20", "layer1.0")]
)
def test_synthesised_images_drive_their_unit_above_the_starting_noise(name, layer):
    """Random weights: the optimised (pre-activation) value beats the starting image's; the reported
    value is the unit's on its own saved uint8 image.
    """
    torch.manual_seed(0)
    model = create_model(name).eval()
    cfg = model.cfg
    c, side, _ = cfg.input_size
    units = torch.tensor([0, 1, 2])
    mean, std = torch.tensor(cfg.mean).view(1, -1, 1, 1), torch.tensor(cfg.std).view(1, -1, 1, 1)
    _, path, _ = resolve_target(model, layer)

    def run(steps: int) -> tuple[dict, torch.Tensor, torch.Tensor]:
        result = synthesise(
            model,
            layer,
            mean=list(cfg.mean),
            std=list(cfg.std),
            units=units.tolist(),
            settings=Settings(steps=steps),
        )
        with torch.no_grad():
            x = (result["images"].float() / 255 - mean) / std
            return (
                result,
                layer_values(model, x, path)[units, units],
                layer_values(model, x, path, slope=1)[units, units],
            )

    result, value, optimised = run(24)
    _, _, start = run(0)
    assert result["images"].dtype == torch.uint8 and result["images"].shape == (3, c, side, side)
    assert (optimised > start).all(), (optimised, start)
    torch.testing.assert_close(result["values"], value)


def test_layer_values_at_a_relu_equal_the_modules_output():
    from cnnzoo.visualize.activations import activations

    model = create_model("lenet5").eval()
    x = torch.randn(2, 1, 28, 28)
    expected = activations(model, x, ["C3"])["C3"].flatten(2).mean(2)
    torch.testing.assert_close(layer_values(model, x, "features.4"), expected)


def test_show_features_writes_a_grid_each_image_at_input_size_and_the_test_statistics(
    tiny_run, tiny_mnist_dir, tmp_path, capsys
):
    from PIL import Image

    out = tmp_path / "show"
    assert (
        main(
            [
                "show",
                "features",
                str(tiny_run),
                "--layer",
                "C1",
                "--steps",
                "16",
                "--data-dir",
                str(tiny_mnist_dir),
                "--out",
                str(out),
                "--json",
            ]
        )
        == 0
    )
    captured = capsys.readouterr()
    report = json.loads(captured.out)  # the stages go to stderr: stdout stays one document
    assert "features: synthesising 6 images, 16 steps each (16) …" in captured.err
    assert "features: each unit on the test images (200) …" in captured.err
    assert "features: done in" in captured.err
    assert [u["unit"] for u in report["units"]] == list(range(6)) and report["test_images"] == 200
    for unit in report["units"]:
        image = np.asarray(Image.open(unit["file"]))
        assert image.shape == (28, 28) and unit["test_mean"] <= unit["test_max"]
    assert all(p.endswith(".png") for p in report["wrote"])


def test_show_features_on_a_fresh_three_channel_model(tmp_path, capsys):
    from PIL import Image

    assert (
        main(
            [
                "show",
                "features",
                "resnet20",
                "--units",
                "2",
                "--steps",
                "4",
                "--out",
                str(tmp_path),
                "--json",
            ]
        )
        == 0
    )
    report = json.loads(capsys.readouterr().out)
    assert report["layer"] == "classes" and "test_max" not in report["units"][0]
    assert np.asarray(Image.open(report["units"][1]["file"])).shape == (32, 32, 3)


@pytest.mark.slow
@pytest.mark.needs_fashion_mnist
def test_synthesised_class_images_are_classified_as_their_class(
    fashion_mnist_dir, tmp_path, capsys
):
    """The issue's check: a short lenet5 training on Fashion-MNIST, then ``predict --no-prepare``
    (no preparation) on each class's synthesised image.
    """
    from cnnzoo.engine.config import TrainConfig
    from cnnzoo.engine.predict import predict_files
    from cnnzoo.engine.run import open_run
    from cnnzoo.engine.train import train

    run_dir = tmp_path / "lenet5"
    train(
        TrainConfig(
            model="lenet5",
            dataset="fashion-mnist",
            data_dir=str(fashion_mnist_dir),
            epochs=2,
            train_subset=20_000,
            batch_size=128,
            lr=0.05,
            out=str(run_dir),
        )
    )
    assert (
        main(["show", "features", str(run_dir), "--test-images", "1000", "--quiet", "--json"]) == 0
    )
    report = json.loads(capsys.readouterr().out)
    predictions = predict_files(
        open_run(run_dir), [u["file"] for u in report["units"]], prepare=False
    )
    hits = sum(
        p["predictions"][0]["index"] == u["unit"]
        for p, u in zip(predictions, report["units"], strict=True)
    )
    assert hits >= 8, predictions


def _paste_alone(x: torch.Tensor, field, i: int, j: int) -> torch.Tensor:
    """A blank input (the mean) with only unit (i, j)'s receptive-field window of ``x`` in it."""
    from cnnzoo.visualize.patches import window

    size = field[0]
    top, left = window(field, i, j)
    blank = torch.zeros_like(x)
    rows = slice(max(top, 0), max(top + size, 0))
    columns = slice(max(left, 0), max(left + size, 0))
    blank[..., rows, columns] = x[..., rows, columns]
    return blank


@pytest.mark.parametrize(
    "name, layer",
    [("lenet5", "C3"), ("lenet5", "S2"), ("resnet20", "layer2.0"), ("alexnet_small", "conv3")],
)
def test_a_top_patchs_activation_is_the_units_value_on_that_patch_alone(name, layer):
    """The crop is exactly the receptive field: the patch pasted alone into a blank input gives the
    unit the value shown (a window off by one pixel changes it).
    """
    from cnnzoo.visualize.activations import activations
    from cnnzoo.visualize.layers import resolve_layers
    from cnnzoo.visualize.patches import top_patches

    torch.manual_seed(0)
    model = create_model(name).eval()
    c, side, _ = model.cfg.input_size
    x = torch.randn(40, c, side, side)
    path = resolve_layers(model, [layer])[layer]
    result = top_patches(model, layer, path, x.split(16), units=4)
    assert result["field"][0] > 1
    for unit, row in enumerate(result["rows"]):
        assert [p["value"] for p in row] == sorted((p["value"] for p in row), reverse=True)
        best = row[0]
        alone = _paste_alone(x[best["image"]][None], result["field"], best["i"], best["j"])
        value = activations(model, alone, [path])[path][0, unit, best["i"], best["j"]]
        assert value == pytest.approx(best["value"], rel=1e-4, abs=1e-5)


def test_rank_correlation_is_spearmans():
    from cnnzoo.visualize.occlusion import rank_correlation

    torch.manual_seed(0)
    a, b = torch.randn(50), torch.randn(50)
    d = (a.argsort().argsort() - b.argsort().argsort()).double()
    assert rank_correlation(a, b) == pytest.approx(
        1 - 6 * d.square().sum().item() / (50 * (50**2 - 1))
    )
    assert rank_correlation(a, a.exp()) == pytest.approx(1.0)


def test_occluding_the_object_lowers_its_class_probability_more_than_the_background(
    tiny_run, tiny_mnist_dir
):
    """tiny-mnist's images are a bright square at a place given by the class on a dark background.
    """
    from cnnzoo.engine.run import open_run
    from cnnzoo.visualize.occlusion import probability_drop
    from cnnzoo.visualize.source import load_data, model_input

    run = open_run(tiny_run)
    test = load_data(run, tiny_mnist_dir).test
    for index in range(6):
        label = int(test.labels[index])
        drop = probability_drop(
            run.model, model_input(run, test.images[index][None]), label, patch=4, stride=2
        )
        row, col = divmod(label, 5)
        inside = torch.zeros(28, 28, dtype=torch.bool)
        inside[4 + row * 12 : 12 + row * 12, 2 + col * 5 : 6 + col * 5] = True
        assert drop["map"][inside].mean() > drop["map"][~inside].mean() + 0.01, (index, label)


def test_show_patches_and_occlusion_end_to_end(tiny_run, tiny_mnist_dir, tmp_path, capsys):
    from PIL import Image

    image = tmp_path / "probe.png"
    Image.fromarray(np.full((28, 28), 10, np.uint8)).save(image)
    for argv in (
        [
            "show",
            "patches",
            str(tiny_run),
            "--layer",
            "C3",
            "--units",
            "4",
            "--data-dir",
            str(tiny_mnist_dir),
        ],
        ["show", "occlusion", str(tiny_run), str(image), "--no-prepare"],
        ["show", "occlusion", "resnet20", str(image)],
    ):
        assert main([*argv, "--out", str(tmp_path / "show"), "--json"]) == 0, argv
        captured = capsys.readouterr()
        report = json.loads(captured.out)
        assert all(__import__("os").path.getsize(p) > 1000 for p in report["wrote"])
        if argv[1] == "patches":
            assert "patches: C3 on the test images (200) …" in captured.err
            assert "patches: done in" in captured.err
            assert len(report["units"]) == 4 and len(report["units"][0]) == 9
            assert report["receptive_field"] == 14 and report["jump"] == 2
        else:
            assert -1 <= report["rank_correlation"] <= 1 and 0 <= report["probability"] <= 1
