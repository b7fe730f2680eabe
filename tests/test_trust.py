"""``cnnzoo show trust``: the checks behind the verdict, each on a case whose answer is known, and
the verdict both ways: a trained lenet5's Grad-CAM is trusted; maps that ignore the weights (an
edge map of the input, Grad-CAM of an untrained copy) and every map of an untrained network are
not.
"""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from cnnzoo.cli import main
from cnnzoo.models.registry import create_model
from cnnzoo.visualize import trust


@pytest.fixture(scope="module")
def tiny_run(tiny_mnist_dir, tmp_path_factory):
    from cnnzoo.engine.config import TrainConfig
    from cnnzoo.engine.train import train

    out = tmp_path_factory.mktemp("trust") / "lenet5"
    train(TrainConfig(model="lenet5", dataset="mnist", data_dir=str(tiny_mnist_dir), epochs=2,
                      batch_size=64, lr=0.05, out=str(out)))
    return out


@pytest.fixture(scope="module")
def images(tiny_mnist_dir, tmp_path_factory):
    from PIL import Image

    from cnnzoo.data.loading import load_dataset

    test = load_dataset("mnist", tiny_mnist_dir, in_channels=1).test
    folder = tmp_path_factory.mktemp("trust-images")
    paths = [folder / f"probe{i}.png" for i in range(2)]
    for image, path in zip(test.images, paths, strict=False):
        Image.fromarray(image[0].numpy()).save(path)
    return paths


def _methods(image: dict) -> dict[str, dict]:
    return {row["method"]: row for row in image["methods"]}


def test_trained_grad_cam_is_trusted_and_maps_that_ignore_the_weights_are_not(
    tiny_run, images, tmp_path, capsys
):
    from PIL import Image

    argv = ["show", "trust", str(tiny_run), *map(str, images), "--methods", "grad-cam",
            "edges", "untrained", "--out", str(tmp_path), "--json"]
    assert main(argv) == 0
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    choice = report["cam_layer"]
    layer = choice["layer"]
    assert choice["chosen_by"] == "checks"
    best = max(c["trusted"] for c in choice["candidates"])
    assert [c["trusted"] for c in choice["candidates"] if c["layer"] == layer] == [best]
    assert f"Grad-CAM layer: {layer}, chosen by the checks (" in captured.err
    for image in report["images"]:
        rows = _methods(image)
        assert rows["grad-cam"]["trust"], rows["grad-cam"]["verdict"]
        for control in ("edges", "untrained"):
            # they ignore the weights: randomising every layer leaves them exactly as they were
            assert not rows[control]["trust"] and rows[control]["randomised_rho"] == 1.0
            assert [step["rho"] for step in rows[control]["cascade"]] == [1.0] * 5
        name = image["image"].rsplit("/", 1)[-1]
        assert f"{name}  Grad-CAM at {layer}  trust: " in captured.err
        assert f"{name}  edge map (control)  do not trust: " in captured.err
        assert "randomised ρ 1.00 ≥ 0.5" in rows["edges"]["verdict"]
        width, height = Image.open(image["figure"]).size
        assert height > width / 2  # three rows of five panels
    assert report["wrote"] == [image["figure"] for image in report["images"]]


def test_no_map_of_an_untrained_network_is_trusted(images, tmp_path, capsys):
    """A fresh lenet5 tells no class from another: whatever the map, removing pixels in its order
    moves the class probability no more than a random order does.
    """
    assert main(["show", "trust", "lenet5", str(images[0]), "--out", str(tmp_path), "--json"]) == 0
    captured = capsys.readouterr()
    rows = _methods(json.loads(captured.out)["images"][0])
    assert set(rows) == {"grad-cam", "saliency", "occlusion"}
    for row in rows.values():
        assert not row["trust"] and row["gain"] < row["gain_needed"], row["verdict"]
    assert "no layer passes on these images" in captured.err


class _Reader(nn.Module):
    """Two logits, the first from the mean of one 4×4 block of the image: only that block matters.
    """

    def forward(self, x):
        block = (x[:, 0, 10:14, 10:14].mean((1, 2)) - 0.5) * 8
        return torch.stack([block, torch.zeros_like(block)], 1)


def test_removal_curves_reward_the_order_that_finds_what_the_model_reads():
    torch.manual_seed(0)
    model, x = _Reader(), torch.rand(1, 1, 28, 28) * 0.1
    x[..., 10:14, 10:14] = 1  # a bright block that a blur spreads out: the class is gone
    right = torch.zeros(28, 28)
    right[10:14, 10:14] = 1
    random = trust.removal_curves(model, x, 0, None)
    found = trust.removal_curves(model, x, 0, right)
    wrong = trust.removal_curves(model, x, 0, 1 - right)
    baseline = random["insertion_auc"] - random["deletion_auc"]
    assert found["insertion_auc"] - found["deletion_auc"] - baseline >= trust.GAIN_MIN
    assert wrong["insertion_auc"] - wrong["deletion_auc"] - baseline < 0
    probability = model(x).softmax(-1)[0, 0]
    # both curves run between the image and its blurred canvas
    torch.testing.assert_close(found["deletion"][0], probability)
    canvas = model(trust.blurred(x)).softmax(-1)[0, 0]
    torch.testing.assert_close(found["deletion"][-1], canvas)
    torch.testing.assert_close(found["insertion"][0], canvas)
    torch.testing.assert_close(found["insertion"][-1], probability)


@pytest.mark.parametrize("name", ["lenet5_bn", "resnet20", "nin_small"])
def test_the_cascade_randomises_every_layer_once_from_the_top(name):
    from cnnzoo.visualize.layers import default_stages

    model = create_model(name).eval()
    x = torch.randn(1, *model.cfg.input_size)
    steps = trust.cascade_steps(model, x)
    paths = [path for _, group in steps for path in group]
    owners = {path for path, m in model.named_modules()
              if next(m.parameters(False), None) is not None}
    assert sorted(paths) == sorted(owners)
    stages = [stage for stage, _ in steps if stage != "output"]
    order = list(default_stages(model))
    assert stages == sorted(stages, key=order.index, reverse=True)
    assert steps[0][0] == ("output" if name != "nin_small" else "conv4")


def test_randomised_weights_keep_each_tensors_mean_and_spread_but_not_its_values():
    layer = nn.Linear(200, 100)
    before = layer.weight.detach().clone()
    trust.randomise(layer, torch.Generator().manual_seed(0))
    after = layer.weight.detach()
    assert abs(after.std() / before.std() - 1) < 0.02 and abs(after.mean() - before.mean()) < 1e-3
    assert abs(trust.rank_correlation(before, after)) < 0.05


@pytest.mark.parametrize(
    "change, trusted",
    [({}, True), ({"randomised_rho": 0.5}, False), ({"gain": 0.09}, False),
     ({"occlusion_rho": 0.19}, False), ({"occlusion_rho": None}, True), ({"flat": True}, False),
     ({"gain": 0.3, "gain_needed": 0.31}, False)],
)
def test_the_verdict_needs_every_check_at_its_stated_threshold(change, trusted):
    report = {"flat": False, "randomised_rho": trust.RANDOMISED_RHO_MAX - 0.01,
              "gain": trust.GAIN_MIN, "gain_needed": trust.GAIN_MIN,
              "occlusion_rho": trust.OCCLUSION_RHO_MIN} | change
    verdict = trust.judge(report)
    assert verdict["trust"] is trusted
    assert verdict["line"].startswith("trust: " if trusted else "do not trust: ")


def test_the_layer_trusted_on_most_images_is_chosen_then_the_larger_gain():
    def rows(*pairs):
        return [{"trust": t, "gain": g} for t, g in pairs]

    reports = {"C1": rows((True, 0.2), (False, 0.9)), "C3": rows((True, 0.3), (True, 0.3)),
               "S4": rows((True, 0.4), (True, 0.3))}
    assert trust.choose_cam_layer(reports) == "S4"
    assert trust.choose_cam_layer({k: reports[k] for k in ("C1", "C3")}) == "C3"
