"""NiN, GoogLeNet and DenseNet: parameter counts, structure, shapes, exact minimum sizes, and the
paper's LRN.

Big models are built once per test session and run at batch 1, mostly at their minimum size.
"""

from __future__ import annotations

import functools
import inspect as pyinspect
import re

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import cnnzoo.models.base as base_module
import cnnzoo.models.densenet as densenet_module
import cnnzoo.models.googlenet as googlenet_module
import cnnzoo.models.nin as nin_module
import reference
from cnnzoo.errors import InputShapeError
from cnnzoo.layers.inception import Inception, InceptionSpec
from cnnzoo.layers.lrn import LocalResponseNorm2d
from cnnzoo.models.googlenet import GoogLeNetOutputs
from cnnzoo.models.registry import create_model, get_builder, list_models

# Trainable parameters with 3-channel input and 1000 classes unless the kwargs say otherwise; the
# figures and their sources are in tests/reference.py.
#   model                  kwargs                   params
KNOWN_PARAMS = [
    ("densenet121",         {},                      reference.IMAGENET_PARAMS["densenet121"]),
    ("densenet161",         {},                      reference.IMAGENET_PARAMS["densenet161"]),
    ("densenet169",         {},                      reference.IMAGENET_PARAMS["densenet169"]),
    ("densenet201",         {},                      reference.IMAGENET_PARAMS["densenet201"]),
    # 10 classes
    ("densenet_bc_100_k12", {},                      reference.CIFAR_PARAMS["densenet_bc_100_k12"]),
    ("googlenet",           {"aux_logits": False},
     reference.GOOGLENET_PARAMS["without auxiliary heads"]),
    ("googlenet",           {"aux_logits": True},
     reference.GOOGLENET_PARAMS["with auxiliary heads"]),
]

# Smallest square side (derived in each module; test_min_size_is_not_overcautious checks it against
# PyTorch).
#   model kwargs min default input feature map at default input
SIZES = [
    ("nin",             {},                      67,   (3, 224, 224),    (1000, 5, 5)),
    ("nin_small",       {},                      7,    (1, 28, 28),      (10, 6, 6)),
    ("googlenet",       {"aux_logits": True},    79,   (3, 224, 224),    (1024, 7, 7)),
    ("googlenet",       {"aux_logits": False},   31,   (3, 224, 224),    (1024, 7, 7)),
    ("googlenet_small", {"aux_logits": True},    12,   (1, 28, 28),      (1024, 3, 3)),
    ("googlenet_small", {"aux_logits": False},   8,    (1, 28, 28),      (1024, 3, 3)),
    ("densenet121",     {},                      29,   (3, 224, 224),    (1024, 7, 7)),
    ("densenet161",     {},                      29,   (3, 224, 224),    (2208, 7, 7)),
    ("densenet169",     {},                      29,   (3, 224, 224),    (1664, 7, 7)),
    ("densenet201",     {},                      29,   (3, 224, 224),    (1920, 7, 7)),
    ("densenet_bc_100_k12", {},                  4,    (3, 32, 32),      (342, 8, 8)),
    ("densenet_bc_40_k12", {},                   4,    (3, 32, 32),      (132, 8, 8)),
]
# Full-size forwards are costly on a shared CPU: only these run at their default input.
# (GoogLeNet's at 224 is test_googlenet_module_channels_and_sizes_at_224.)
RUN_AT_DEFAULT = {"nin", "nin_small", "googlenet_small-aux_logits=True", "densenet_bc_100_k12"}

NAMES = ["nin", "nin_small", "googlenet", "googlenet_small", "densenet121", "densenet161",
         "densenet169", "densenet201", "densenet_bc_100_k12", "densenet_bc_40_k12"]


@functools.cache
def _build(name: str, kw_items: tuple) -> nn.Module:
    torch.manual_seed(0)
    return create_model(name, **dict(kw_items))


@pytest.fixture(scope="module", autouse=True)
def free_built_models():
    yield
    _build.cache_clear()


def build(name: str, **kw) -> nn.Module:
    return _build(name, tuple(sorted(kw.items())))


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def _id(case) -> str:
    name, kw = case[0], case[1]
    return name + "".join(f"-{k}={v}" for k, v in kw.items())


# --- registry and conventions ---------------------------------------------------------------------

def test_all_registered():
    assert set(NAMES) <= set(list_models())


@pytest.mark.parametrize("name", NAMES)
def test_builders_are_keyword_only_and_configs_are_complete(name):
    with pytest.raises(TypeError):
        get_builder(name)(10)
    cfg = build(name).cfg
    assert cfg.name == name and cfg.paper and not cfg.fixed_size
    assert (cfg.small_variant is None) == (
        name.endswith("_small") or name.startswith("densenet_bc")
    )
    if cfg.small_variant:
        assert cfg.small_variant in list_models()


@pytest.mark.parametrize("module", [nin_module, googlenet_module, densenet_module])
def test_docstrings_name_paper_and_deviations(module):
    assert "Deviations:" in module.__doc__
    year = re.search(r"\b(19|20)\d\d\b", module.PAPER).group()
    # authors, year, title first
    assert year in module.__doc__.splitlines()[0] + module.__doc__.splitlines()[1]


# --- parameter counts -----------------------------------------------------------------------------

@pytest.mark.parametrize("name, kw, expected", KNOWN_PARAMS, ids=[_id(c) for c in KNOWN_PARAMS])
def test_parameter_counts(name, kw, expected):
    num_classes = 10 if name == "densenet_bc_100_k12" else 1000
    with torch.device("meta"):  # shapes only: no memory for the weights, no initialisation
        model = get_builder(name)(**kw)
    assert model.cfg.num_classes == num_classes and model.cfg.input_size[0] == 3
    assert n_params(model) == expected


# --- GoogLeNet ------------------------------------------------------------------------------------

def test_inception_table_uses_the_paper_columns():
    assert [f for f in InceptionSpec.__dataclass_fields__] == [
        "n1x1", "n3x3_reduce", "n3x3", "n5x5_reduce", "n5x5", "pool_proj"]
    model = build("googlenet", aux_logits=False)
    for name, (channels, _) in reference.GOOGLENET_MODULES.items():
        module = getattr(model, name)
        assert isinstance(module, Inception) and module.out_channels == channels
        assert module.branch5x5.conv.conv.kernel_size == (5, 5)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert all(c.bias is not None for c in convs)
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())
    assert sum(isinstance(m, LocalResponseNorm2d) for m in model.modules()) == 2


def test_googlenet_module_channels_and_sizes_at_224():
    model = build("googlenet", aux_logits=False).eval()
    seen: dict[str, tuple[int, int, int]] = {}
    hooks = [getattr(model, name).register_forward_hook(
        lambda mod, inp, out, name=name: seen.__setitem__(name, tuple(out.shape[1:])))
        for name in reference.GOOGLENET_MODULES]
    try:
        with torch.no_grad():
            model(torch.randn(1, 3, 224, 224))
    finally:
        for h in hooks:
            h.remove()
    assert seen == {name: (c, s, s) for name, (c, s) in reference.GOOGLENET_MODULES.items()}


@pytest.mark.parametrize("name, side", [("googlenet", 79), ("googlenet_small", 12),
                                        ("googlenet_small", 32)])
def test_aux_outputs_in_training_mode_only(name, side):
    model = build(name)
    x = torch.randn(1, model.cfg.input_size[0], side, side)
    classes = model.cfg.num_classes
    with torch.no_grad():
        out = model.train()(x)
        assert isinstance(out, GoogLeNetOutputs)
        assert [tuple(t.shape) for t in out] == [(1, classes)] * 3
        out = model.eval()(x)
        assert isinstance(out, torch.Tensor) and out.shape == (1, classes)
        no_aux = build(name, aux_logits=False).train()
        assert no_aux.aux1 is None and no_aux.aux2 is None
        out = no_aux(
            torch.randn(1, model.cfg.input_size[0], 12, 12) if name == "googlenet_small" else x
        )
        assert isinstance(out, torch.Tensor) and out.shape == (1, classes)
    no_aux.eval()


def test_training_loss_adds_the_auxiliary_losses_weighted():
    torch.manual_seed(0)
    model = create_model("googlenet_small", width=0.25).train()
    x, targets = torch.randn(4, 1, 28, 28), torch.tensor([0, 3, 5, 9])
    outputs = model(x)
    main, aux1, aux2 = (F.cross_entropy(logits, targets) for logits in outputs)
    expected = main + reference.GOOGLENET_AUX_WEIGHT * (aux1 + aux2)
    torch.testing.assert_close(model.training_loss(outputs, targets), expected)
    smoothed = [F.cross_entropy(logits, targets, label_smoothing=0.1) for logits in outputs]
    torch.testing.assert_close(
        model.training_loss(outputs, targets, label_smoothing=0.1),
        smoothed[0] + reference.GOOGLENET_AUX_WEIGHT * (smoothed[1] + smoothed[2]),
    )
    with torch.no_grad():  # in evaluation the heads are gone and the loss is the main cross-entropy
        logits = model.eval()(x)
        torch.testing.assert_close(model.training_loss(logits, targets),
                                   F.cross_entropy(logits, targets))


def test_auxiliary_losses_reach_the_early_inception_blocks():
    # One training-mode forward; the gradients of 3a's weights with the auxiliary terms and without
    # them differ, by exactly 0.3 times the auxiliary heads' own gradient.
    torch.manual_seed(0)
    model = create_model("googlenet_small", width=0.25).train()
    x, targets = torch.randn(4, 1, 28, 28), torch.tensor([0, 3, 5, 9])
    outputs = model(x)
    weight = model.inception3a.branch3x3.conv.conv.weight
    with_aux, = torch.autograd.grad(model.training_loss(outputs, targets), weight,
                                    retain_graph=True)
    main_only, = torch.autograd.grad(model.training_loss(outputs.logits, targets), weight,
                                     retain_graph=True)
    (aux_only,) = torch.autograd.grad(
        F.cross_entropy(outputs.aux1, targets) + F.cross_entropy(outputs.aux2, targets), weight
    )
    assert aux_only.abs().sum() > 0 and not torch.allclose(with_aux, main_only)
    torch.testing.assert_close(with_aux, main_only + reference.GOOGLENET_AUX_WEIGHT * aux_only)


def test_aux_head_is_the_papers_at_224():
    head = build("googlenet").aux1
    assert (head.pool.kernel_size, head.pool.stride) == (5, 3)
    assert head.conv.conv.out_channels == 128 and head.fc1.in_features == 128 * 4 * 4
    assert head.fc1.out_features == 1024 and head.dropout.p == 0.7
    x = torch.randn(1, 512, 14, 14)
    # the adaptive pool is the identity here
    assert torch.equal(head.resize(head.pool(x)), head.pool(x))


# --- DenseNet -------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(reference.DENSENET_DEPTH))
def test_densenet_depth_is_its_name(name):
    layers = [m for m in build(name).modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    assert len(layers) == reference.DENSENET_DEPTH[name]


def test_densenet_bc_100_k12_structure():
    f = build("densenet_bc_100_k12").features
    names = [n for n, _ in f.named_children()]
    # The paper's CIFAR stem is one conv: no BN/ReLU/pool before the first dense layer's own
    # BN-ReLU.
    assert names == ["conv0", "denseblock1", "transition1", "denseblock2", "transition2",
                     "denseblock3", "norm_final", "relu_final"]
    assert f.conv0.kernel_size == (3, 3) and f.conv0.out_channels == 24
    assert [len(list(getattr(f, f"denseblock{i}").children())) for i in (1, 2, 3)] == [16, 16, 16]
    assert [f.denseblock1.out_channels, f.transition1.out_channels, f.denseblock2.out_channels,
            f.transition2.out_channels, f.denseblock3.out_channels] == [216, 108, 300, 150, 342]
    layer = f.denseblock2.denselayer1
    assert (layer.conv1.in_channels, layer.conv1.out_channels, layer.conv2.out_channels) == (
        108,
        48,
        12,
    )


def test_densenet_bc_40_k12_structure():
    # 24 stem maps + 6 layers × k=12 = 96, halved to 48; 48 + 72 = 120 -> 60; 60 + 72 = 132 (θ =
    # 0.5)
    f = build("densenet_bc_40_k12").features
    assert [len(list(getattr(f, f"denseblock{i}").children())) for i in (1, 2, 3)] == [6, 6, 6]
    assert [f.denseblock1.out_channels, f.transition1.out_channels, f.denseblock2.out_channels,
            f.transition2.out_channels, f.denseblock3.out_channels] == [96, 48, 120, 60, 132]


# --- width options (CPU-sized members of each family) ---------------------------------------------

def test_googlenet_width_scales_every_table_row():
    model = create_model("googlenet_small", width=0.25)
    # 3a at width 1 is 64, 96, 128, 16, 32, 32 (paper Table 1); a quarter, rounded: 16, 24, 32, 4,
    # 8, 8
    assert build("googlenet_small").inception3a.spec == InceptionSpec(*reference.GOOGLENET_3A)
    assert model.inception3a.spec == InceptionSpec(16, 24, 32, 4, 8, 8)
    assert model.inception3a.branch1x1.conv.in_channels == 48  # the stem's 192 maps, quartered
    assert model.aux1.conv.conv.out_channels == 32 and model.aux1.fc1.out_features == 256
    assert model.eval()(torch.randn(2, 1, 28, 28)).shape == (2, 10)
    assert model.forward_features(torch.randn(1, 1, 28, 28)).shape == (1, 256, 3, 3)  # 5b: 1024 / 4
    with pytest.raises(ValueError, match="width"):
        create_model("googlenet_small", width=0)


def test_nin_widths_and_batch_norm():
    plain = create_model("nin_small")
    narrow = create_model("nin_small", widths=(32, 64, 64), batch_norm=True)
    widths = [block.conv.out_channels for name,
              block in narrow.features.named_children() if name.startswith("block")]
    assert widths == [32, 64, 64, 10]
    assert sum(isinstance(m, nn.BatchNorm2d) for m in narrow.modules()) == 12  # 4 blocks × 3 convs
    assert not any(isinstance(m, nn.BatchNorm2d) for m in plain.modules())
    # without batch norm the module names are the ones checkpoints already use
    assert [n for n, _ in plain.features.block1.named_children()] == ["conv", "relu", "cccp1",
                                                                      "relu1", "cccp2",
                                                                       "relu2"]
    assert narrow.eval()(torch.randn(2, 1, 28, 28)).shape == (2, 10)
    with pytest.raises(ValueError, match="3 positive channel counts"):
        create_model("nin_small", widths=(32, 64))


# --- shapes and sizes -----------------------------------------------------------------------------

@pytest.mark.parametrize("name, kw, min_size, input_size, feature_shape", SIZES,
                         ids=[_id(c) for c in SIZES])
def test_forward_shapes(name, kw, min_size, input_size, feature_shape):
    model = build(name, **kw).eval()
    assert model.cfg.input_size == input_size and model.cfg.min_size == min_size
    classes = model.cfg.num_classes
    with torch.no_grad():
        x = torch.randn(1, input_size[0], min_size, min_size)
        features = model.forward_features(x)
        assert features.shape[:2] == (1, feature_shape[0])
        logits = model(x)
        assert logits.shape == (1, classes)
        assert torch.allclose(logits, model.forward_head(features))
        if _id((name, kw)) in RUN_AT_DEFAULT:
            features = model.forward_features(torch.randn(1, *input_size))
            assert tuple(features.shape[1:]) == feature_shape
            assert model.forward_head(features).shape == (1, classes)


@pytest.mark.parametrize("name, kw, min_size, input_size, feature_shape", SIZES,
                         ids=[_id(c) for c in SIZES])
def test_one_below_min_size_is_refused(name, kw, min_size, input_size, feature_shape):
    # (That min_size itself works is test_forward_shapes, and test_aux_outputs_in_training_mode_only
    # for the auxiliary heads' larger minimum.)
    model = build(name, **kw).train(kw.get("aux_logits", False))
    with pytest.raises(InputShapeError, match=f"at least {min_size}×{min_size}"):
        model(torch.randn(1, input_size[0], min_size - 1, min_size - 1))
    model.eval()


# DenseNet-161/169/201 share densenet121's spatial path (stem, three transitions), so it speaks for
# them.
EXACTNESS_CASES = [c for c in SIZES if c[0] not in ("densenet161", "densenet169", "densenet201")]


@pytest.mark.parametrize("name, kw, min_size, input_size, feature_shape", EXACTNESS_CASES,
                         ids=[_id(c) for c in EXACTNESS_CASES])
def test_min_size_is_not_overcautious(name, kw, min_size, input_size, feature_shape, monkeypatch):
    # With the input check switched off, PyTorch itself fails one pixel below min_size.
    monkeypatch.setattr(base_module, "check_input", lambda cfg, x: None)
    monkeypatch.setattr(googlenet_module, "check_input", lambda cfg, x: None)
    # BN models stay in eval: 1×1 maps, batch 1
    model = build(name, **kw).train(kw.get("aux_logits", False))
    with torch.no_grad(), pytest.raises(RuntimeError, match="too small|Kernel size"):
        model(torch.randn(1, input_size[0], min_size - 1, min_size - 1))
    model.eval()


def test_input_size_option_and_its_bounds():
    assert create_model("nin_small", input_size=32).cfg.input_size == (1, 32, 32)
    assert create_model("googlenet_small", in_channels=3, input_size=32).cfg.input_size == (
        3,
        32,
        32,
    )
    with pytest.raises(InputShapeError, match="at least 4×4"):
        create_model("densenet_bc_100_k12", input_size=3)
    with pytest.raises(InputShapeError, match="aux_logits=False allows 8"):
        create_model("googlenet_small", input_size=10)  # its aux heads need 12
    assert create_model("googlenet_small", input_size=10, aux_logits=False).cfg.min_size == 8


# --- LRN ------------------------------------------------------------------------------------------

def lrn_by_the_formula(
    a: torch.Tensor, n: int, alpha: float, beta: float, k: float
) -> torch.Tensor:
    """b_i = a_i / (k + α Σ_{j=max(0, i-n/2)}^{min(N-1, i+n/2)} a_j²)^β, one channel at a time (odd
    n)."""
    channels = a.shape[1]
    b = torch.empty_like(a)
    for i in range(channels):
        lo, hi = max(0, i - n // 2), min(channels - 1, i + n // 2)
        b[:, i] = a[:, i] / (k + alpha * (a[:, lo:hi + 1] ** 2).sum(dim=1)) ** beta
    return b


@pytest.mark.parametrize("size, alpha, beta, k", [(5, 1e-4, 0.75, 2.0), (3, 0.1, 0.5, 1.0),
                                                  (5, 0.05, 0.75, 2.0)])
def test_lrn_is_the_papers_formula(size, alpha, beta, k):
    torch.manual_seed(0)
    a = torch.randn(2, 9, 4, 5, dtype=torch.float64) * 10
    expected = lrn_by_the_formula(a, size, alpha, beta, k)
    got = LocalResponseNorm2d(size=size, alpha=alpha, beta=beta, k=k)(a)
    torch.testing.assert_close(got, expected)
    # PyTorch's own layer with the same α normalises n times less: the wrapper is not a no-op.
    assert not torch.allclose(nn.LocalResponseNorm(size, alpha, beta, k)(a), expected)


@pytest.mark.parametrize("size, beta", [(5, 0.75), (3, 0.5)])
def test_lrn_gradient_is_the_formulas(size, beta):
    # The layer's backward is written by hand; autograd through the per-channel formula is the
    # reference, on a channels-last input as the engine feeds it.
    torch.manual_seed(1)
    a = (torch.randn(2, 9, 4, 5, dtype=torch.float64) * 10).contiguous(
        memory_format=torch.channels_last
    )
    grad = torch.randn(2, 9, 4, 5, dtype=torch.float64)
    expected_input = a.clone().requires_grad_()
    lrn_by_the_formula(expected_input, size, 0.05, beta, 2.0).backward(grad)
    got_input = a.clone().requires_grad_()
    LocalResponseNorm2d(size=size, alpha=0.05, beta=beta, k=2.0)(got_input).backward(grad)
    torch.testing.assert_close(got_input.grad, expected_input.grad)


def test_lrn_even_window_passes_gradcheck():
    # an even n reaches one channel further back than forward, so the window matrix is not symmetric
    a = torch.randn(2, 7, 3, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(LocalResponseNorm2d(size=4, alpha=0.1, beta=0.75, k=2.0), (a,))


def test_lrn_even_window_matches_pytorchs_layer():
    # PyTorch's layer averages the n squares (α / n) and places an even window as this one does
    a = torch.randn(2, 8, 3, 3, dtype=torch.float64) * 10
    expected = nn.LocalResponseNorm(4, alpha=4 * 0.05, beta=0.75, k=2.0)(a)
    torch.testing.assert_close(LocalResponseNorm2d(size=4, alpha=0.05, beta=0.75, k=2.0)(a),
                               expected)


def test_lrn_computes_in_fp32_under_bf16_autocast():
    # in bf16, 2 + 1e-4·S cannot be told from 2 below S ≈ 78; the layer must still normalise large
    # activations
    torch.manual_seed(2)
    a = torch.randn(2, 16, 4, 4) * 30
    expected = LocalResponseNorm2d()(a)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = LocalResponseNorm2d()(a.bfloat16())
    assert got.dtype == torch.bfloat16
    torch.testing.assert_close(got.float(), expected, rtol=1e-2, atol=1e-2)


def test_lrn_signature_for_alexnet_and_googlenet():
    params = pyinspect.signature(LocalResponseNorm2d).parameters
    assert {name: p.default for name, p in params.items()} == {"size": 5, "alpha": 1e-4,
                                                               "beta": 0.75, "k": 2.0}


def test_every_inception_module_keeps_the_spatial_size():
    for spec in (googlenet_module.INCEPTION_TABLE["3a"], googlenet_module.INCEPTION_TABLE["5b"]):
        module = Inception(7, spec)
        assert module(torch.randn(1, 7, 5, 5)).shape == (1, spec.out_channels, 5, 5)
