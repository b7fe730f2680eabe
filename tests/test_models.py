"""Every registered model: shapes, gradients and input checks; the reference figures of the
papers."""

from __future__ import annotations

import ast
import functools
import inspect
import textwrap
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import cnnzoo
import cnnzoo.models
import reference
from cnnzoo.errors import ConfigError, InputShapeError, UnknownModelError
from cnnzoo.models.registry import get_builder, model_limits

ALL_MODELS = cnnzoo.list_models()


def trainable(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def meta_model(name: str, **kwargs) -> nn.Module:
    """``name`` built on the meta device: shapes without memory or initialisation (VGG-19 holds 143M
    weights)."""
    with torch.device("meta"):
        return cnnzoo.create_model(name, **kwargs)


@functools.cache
def built(name: str) -> nn.Module:
    """One instance per model for the whole module: building the 100M-parameter nets dominates
    otherwise."""
    torch.manual_seed(0)
    return cnnzoo.create_model(name)


@pytest.fixture(scope="module", autouse=True)
def free_built_models():
    """Drop the cached models (about 6 GB with the VGGs) when this module is done, for the modules
    after it."""
    yield
    built.cache_clear()


def logits_of(out) -> torch.Tensor:
    return out[0] if isinstance(out, tuple) else out


# Published figures: tests/reference.py names the source of each (the papers, torchvision's
# documentation).
PARAMS = {name: count for name,
          count in reference.IMAGENET_PARAMS.items() if not name.startswith("densenet")}
CIFAR_PARAMS = {name: count for name,
                count in reference.CIFAR_PARAMS.items() if name.startswith("resnet")}


@pytest.mark.parametrize("name, expected", sorted(PARAMS.items()))
def test_imagenet_parameter_counts(name, expected):
    assert trainable(meta_model(name, num_classes=1000, in_channels=3)) == expected


@pytest.mark.parametrize("name, expected", sorted(CIFAR_PARAMS.items()))
def test_cifar_resnet_parameter_counts(name, expected):
    assert trainable(meta_model(name)) == expected


def test_plain_nets_have_the_same_layers_as_resnets_minus_nothing():
    # Option A shortcuts are parameter-free, so the plain baselines have exactly the ResNets'
    # parameters.
    assert trainable(meta_model("plain56")) == CIFAR_PARAMS["resnet56"]
    plain = cnnzoo.create_model("plain20")
    assert all(
        block.shortcut is None
        for stage in (plain.layer1, plain.layer2, plain.layer3)
        for block in stage
    )


def test_d2l_simplified_alexnet_parameter_count():
    # The d2l book's AlexNet on 224×224 Fashion-MNIST: 1 channel, 10 classes.
    assert (
        trainable(meta_model("alexnet", in_channels=1, num_classes=10))
        == reference.D2L_ALEXNET_PARAMS
    )


def test_alexnet_2012_feature_map_sizes_and_groups():
    model = cnnzoo.create_model("alexnet_2012")
    sizes = []
    x = torch.zeros(1, 3, 227, 227)
    for layer in model.features:
        x = layer(x)
        if isinstance(layer, (nn.Conv2d, nn.MaxPool2d)):
            sizes.append(x.shape[-1])
    # conv1 55, pool 27, conv2 27, pool 13, conv3-5 13, pool 6
    assert sizes == reference.ALEXNET_2012_SIDES
    groups = [m.groups for m in model.features if isinstance(m, nn.Conv2d)]
    # conv3 is the only layer that crosses the two towers
    assert groups == reference.ALEXNET_2012_GROUPS


def test_alexnet_2012_initialisation_follows_the_paper():
    model = cnnzoo.create_model("alexnet_2012")
    layers = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    assert [float(m.bias.detach()[0]) for m in layers] == reference.ALEXNET_2012_BIASES
    big = layers[5].weight  # fc6: 37M samples of N(0, 0.01)
    assert (
        abs(big.mean().item()) < 1e-4
        and abs(big.std().item() - reference.ALEXNET_2012_WEIGHT_STD) < 1e-4
    )


def test_resnet_bottleneck_saves_parameters():
    # 256→64→64→256 bottleneck weights against two 3×3 convolutions on 256 maps (He et al., 2016).
    from cnnzoo.layers.residual import Bottleneck

    block = Bottleneck(256, 64, shortcut=None)
    conv_weights = sum(m.weight.numel() for m in block.modules() if isinstance(m, nn.Conv2d))
    assert conv_weights == reference.BOTTLENECK_256_WEIGHTS
    assert 2 * nn.Conv2d(256, 256, 3, bias=False).weight.numel() == reference.TWO_3X3_256_WEIGHTS


def test_vgg16_bn_small_width_scales_every_layer():
    model = cnnzoo.create_model("vgg16_bn_small", width=0.25)
    convs = [m.out_channels for m in model.features if isinstance(m, nn.Conv2d)]
    # configuration D (paper Table 1) without its last pool, every width quartered
    assert convs == [width // 4 for width in reference.VGG16_CONV_WIDTHS]
    assert [m.out_features for m in model.classifier if isinstance(m, nn.Linear)] == [128, 128, 10]
    assert model.eval()(torch.randn(2, 1, 28, 28)).shape == (2, 10)
    with pytest.raises(ValueError, match="width"):
        cnnzoo.create_model("vgg16_bn_small", width=-1)


# ---- every registered model ----------------------------------------------------------------------


def test_registry_lists_every_family():
    expected = {"mlp", "convnet", "lenet5_1998", "lenet5", "lenet5_bn", "alexnet_2012", "alexnet",
                "alexnet_small",
                "vgg11", "vgg16_bn", "vgg16_bn_small", "nin", "nin_small", "googlenet",
                "googlenet_small",
                "resnet18", "resnet152", "resnet20", "resnet110", "plain20", "plain110",
                "resnet18_small", "densenet121", "densenet201", "densenet_bc_100_k12"}
    assert expected <= set(ALL_MODELS)
    # natural order
    assert cnnzoo.list_models("resnet1*") == ["resnet18", "resnet18_small", "resnet101",
                                              "resnet110", "resnet152"]


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
            # a head sized for its input is rebuilt for the smallest side it can take
            net = (
                model
                if not cfg.fixed_size or side == cfg.input_size[1]
                else get_builder(name)(input_size=side)
            )
            out = net.eval()(torch.randn(1, channels, side, side))
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
    # The smallest input keeps the ImageNet models cheap; 2 images so BatchNorm has statistics to
    # take.
    side = max(cfg.min_size, 8) if not cfg.fixed_size else cfg.input_size[1]
    out = model(torch.randn(2, cfg.input_size[0], side, side))
    outputs = out if isinstance(out, tuple) else (out,)
    sum(o.square().mean() for o in outputs).backward()
    missing = [
        n
        for n, p in model.named_parameters()
        if p.requires_grad and (p.grad is None or not p.grad.abs().sum())
    ]
    # the cached model keeps no gradients (as many bytes again as its weights)
    model.zero_grad(set_to_none=True)
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
    last_scales = [
        block.conv2[1].weight for stage in (model.layer1, model.layer4) for block in stage
    ]
    assert all(not scale.any() for scale in last_scales)
    assert cnnzoo.create_model("resnet18_small").layer1[0].conv2[1].weight.all()


# ---- the builders' shared signature and declared limits ------------------------------------------


@pytest.mark.parametrize("name", ALL_MODELS)
def test_builder_signature_is_the_shared_one(name):
    builder = get_builder(name)
    definition = ast.parse(textwrap.dedent(inspect.getsource(builder))).body[0]
    assert definition.name == name, "written out under its own name"
    assert (
        len(definition.body) == 2
        and isinstance(definition.body[1], ast.Return)
        and "\n" not in builder.__doc__
    )
    parameters = list(inspect.signature(builder).parameters.values())
    assert [p.name for p in parameters[:3]] == ["num_classes", "in_channels", "input_size"]
    assert all(p.kind is p.KEYWORD_ONLY for p in parameters), ("keyword-only, with no *args or "
                                                               "**kwargs")
    assert all(p.default is not p.empty for p in parameters), "every option has its default"
    defaults = {p.name: p.default for p in parameters}
    limits = model_limits(name)
    assert limits.num_classes == defaults["num_classes"]
    assert limits.input_size == (defaults["in_channels"], defaults["input_size"],
                                 defaults["input_size"])


@pytest.mark.parametrize("name", ALL_MODELS)
def test_model_limits_agree_with_the_built_model(name):
    assert model_limits(name) == built(name).cfg


def test_model_limits_take_the_builders_options():
    assert model_limits("googlenet", aux_logits=False).min_size == 31
    assert model_limits("resnet50", input_size=64, num_classes=10).input_size == (3, 64, 64)
    assert model_limits("lenet5", input_size=32, in_channels=3).input_size == (3, 32, 32)
    with pytest.raises(UnknownModelError):
        model_limits("resnet81")


@pytest.mark.parametrize("name, side, small_variant", [("lenet5_1998", 32, "lenet5"),
                                                       ("alexnet_2012", 227, "alexnet_small")])
def test_fixed_networks_take_their_own_side_only(name, side, small_variant):
    assert model_limits(name, input_size=side).input_size[1:] == (side, side)
    for other in (side - 1, side + 1, 28):
        with pytest.raises(InputShapeError,
                           match=f"{name} takes {side}×{side} images only") as error:
            get_builder(name)(input_size=other)
        assert f"Use {small_variant}" in str(error.value) and "\n" not in str(error.value)


@pytest.mark.parametrize("name", ALL_MODELS)
def test_input_size_sets_the_declared_side_down_to_min_size(name):
    limits = model_limits(name)
    if limits.fixed_size:
        pytest.skip("its head is sized for input_size: the two tests below cover it")
    channels, smallest = limits.input_size[0], limits.min_size
    assert model_limits(name, input_size=smallest).input_size == (channels, smallest, smallest)
    assert model_limits(name, input_size=smallest + 5).input_size == (channels, smallest + 5,
                                                                      smallest + 5)
    with pytest.raises(InputShapeError, match=f"at least {smallest}×{smallest}"):
        model_limits(name, input_size=smallest - 1)


@pytest.mark.parametrize("name, size", [("lenet5", 11), ("alexnet", 64), ("alexnet_small", 14),
                                        ("convnet", 3), ("mlp", 0)])
def test_heads_sized_for_the_input_refuse_sides_they_would_shrink_to_nothing(name, size):
    with pytest.raises(InputShapeError, match="at least"):
        model_limits(name, input_size=size)
    assert model_limits(name, input_size=size + 1).input_size[1] == size + 1


@pytest.mark.parametrize("name, options", [
    ("lenet5_1998", {"num_classes": 5}), ("vgg16_bn_small", {"width": -1}),
                                           ("googlenet_small", {"width": 0}),
    ("nin_small", {"widths": (32, 64)}), ("convnet", {"activation": "sigmoid"}),
                                           ("convnet", {"hidden": 0}),
])
def test_option_errors_are_config_errors(name, options):
    with pytest.raises(ConfigError):
        model_limits(name, **options)


def test_models_do_not_import_the_inspector():
    for path in Path(cnnzoo.models.__file__).parent.glob("*.py"):
        assert "cnnzoo.inspect" not in path.read_text(), path.name


# ---- the training loss ---------------------------------------------------------------------------


def test_training_loss_is_float32_cross_entropy():
    model = built("lenet5")
    logits, targets = torch.randn(4, 10), torch.tensor([0, 3, 9, 3])
    torch.testing.assert_close(model.training_loss(logits, targets),
                               F.cross_entropy(logits, targets))
    smoothed = model.training_loss(logits, targets, label_smoothing=0.1)
    torch.testing.assert_close(smoothed, F.cross_entropy(logits, targets, label_smoothing=0.1))
    assert model.training_loss(logits.bfloat16(), targets).dtype == torch.float32
