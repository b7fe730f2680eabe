"""The optimisation tricks of fast training, each shown to do what it says: Muon's orthogonalised
steps for convolution filters (and SGD's for the rest), a faster learning rate for normalisation
biases, identity-initialised convolutions, and a tiny run that uses all three and resumes."""

from __future__ import annotations

import copy
import csv
import json
import math

import pytest
import safetensors.torch
import torch
from torch import nn

from cnnzoo.cli import main
from cnnzoo.engine import checkpoint as ckpt
from cnnzoo.engine import muon
from cnnzoo.engine.build import build_model, identity_initialise, make_optimizer
from cnnzoo.engine.config import TrainConfig
from cnnzoo.engine.loop import _set_learning_rate
from cnnzoo.engine.muon import Muon, orthogonalise
from cnnzoo.engine.schedules import PlateauDivider
from cnnzoo.engine.state import RunState
from cnnzoo.errors import ConfigError


def newton_schulz_by_hand(matrix: torch.Tensor) -> torch.Tensor:
    """The quintic iteration written out from its definition, independently of engine.muon."""
    x = matrix.double()
    transposed = x.shape[0] > x.shape[1]
    x = x.T if transposed else x
    x = x / (torch.linalg.matrix_norm(x) + 1e-7)
    for _ in range(5):
        a = x @ x.T
        x = 3.4445 * x - 4.7750 * a @ x + 2.0315 * a @ a @ x
    return (x.T if transposed else x).float()


class Small(nn.Module):
    """A conv with a bias, a 1×1 conv with more outputs than inputs, BatchNorm, GroupNorm and a
    linear head."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.wide = nn.Conv2d(8, 32, 1, bias=False)
        self.gn = nn.GroupNorm(4, 32)
        self.fc = nn.Linear(32, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.gn(self.wide(torch.relu(self.bn(self.conv(x)))))
        return self.fc(x.mean((2, 3)))


def backward(model: nn.Module, seed: int) -> None:
    generator = torch.Generator().manual_seed(seed)
    images = torch.randn(6, 3, 5, 5, generator=generator)
    labels = torch.randint(0, 5, (6,), generator=generator)
    model.zero_grad(set_to_none=True)
    nn.functional.cross_entropy(model(images), labels).backward()


def set_rates(optimizer: torch.optim.Optimizer, config: TrainConfig, done: float) -> float:
    return _set_learning_rate(optimizer, config, RunState(), done, PlateauDivider())


# ----------------------------------------------------------------------------------- Newton–Schulz


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("shape", [(64, 288), (288, 64)])
def test_newton_schulz_brings_every_singular_value_near_one_for_wide_and_tall(shape, dtype):
    matrix = torch.randn(*shape, generator=torch.Generator().manual_seed(1)) * 3.0
    result = orthogonalise(matrix, dtype=dtype)
    values = torch.linalg.svdvals(result.float())
    assert result.shape == shape and result.dtype == dtype
    assert values.min() > 0.5 and values.max() < 1.5
    assert torch.linalg.svdvals(matrix).max() / torch.linalg.svdvals(matrix).min() > 2


@pytest.mark.parametrize("shape", [(64, 288), (288, 64), (48, 48)])
def test_the_orthogonalised_matrix_points_along_the_polar_factor(shape):
    matrix = torch.randn(*shape, generator=torch.Generator().manual_seed(2))
    u, _, vh = torch.linalg.svd(matrix, full_matrices=False)
    cosine = nn.functional.cosine_similarity(orthogonalise(matrix).flatten(), (u @ vh).flatten(),
                                             dim=0)
    assert cosine > 0.9
    # and unlike the raw matrix, whose direction is dominated by its largest singular values
    assert cosine > nn.functional.cosine_similarity(matrix.flatten(), (u @ vh).flatten(), dim=0)


# ------------------------------------------------------------------------------------- Muon's step


def test_a_first_muon_step_moves_filters_by_the_scaled_orthogonal_direction_and_the_rest_by_sgd():
    torch.manual_seed(0)
    model = Small()
    config = TrainConfig(optimizer="muon", lr=0.03, muon_lr=0.2, momentum=0.8, weight_decay=0.01)
    optimizer = make_optimizer(model, config)
    assert isinstance(optimizer, Muon)
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    backward(model, 0)
    grads = {name: p.grad.clone() for name, p in model.named_parameters()}
    optimizer.step()
    after = dict(model.named_parameters())
    mu = 0.8
    for name, rows, cols in (("conv.weight", 8, 27), ("wide.weight", 32, 8)):
        # B = g on the first step, then Nesterov's g + μB; no weight decay on filters
        direction = newton_schulz_by_hand(((1 + mu) * grads[name]).reshape(rows, cols))
        expected = before[name] - 0.2 * max(1.0, rows / cols) ** 0.5 * direction.reshape(
            before[name].shape)
        torch.testing.assert_close(after[name].detach(), expected, atol=2e-5, rtol=1e-4)
    assert max(1.0, 32 / 8) ** 0.5 == 2.0  # the tall filter bank is scaled up
    for name in ("conv.bias", "bn.weight", "bn.bias", "gn.bias"):  # SGD, no decay
        expected = before[name] - 0.03 * (1 + mu) * grads[name]
        torch.testing.assert_close(after[name].detach(), expected)
    decayed = grads["fc.weight"] + 0.01 * before["fc.weight"]  # the linear head: SGD with decay
    torch.testing.assert_close(after["fc.weight"].detach(),
                               before["fc.weight"] - 0.03 * (1 + mu) * decayed)


def test_fixed_norm_scales_each_filter_bank_to_root_rows_before_its_step():
    """airbench's Muon: the bank is scaled to norm √(output channels), then moved by the direction
    it would take without (which depends on the gradient only); without it the banks grow."""
    torch.manual_seed(0)
    model = Small()
    twin = copy.deepcopy(model)
    fixed = make_optimizer(model, TrainConfig(optimizer="muon", muon_fixed_norm=True,
                                              muon_lr=0.05))
    free = make_optimizer(twin, TrainConfig(optimizer="muon", muon_lr=0.05))
    start = {name: p.detach().clone() for name, p in model.named_parameters()}
    for net, optimizer in ((model, fixed), (twin, free)):
        backward(net, 0)
        optimizer.step()
    moved, free_moved = dict(model.named_parameters()), dict(twin.named_parameters())
    for name, rows in (("conv.weight", 8), ("wide.weight", 32)):
        scaled = start[name] * rows ** 0.5 / start[name].norm()
        free_step = free_moved[name].detach() - start[name]
        torch.testing.assert_close(moved[name].detach(), scaled + free_step, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(moved["bn.weight"], free_moved["bn.weight"])  # SGD in both
    for seed in range(1, 30):
        for net, optimizer in ((model, fixed), (twin, free)):
            backward(net, seed)
            optimizer.step()
    for name, rows in (("conv.weight", 8), ("wide.weight", 32)):
        # the last step's own size (lr × √rows) is all it strays from √rows
        assert float(moved[name].norm()) == pytest.approx(rows ** 0.5, rel=0.06)
        assert free_moved[name].norm() > 1.5 * start[name].norm()  # unheld, the bank grows


def test_fixed_norm_needs_muon_and_old_groups_without_it_still_step():
    with pytest.raises(ConfigError, match="--optimizer muon"):
        TrainConfig(optimizer="sgd", muon_fixed_norm=True)
    model = Small()
    optimizer = make_optimizer(model, TrainConfig(optimizer="muon"))
    for group in optimizer.param_groups:  # as a checkpoint written before fixed_norm restores them
        group.pop("fixed_norm", None)
    backward(model, 0)
    optimizer.step()
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_muon_without_filters_is_nesterov_sgd():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(75, 16), nn.ReLU(), nn.Linear(16, 5))
    twin = copy.deepcopy(model)
    config = TrainConfig(optimizer="muon", lr=0.05)
    muon, sgd = make_optimizer(model, config), make_optimizer(twin, TrainConfig(lr=0.05))
    assert [len(g["params"]) for g in muon.param_groups] == [2, 2]
    for seed in range(3):
        for net, optimizer in ((model, muon), (twin, sgd)):
            backward(net, seed)
            optimizer.step()
    for mine, theirs in zip(model.parameters(), twin.parameters(), strict=True):
        torch.testing.assert_close(mine, theirs)


def test_an_optimiser_reloaded_from_a_checkpoint_takes_the_same_next_step(tmp_path):
    torch.manual_seed(0)
    model = Small()
    config = TrainConfig(optimizer="muon", bn_bias_lr=64, lr=0.02, muon_lr=0.1)
    optimizer = make_optimizer(model, config)
    for seed in range(2):
        backward(model, seed)
        optimizer.step()
    ckpt.save_checkpoint(tmp_path / "last.safetensors", model_state=model.state_dict(), meta={},
                         optimizer_state=optimizer.state_dict())
    twin = copy.deepcopy(model)
    reloaded = make_optimizer(twin, config)
    reloaded.load_state_dict(ckpt.load_checkpoint(tmp_path / "last.safetensors").optimizer_state())
    assert [g.get("orthogonalise", False) for g in reloaded.param_groups] == [False, False, False,
                                                                              True]
    for net, opt in ((model, optimizer), (twin, reloaded)):
        set_rates(opt, config, 0.6)
        backward(net, 7)
        opt.step()
    for mine, theirs in zip(model.parameters(), twin.parameters(), strict=True):
        assert torch.equal(mine, theirs)


# ----------------------------------------------------------------- rates: groups and the schedule


def test_bn_bias_lr_speeds_up_normalisation_biases_only_without_weight_decay():
    model = Small()
    config = TrainConfig(bn_bias_lr=64, lr=0.1, schedule="cosine", weight_decay=5e-4)
    optimizer = make_optimizer(model, config)
    reported = set_rates(optimizer, config, 0.5)  # cosine halfway: factor 0.5
    assert reported == pytest.approx(0.05)
    fast = [g for g in optimizer.param_groups if g["lr"] != pytest.approx(0.05)]
    assert len(fast) == 1 and fast[0]["lr"] == pytest.approx(64 * 0.05)
    assert fast[0]["weight_decay"] == 0.0
    ids = {id(p) for p in fast[0]["params"]}
    assert ids == {id(model.bn.bias), id(model.gn.bias)}
    assert id(model.conv.bias) not in ids and id(model.bn.weight) not in ids
    assert optimizer.param_groups[0]["lr"] == pytest.approx(reported)  # what metrics.csv shows


def test_default_settings_keep_the_two_groups_runs_always_had():
    model = Small()
    groups = make_optimizer(model, TrainConfig()).param_groups
    assert [len(g["params"]) for g in groups] == [3, 6]
    assert [g["weight_decay"] for g in groups] == [5e-4, 0.0]
    # a checkpoint from before groups carried their rate: every group follows --lr
    for group in groups:
        del group["base_lr"]
    optimizer = torch.optim.SGD(groups, lr=1.0)
    assert set_rates(optimizer, TrainConfig(lr=0.2, schedule="cosine"), 0.5) == pytest.approx(0.1)
    assert all(g["lr"] == pytest.approx(0.1) for g in optimizer.param_groups)


def test_muon_filters_follow_the_schedule_at_their_own_rate():
    model = Small()
    config = TrainConfig(optimizer="muon", lr=0.02, muon_lr=0.3, schedule="onecycle")
    optimizer = make_optimizer(model, config)
    set_rates(optimizer, config, 0.125)  # halfway up the one-cycle ramp
    filters = optimizer.param_groups[-1]
    assert {id(p) for p in filters["params"]} == {id(model.conv.weight), id(model.wide.weight)}
    assert filters["lr"] == pytest.approx(0.15) and optimizer.param_groups[0]["lr"] == \
        pytest.approx(0.01)


def test_an_old_config_without_the_new_settings_still_loads(tmp_path):
    saved = TrainConfig(model="budgetnet_s").to_dict()
    for name in ("muon_lr", "bn_bias_lr", "dirac_init"):
        del saved[name]
    (tmp_path / "config.json").write_text(json.dumps(saved))
    config = TrainConfig.from_json(tmp_path / "config.json")
    assert (config.muon_lr, config.bn_bias_lr, config.dirac_init) == (0.2, 1.0, False)


# ------------------------------------------------------------------------------------- dirac_init


def test_dirac_init_makes_the_first_filters_pass_their_inputs_through():
    torch.manual_seed(0)
    plain = build_model(TrainConfig(model="budgetnet_s"), 10, 1, 28)
    torch.manual_seed(0)
    model = build_model(TrainConfig(model="budgetnet_s", dirac_init=True), 10, 1, 28)
    whitening = model.features.whitening  # frozen: left as it was built
    assert not whitening.weight.requires_grad
    assert torch.equal(whitening.weight, plain.features.whitening.weight)
    for stage in ("stage1", "stage2", "stage3"):
        conv = getattr(model.features, stage).conv
        original = getattr(plain.features, stage).conv
        x = torch.randn(2, conv.in_channels, 9, 9)
        with torch.no_grad():
            torch.testing.assert_close(conv(x)[:, :conv.in_channels], x)
        assert torch.equal(conv.weight[conv.in_channels:], original.weight[conv.in_channels:])
        assert not torch.equal(conv.weight, original.weight)


def test_dirac_init_leaves_convolutions_that_cannot_be_an_identity():
    torch.manual_seed(0)
    layers = nn.Sequential(nn.Conv2d(4, 6, 3, padding=1), nn.Conv2d(6, 4, 3, padding=1),
                           nn.Conv2d(4, 8, 3, stride=2), nn.Conv2d(4, 8, 2),
                           nn.Conv2d(4, 8, 3, groups=2))
    before = copy.deepcopy(layers)
    identity_initialise(layers)
    x = torch.randn(1, 4, 7, 7)
    with torch.no_grad():
        torch.testing.assert_close(layers[0](x)[:, :4], x + layers[0].bias[:4, None, None])
    assert torch.equal(layers[0].bias, before[0].bias)
    for index in range(1, 5):
        assert torch.equal(layers[index].weight, before[index].weight)


# ------------------------------------------------------------------------------------ a tiny run


def test_a_tiny_run_with_all_three_trains_and_resumes(capsys, tiny_mnist_dir, tmp_path):
    out = tmp_path / "run"
    common = ["--no-progress", "--json"]
    code = main(["train", "--model", "budgetnet_s", "--dataset", "mnist", "--data-dir",
                 str(tiny_mnist_dir), "--optimizer", "muon", "--bn-bias-lr", "64", "--dirac-init",
                 "--epochs", "1", "--batch-size", "64", "--train-subset", "512", "--test-subset",
                 "100", "--precision", "fp32", "--no-channels-last", "--compile", "off",
                 "--device", "cpu", "--snapshots", "off", "--out", str(out), *common])
    assert code == 0 and json.loads(capsys.readouterr().out)["epochs"] == 1
    settings = json.loads((out / "config.json").read_text())
    assert (settings["optimizer"], settings["bn_bias_lr"], settings["dirac_init"]) == \
        ("muon", 64, True)
    groups = ckpt.read_meta(out / "checkpoints/last.safetensors")["optimizer"]["param_groups"]
    assert [g["base_lr"] for g in groups] == pytest.approx([0.05, 0.05, 3.2, 0.2])
    assert groups[-1]["orthogonalise"] is True
    code = main(["train", "--resume", str(out), "--epochs", "2", *common])
    assert code == 0 and json.loads(capsys.readouterr().out)["epochs"] == 2
    with open(out / "metrics.csv") as rows:
        metrics = list(csv.DictReader(rows))
    assert [int(row["epoch"]) for row in metrics] == [1, 2]
    assert all(math.isfinite(float(row["train_loss"])) for row in metrics)
    assert all(0 <= float(row["lr"]) <= 0.05 for row in metrics)  # --lr's, not --muon-lr's


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_muon_orthogonalises_in_the_precision_the_run_trains_in(precision, tiny_mnist_dir,
                                                                  tmp_path, monkeypatch):
    """bf16 products where the model trains in bf16 (native there, else the autotuner would not
    pick it); the filters themselves stay fp32 and move as the fp32 iteration would move them, to
    bf16's rounding."""
    seen = []
    original = muon.orthogonalise

    def spy(matrix, steps=muon.NEWTON_SCHULZ_STEPS, dtype=torch.float32):
        seen.append(dtype)
        result = original(matrix, steps, dtype)
        exact = original(matrix, steps, torch.float32)
        assert nn.functional.cosine_similarity(result.float().flatten(), exact.flatten(),
                                               dim=0) > 0.99
        return result

    monkeypatch.setattr(muon, "orthogonalise", spy)
    code = main(["train", "--model", "budgetnet_s", "--dataset", "mnist", "--data-dir",
                 str(tiny_mnist_dir), "--optimizer", "muon", "--epochs", "1", "--batch-size", "64",
                 "--train-subset", "128", "--test-subset", "50", "--precision", precision,
                 "--no-channels-last", "--compile", "off", "--device", "cpu", "--snapshots", "off",
                 "--no-progress", "--out", str(tmp_path / "run")])
    assert code == 0
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    assert seen and set(seen) == {dtype}
    weights = safetensors.torch.load_file(tmp_path / "run" / "checkpoints" / "last.safetensors")
    assert all(w.dtype == torch.float32 for w in weights.values() if w.is_floating_point())
