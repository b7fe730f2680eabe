"""Every registered model: shapes, gradients and input checks; the reference figures of the papers."""

from __future__ import annotations

import functools

import pytest
import torch
from torch import nn

import cnnzoo
from cnnzoo.models.base import InputShapeError
from cnnzoo.models.registry import UnknownModelError

ALL_MODELS = cnnzoo.list_models()


def trainable(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


@functools.cache
def built(name: str) -> nn.Module:
    """One instance per model for the whole module: building the 100M-parameter nets dominates otherwise."""
    torch.manual_seed(0)
    return cnnzoo.create_model(name)


def logits_of(out) -> torch.Tensor:
    return out[0] if isinstance(out, tuple) else out


# Trainable parameters, 3-channel input, 1000 classes. Source: ../shared/REFERENCE.md, which takes the ImageNet
# counts from torchvision's model documentation and the CIFAR ResNets from He et al. (2016), Table 6.
PARAMS = {
    "alexnet_2012": 60_965_224,
    "vgg11": 132_863_336, "vgg11_bn": 132_868_840, "vgg13": 133_047_848, "vgg13_bn": 133_053_736,
    "vgg16": 138_357_544, "vgg16_bn": 138_365_992, "vgg19": 143_667_240, "vgg19_bn": 143_678_248,
    "resnet18": 11_689_512, "resnet34": 21_797_672, "resnet50": 25_557_032, "resnet101": 44_549_160,
    "resnet152": 60_192_808,
}
# CIFAR nets: 3×32×32 input, 10 classes (these are the builders' defaults).
CIFAR_PARAMS = {"resnet20": 269_722, "resnet32": 464_154, "resnet44": 658_586, "resnet56": 853_018,
                "resnet110": 1_727_962}


@pytest.mark.parametrize("name, expected", sorted(PARAMS.items()))
def test_imagenet_parameter_counts(name, expected):
    assert trainable(cnnzoo.create_model(name, num_classes=1000, in_channels=3)) == expected


@pytest.mark.parametrize("name, expected", sorted(CIFAR_PARAMS.items()))
def test_cifar_resnet_parameter_counts(name, expected):
    assert trainable(cnnzoo.create_model(name)) == expected


def test_plain_nets_have_the_same_layers_as_resnets_minus_nothing():
    # Option A shortcuts are parameter-free, so the plain baselines have exactly the ResNets' parameters.
    assert trainable(cnnzoo.create_model("plain56")) == CIFAR_PARAMS["resnet56"]
    plain = cnnzoo.create_model("plain20")
    assert all(block.shortcut is None for stage in (plain.layer1, plain.layer2, plain.layer3) for block in stage)


def test_d2l_simplified_alexnet_parameter_count():
    # The d2l book's AlexNet on 224×224 Fashion-MNIST: 1 channel, 10 classes (REFERENCE.md).
    assert trainable(cnnzoo.create_model("alexnet", in_channels=1, num_classes=10)) == 46_764_746


def test_alexnet_2012_feature_map_sizes_and_groups():
    model = cnnzoo.create_model("alexnet_2012")
    sizes = []
    x = torch.zeros(1, 3, 227, 227)
    for layer in model.features:
        x = layer(x)
        if isinstance(layer, (nn.Conv2d, nn.MaxPool2d)):
            sizes.append(x.shape[-1])
    # conv1 55, pool 27, conv2 27, pool 13, conv3-5 13, pool 6 (the paper's Fig. 2)
    assert sizes == [55, 27, 27, 13, 13, 13, 13, 6]
    groups = [m.groups for m in model.features if isinstance(m, nn.Conv2d)]
    assert groups == [1, 2, 1, 2, 2]  # conv3 is the only layer that crosses the two towers


def test_alexnet_2012_initialisation_follows_the_paper():
    model = cnnzoo.create_model("alexnet_2012")
    layers = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    assert [float(m.bias.detach()[0]) for m in layers] == [0, 1, 0, 1, 1, 1, 1, 0]
    big = layers[5].weight  # fc6: 37M samples of N(0, 0.01)
    assert abs(big.mean().item()) < 1e-4 and abs(big.std().item() - 0.01) < 1e-4


def test_resnet_bottleneck_saves_parameters():
    # REFERENCE.md: 256→64→64→256 bottleneck weights 69,632 vs 1,179,648 for two 3×3×256 convolutions.
    from cnnzoo.layers.residual import Bottleneck

    block = Bottleneck(256, 64, shortcut=None)
    conv_weights = sum(m.weight.numel() for m in block.modules() if isinstance(m, nn.Conv2d))
    assert conv_weights == 69_632
    assert 2 * nn.Conv2d(256, 256, 3, bias=False).weight.numel() == 1_179_648


def test_vgg16_bn_small_width_scales_every_layer():
    model = cnnzoo.create_model("vgg16_bn_small", width=0.25)
    convs = [m.out_channels for m in model.features if isinstance(m, nn.Conv2d)]
    # configuration D (paper Table 1) without its last pool, every width quartered
    assert convs == [16, 16, 32, 32, 64, 64, 64, 128, 128, 128, 128, 128, 128]
    assert [m.out_features for m in model.classifier if isinstance(m, nn.Linear)] == [128, 128, 10]
    assert model.eval()(torch.randn(2, 1, 28, 28)).shape == (2, 10)
    with pytest.raises(ValueError, match="width"):
        cnnzoo.create_model("vgg16_bn_small", width=-1)


# ---- every registered model ---------------------------------------------------------------------------------


def test_registry_lists_every_family():
    expected = {"mlp", "convnet", "lenet5_1998", "lenet5", "lenet5_bn", "alexnet_2012", "alexnet", "alexnet_small",
                "vgg11", "vgg16_bn", "vgg16_bn_small", "nin", "nin_small", "googlenet", "googlenet_small",
                "resnet18", "resnet152", "resnet20", "resnet110", "plain20", "plain110", "resnet18_small",
                "densenet121", "densenet201", "densenet_bc_100_k12"}
    assert expected <= set(ALL_MODELS)
    assert cnnzoo.list_models("resnet1*") == ["resnet101", "resnet110", "resnet152", "resnet18", "resnet18_small"]


def test_unknown_model_suggests_close_names():
    with pytest.raises(UnknownModelError, match="Did you mean resnet18"):
        cnnzoo.create_model("resnet81")


@pytest.mark.parametrize("name", ALL_MODELS)
def test_forward_shape_at_default_and_smallest_input(name):
    model = built(name).eval()
    cfg = model.cfg
    channels = cfg.input_size[0]
    with torch.no_grad():
        for side in {cfg.input_size[1], cfg.min_size}:
            out = model(torch.randn(1, channels, side, side))
            assert out.shape == (1, cfg.num_classes), (name, side)
            assert torch.isfinite(out).all(), (name, side)


@pytest.mark.parametrize("name", ALL_MODELS)
def test_inputs_it_cannot_take_raise_a_clear_error(name):
    model = built(name).eval()
    cfg = model.cfg
    channels, side = cfg.input_size[0], cfg.min_size
    with pytest.raises(InputShapeError, match=f"{channels}-channel"):
        model(torch.zeros(1, channels + 1, side, side))
    if side > 1:
        with pytest.raises(InputShapeError, match=name):
            model(torch.zeros(1, channels, side - 1, side - 1))


@pytest.mark.parametrize("name", ALL_MODELS)
def test_backward_reaches_every_trainable_parameter(name):
    torch.manual_seed(0)
    model = built(name).train()
    model.zero_grad(set_to_none=True)
    cfg = model.cfg
    # The smallest input keeps the ImageNet models cheap; 2 images so BatchNorm has statistics to take.
    side = max(cfg.min_size, 8) if not cfg.fixed_size else cfg.input_size[1]
    out = model(torch.randn(2, cfg.input_size[0], side, side))
    outputs = out if isinstance(out, tuple) else (out,)
    sum(o.square().mean() for o in outputs).backward()
    missing = [n for n, p in model.named_parameters() if p.requires_grad and (p.grad is None or not p.grad.abs().sum())]
    assert not missing, f"{name}: no gradient reaches {missing[:5]}"


@pytest.mark.parametrize("name", ALL_MODELS)
def test_every_model_shares_the_feature_and_head_surface(name):
    model = built(name).eval()
    cfg = model.cfg
    side = cfg.input_size[1] if cfg.fixed_size else max(cfg.min_size, 32)
    x = torch.randn(1, cfg.input_size[0], side, side)
    with torch.no_grad():
        features = model.forward_features(x)
        assert torch.allclose(model.forward_head(features), logits_of(model(x)), atol=1e-5)
    assert len(cfg.mean) == len(cfg.std) == cfg.input_size[0]
    assert cfg.name == name


def test_zero_init_residual_starts_each_branch_at_zero():
    model = cnnzoo.create_model("resnet18_small", zero_init_residual=True)
    last_scales = [block.conv2[1].weight for stage in (model.layer1, model.layer4) for block in stage]
    assert all(not scale.any() for scale in last_scales)
    assert cnnzoo.create_model("resnet18_small").layer1[0].conv2[1].weight.all()
