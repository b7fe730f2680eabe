"""The inspector: per-layer figures on hand-made and published networks, and the output-size
formula."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch
from torch import nn

import cnnzoo
import reference
from cnnzoo.layers.output_size import conv_input_size_needed, conv_output_size


class TwoBranches(nn.Module):
    """x → conv 3×3 → {branch a: conv 3×3 stride 2 → conv 3×3 ; branch b: max-pool 2/2} → add →
    flatten → fc.

    Hand-computed receptive fields (r_out = r_in + (k − 1)·j_in, j_out = j_in·s):
    stem 3 (j 1); a1 5 (j 2); a2 5 + 2·2 = 9 (j 2); b 3 + 1 = 4 (j 2); the sum sees the wider, 9.
    """

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(1, 4, 3, padding=1)
        self.a1 = nn.Conv2d(4, 4, 3, stride=2, padding=1)
        self.a2 = nn.Conv2d(4, 4, 3, padding=1)
        self.b = nn.MaxPool2d(2)
        self.after = nn.ReLU()
        self.fc = nn.Linear(4 * 4 * 4, 3)

    def forward(self, x):
        x = self.stem(x)
        x = self.after(self.a2(self.a1(x)) + self.b(x))
        return self.fc(x.flatten(1))


def test_receptive_fields_through_branches_are_hand_computed():
    s = cnnzoo.summary(TwoBranches(), (1, 8, 8))
    fields = {layer.name: (layer.receptive_field, layer.jump) for layer in s.layers}
    assert fields == {"stem": (3, 1), "a1": (5, 2), "a2": (9, 2), "b": (4, 2), "after": (9, 2),
                      "fc": (None, None)}


def test_macs_params_and_connections_of_a_hand_made_model():
    s = cnnzoo.summary(TwoBranches(), (1, 8, 8))
    stem = s.layer("stem")
    assert stem.output_shape == [4, 8, 8]
    assert stem.params == 4 * 9 + 4
    assert stem.macs == 4 * 8 * 8 * 9
    assert stem.connections == stem.macs + 4 * 8 * 8  # one bias per output unit
    assert s.layer("a1").macs == 4 * 4 * 4 * (4 * 9)
    assert s.layer("fc").macs == 3 * 64
    assert s.total_params == sum(p.numel() for p in TwoBranches().parameters())
    assert s.total_macs == sum(layer.macs for layer in s.layers)


# LeNet-5 (LeCun et al., 1998), 32×32 input, layer by layer: tests/reference.py, from the paper's
# section II.B.
LENET_1998 = reference.LENET_1998_LAYERS


@pytest.mark.parametrize("layer, shape, params, connections, field", LENET_1998)
def test_lenet_1998_layer_table(layer, shape, params, connections, field):
    model = cnnzoo.create_model("lenet5_1998")
    info = cnnzoo.summary(model).layer(layer)
    module = model.get_submodule(layer)
    assert info.output_shape == shape
    assert sum(p.numel() for p in module.parameters() if p.requires_grad) == params
    assert info.connections == connections
    assert info.receptive_field == field


def test_lenet_1998_totals():
    s = cnnzoo.summary(cnnzoo.create_model("lenet5_1998"))
    assert (s.trainable_params, s.fixed_params) == (reference.LENET_1998_TRAINABLE,
                                                    reference.LENET_1998_FIXED)


# Receptive fields: tests/reference.py (AlexNet and VGG-16 from their papers' layer arithmetic;
# ResNets as commonly reported for torchvision's models).
RECEPTIVE_FIELDS = reference.RECEPTIVE_FIELDS


@pytest.mark.parametrize("name", sorted(RECEPTIVE_FIELDS))
def test_published_receptive_fields(name):
    s = cnnzoo.summary(cnnzoo.create_model(name))
    assert {
        layer: s.layer(layer).receptive_field for layer in RECEPTIVE_FIELDS[name]
    } == RECEPTIVE_FIELDS[name]


# torchvision's published GFLOPS (multiply-accumulates of conv and linear layers at 224×224):
# tests/reference.py.
GMACS = reference.GMACS


@pytest.mark.parametrize("name, expected", sorted(GMACS.items()))
def test_multiply_adds_agree_with_published_figures(name, expected):
    macs = cnnzoo.summary(cnnzoo.create_model(name)).total_macs / 1e9
    assert macs == pytest.approx(expected, rel=0.01)


@pytest.mark.parametrize("name", ["lenet5", "resnet50"])
def test_the_table_gives_multiply_adds_in_a_unit_that_shows_them(name):
    """LeNet's 0.42 million multiply-adds once read "0.000 G"; each count reads at 3 digits."""
    info = cnnzoo.summary(cnnzoo.create_model(name))
    figure, unit = info.table().splitlines()[-1].split("(")[1].rstrip(")").split()
    scale = {"k": 1e3, "M": 1e6, "G": 1e9}[unit]
    assert 0.1 <= float(figure) < 1000
    assert float(figure) * scale == pytest.approx(info.total_macs, rel=5e-3)


def test_summary_json_has_the_documented_fields():
    data = json.loads(cnnzoo.summary(cnnzoo.create_model("lenet5")).to_json())
    assert set(data) >= {"model", "input_size", "total_params", "trainable_params", "total_macs",
                         "layers"}
    assert set(data["layers"][0]) == {"name", "type", "output_shape", "params", "macs",
                                      "connections", "receptive_field", "jump", "rf_start"}


@pytest.mark.parametrize(
    "size, kernel, stride, padding, dilation, expected",
    [(227, 11, 4, 0, 1, 55), (55, 3, 2, 0, 1, 27), (27, 5, 1, 2, 1, 27), (32, 5, 1, 0, 1, 28),
     (28, 3, 1, 2, 2, 28), (7, 3, 2, 1, 1, 4), (4, 5, 1, 0, 1, 0)],
)
def test_output_size_formula_matches_pytorch(size, kernel, stride, padding, dilation, expected):
    assert conv_output_size(size, kernel, stride, padding, dilation) == expected
    if expected > 0:
        conv = nn.Conv2d(1, 1, kernel, stride, padding, dilation)
        assert conv(torch.zeros(1, 1, size, size)).shape[-1] == expected


@pytest.mark.parametrize("size", range(5, 40))
def test_ceil_mode_output_size_matches_pytorch(size):
    pool = nn.MaxPool2d(3, 2, ceil_mode=True)
    assert (
        conv_output_size(size, 3, 2, ceil_mode=True)
        == pool(torch.zeros(1, 1, size, size)).shape[-1]
    )


def test_input_size_needed_inverts_the_formula():
    for kernel, stride, padding in [(11, 4, 0), (3, 2, 1), (5, 1, 2), (7, 2, 3)]:
        for out in (1, 2, 13):
            need = conv_input_size_needed(out, kernel, stride, padding)
            assert conv_output_size(need, kernel, stride, padding) >= out
            assert need == 1 or conv_output_size(need - 1, kernel, stride, padding) < out


def test_the_formula_has_one_torch_free_home():
    # models size their heads with it and must not import the inspector; scratch/ keeps its own
    # NumPy-era copy
    import cnnzoo.inspect

    assert cnnzoo.inspect.conv_output_size is conv_output_size
    check = "import sys, cnnzoo.layers.output_size; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", check], check=True)


def test_summary_table_groups_by_depth_and_keeps_the_end_of_long_names():
    from cnnzoo.inspect.summary import summary as run_summary

    result = run_summary(cnnzoo.create_model("resnet50"))
    stages = result.rows(depth=1)
    assert [row.name for row in stages] == ["stem", "layer1", "layer2", "layer3", "layer4", "pool",
                                            "fc"]
    assert (
        sum(row.params for row in stages)
        == sum(row.params for row in result.layers)
        == result.total_params
    )
    assert sum(row.macs for row in stages) == result.total_macs
    assert (
        stages[4].output_shape == [2048, 7, 7]
        and stages[4].receptive_field == result.layer("layer4.2.relu3").receptive_field
    )
    table = result.table(depth=1)
    assert "connections" in table.splitlines()[1] and len(table.splitlines()) == 3 + 7 + 3
    dense = run_summary(cnnzoo.create_model("densenet121")).table()
    assert "…" in dense and "denselayer1.norm1" in dense and "denselayer1.conv1" in dense


def test_summary_says_which_parameters_the_pass_did_not_use():
    from cnnzoo.inspect.summary import summary as run_summary

    result = run_summary(cnnzoo.create_model("googlenet_small", width=0.25))
    model = cnnzoo.create_model("googlenet_small", width=0.25)
    aux = sum(p.numel() for name, p in model.named_parameters() if name.startswith("aux"))
    assert result.unused_params == aux > 0
    assert f"{aux:,} of them in modules this pass did not run" in result.table()
