"""The budget networks' frozen patch-whitening layer: what it computes, that it stays frozen, that
training fits it."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import cnnzoo
from cnnzoo.data.idx import read_idx
from cnnzoo.engine.build import make_optimizer
from cnnzoo.engine.config import TrainConfig
from cnnzoo.engine.run import load_run
from cnnzoo.engine.train import train
from cnnzoo.errors import ConfigError
from cnnzoo.models import budgetnet
from cnnzoo.models.budgetnet import patch_whitening


def response_covariance(images: torch.Tensor, filters: torch.Tensor) -> torch.Tensor:
    """The covariance of the filter responses over every k×k patch of ``images`` (valid positions
    only)."""
    responses = F.conv2d(images.double(), filters.double()).transpose(0, 1).flatten(1)
    responses = responses - responses.mean(1, keepdim=True)
    return responses @ responses.T / responses.shape[1]


def correlated_images(count: int = 300, side: int = 16) -> torch.Tensor:
    """Smooth random images: neighbouring pixels strongly correlated, as in photographs."""
    noise = torch.randn(count, 1, side + 4, side + 4, generator=torch.Generator().manual_seed(0))
    return F.avg_pool2d(noise, 5, stride=1) * 3 + 0.5


def test_whitening_filters_decorrelate_the_patches_they_were_fitted_to():
    images = correlated_images()
    raw = response_covariance(images, torch.eye(9).reshape(9, 1, 3, 3))
    # neighbouring pixels are strongly correlated before whitening
    assert raw[0, 1] / raw[0, 0] > 0.5
    whitened = response_covariance(images, patch_whitening(images, 3, eps=1e-9))
    assert torch.allclose(whitened, torch.eye(9, dtype=whitened.dtype), atol=1e-3)


def test_the_covariance_is_the_same_however_many_images_are_unfolded_at_once(monkeypatch):
    images = correlated_images(50, 12)
    whole = budgetnet.patch_covariance(images, 3)
    # one and a half images' patches: 1 image a time
    monkeypatch.setattr(budgetnet, "PATCHES_PER_CHUNK", 150)
    assert torch.allclose(budgetnet.patch_covariance(images, 3), whole, atol=1e-10)
    patches = F.unfold(images.double(), 3).transpose(1, 2).reshape(-1, 9)
    assert torch.allclose(whole, torch.cov(patches.T, correction=0), atol=1e-10)


def test_the_first_whitening_filter_carries_the_most_variance_and_two_channel_images_work():
    images = torch.cat([correlated_images(), correlated_images().flip(-1) * 2], dim=1)
    filters = patch_whitening(images, 2, eps=0.0)
    assert filters.shape == (8, 2, 2, 2)
    # unit output variance means |filter| = 1/sqrt(eigenvalue): the largest eigenvalue gives the
    # shortest filter
    norms = filters.flatten(1).norm(dim=1)
    assert torch.all(norms[:-1] <= norms[1:] + 1e-6)


def test_the_whitening_layer_is_fitted_with_both_signs_and_never_trained():
    model = cnnzoo.create_model("budgetnet_s")
    images = correlated_images(200, 28)
    model.fit_to_data(images)
    layer = model.features.whitening
    half = layer.out_channels // 2
    assert torch.equal(layer.weight[:half], -layer.weight[half:])
    before = layer.weight.clone()
    optimizer = make_optimizer(model, TrainConfig(model="budgetnet_s", lr=0.5))
    for _ in range(2):
        optimizer.zero_grad()
        F.cross_entropy(model(images[:32]), torch.arange(32) % 10).backward()
        optimizer.step()
    assert layer.weight.grad is None and torch.equal(layer.weight, before)
    assert not any(p is layer.weight for group in optimizer.param_groups for p in group["params"])


def test_training_fits_the_whitening_to_the_normalised_training_images(tiny_mnist_dir, tmp_path):
    config = TrainConfig(model="budgetnet_s", dataset="mnist", data_dir=str(tiny_mnist_dir),
                         epochs=1,
                         batch_size=50, lr=0.2, out=str(tmp_path / "run"), precision="fp32",
                         channels_last=False, compile="off")
    summary = train(config)
    loaded = load_run(tmp_path / "run")
    filters = loaded.model.features.whitening.weight.detach()
    # the tiny set has 600 training images, fewer than the engine fits to, so the fit saw all of
    # them
    images = read_idx(tiny_mnist_dir / "train-images-idx3-ubyte.gz")
    mean, std = loaded.input.mean[0], loaded.input.std[0]
    normalised = (torch.as_tensor(images, dtype=torch.float32)[:, None] / 255 - mean) / std
    covariance = response_covariance(normalised, filters[:9])
    assert torch.allclose(covariance.diagonal(), torch.ones(9, dtype=covariance.dtype), atol=0.05)
    assert summary["test_top1"] > 0.5


def test_depths_add_width_keeping_convolutions_to_a_stage_and_are_checked():
    plain = cnnzoo.create_model("budgetnet_l")
    deeper = cnnzoo.create_model("budgetnet_l", depths=(3, 1, 2))
    count = lambda model: sum(p.numel() for p in model.parameters())  # noqa: E731
    # each added convolution: a 3×3 bank of width², no bias, and its BatchNorm's scale and shift
    added = 2 * (64 * 64 * 9 + 2 * 64) + (256 * 256 * 9 + 2 * 256)
    assert count(deeper) - count(plain) == added
    assert [name for name, _ in deeper.features.stage1.named_children()] == [
        "conv", "bn", "relu", "conv2", "bn2", "relu2", "conv3", "bn3", "relu3"]
    features = {}
    deeper.features.stage1.conv3.register_forward_hook(
        lambda module, inputs, output: features.update(stage1=output.shape))
    assert deeper(torch.randn(2, 1, 28, 28)).shape == (2, 10)
    assert features["stage1"] == (2, 64, 14, 14)  # at the stage's resolution
    with pytest.raises(ConfigError, match=r"budgetnet_l: depths must be three positive whole"):
        cnnzoo.create_model("budgetnet_l", depths=(2, 0, 1))


def test_full_resolution_runs_stage_one_first_convolution_before_the_first_pool():
    plain = cnnzoo.create_model("budgetnet_l", depths=(2, 1, 1))
    full = cnnzoo.create_model("budgetnet_l", depths=(2, 1, 1), full_resolution=True)
    count = lambda model: sum(p.numel() for p in model.parameters())  # noqa: E731
    assert count(full) == count(plain)  # the same layers, in another order
    assert "pool" not in dict(full.features.named_children())
    assert [name for name, _ in full.features.stage1.named_children()] == [
        "conv", "pool", "bn", "relu", "conv2", "bn2", "relu2"]
    shapes = {}
    for name in ("conv", "conv2"):
        getattr(full.features.stage1, name).register_forward_hook(
            lambda module, inputs, output, name=name: shapes.update({name: output.shape}))
    assert full(torch.randn(2, 1, 28, 28)).shape == (2, 10)
    assert shapes == {"conv": (2, 64, 28, 28), "conv2": (2, 64, 14, 14)}
