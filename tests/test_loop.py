"""The training loop's options, each shown to change what a run does: the checks of the loss and the
clock (few, agreed, naming the first bad step), the time budget and the schedule stretched over it,
the weight average, gradient clipping, fp16's loss scaling, and compiled inference matching
eager."""

from __future__ import annotations

import csv
import math
import warnings
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from cnnzoo.engine import checkpoint as ckpt
from cnnzoo.engine import distributed, loop
from cnnzoo.engine.config import TrainConfig
from cnnzoo.engine.evaluate import evaluate_run
from cnnzoo.engine.inference import optimize_for_inference
from cnnzoo.engine.loop import CHECK_EVERY, StepSettings, steps_per_epoch, training_step
from cnnzoo.engine.run import load_run
from cnnzoo.engine.state import RunState, Trainable
from cnnzoo.engine.train import train
from cnnzoo.errors import NonFiniteLossError
from cnnzoo.models.registry import create_model

CPU = torch.device("cpu")


def tiny(data_dir: Path, out: Path, **changes) -> TrainConfig:
    """A fast run: a small MLP, precision, layout and compile forced (no autotuning, whose time
    would count)."""
    settings = {"model": "mlp", "model_kwargs": {"hidden": [32]}, "dataset": "mnist",
                "data_dir": str(data_dir),
                "epochs": 1, "batch_size": 50, "lr": 0.05, "out": str(out), "seed": 3,
                "precision": "fp32", "channels_last": False, "compile": "off", "device": "cpu"}
    return TrainConfig(**{**settings, **changes})


def metrics(run_dir: Path) -> list[dict]:
    with open(run_dir / "metrics.csv") as rows:
        return list(csv.DictReader(rows))


# ------------------------------------------------------------------------- checks of loss and clock


def test_steps_per_epoch_counts_whole_batches_of_each_process_share():
    assert (
        steps_per_epoch(600, 50, 1) == 12
        and steps_per_epoch(600, 50, 2) == 6
        and steps_per_epoch(600, 64, 1) == 9
    )
    assert steps_per_epoch(10, 50, 4) == 1  # never none: a tiny set still takes a step


def _checks(
    monkeypatch, clock: list[float], trained_seconds: float = 0.0, **config
) -> tuple[loop._Checks, list]:
    agreements = []

    def agree_max(values, device):
        agreements.append(values)
        return values

    monkeypatch.setattr(distributed, "agree_max", agree_max)
    monkeypatch.setattr(loop, "time", SimpleNamespace(perf_counter=lambda: clock[0]))
    return loop._Checks(TrainConfig(**config), RunState(epoch=1, train_seconds=trained_seconds),
                        CPU, clock[0]), agreements


def test_losses_are_read_at_few_steps_and_the_first_non_finite_one_is_named(monkeypatch):
    checks, agreements = _checks(monkeypatch, [0.0])
    with pytest.raises(NonFiniteLossError, match=r"became nan at epoch 2, step 61 \(learning rate "
                                                 r"6\).*Lower --lr"):
        for index in range(100):
            if checks.due(index):
                checks.check(index)
            loss = torch.tensor(float("nan") if index in (60, 62) else 1.0)
            checks.record(loss, lr=index / 10)
    # before steps 1, 2, 3, 5, 9, 17, 26, 51, then 76 found step 61 (and its NaN weights are never
    # saved)
    assert len(agreements) == 9 and math.isinf(agreements[-2][1]) and agreements[-1][1] == -60


def test_the_clock_is_read_at_checks_and_extrapolated_between_them_to_stop_on_time(monkeypatch):
    # 0.25 s a step, after 1 s of training in earlier epochs (binary fractions: exact sums)
    clock = [100.0]
    checks, agreements = _checks(monkeypatch, clock, trained_seconds=1.0, time_budget=10.0)
    stopped_at = None
    for index in range(200):
        if checks.due(index) and checks.check(index):
            stopped_at = index
            break
        assert checks.budget_done(index) == (1.0 + 0.25 * index) / 10.0  # the schedule's progress
        checks.record(torch.tensor(1.0), lr=0.1)
        clock[0] += 0.25
    # before the first step whose clock says 10 s (1 + 36 × 0.25), not at the next multiple of
    # CHECK_EVERY
    assert stopped_at == 36 and stopped_at % CHECK_EVERY != 0
    assert len(agreements) == 8  # before steps 1, 2, 3, 5, 9, 17, 26 and 37


def test_a_time_budget_stops_the_run_and_its_schedule_is_planned_over_the_budget(
    tiny_mnist_dir, tmp_path
):
    config = tiny(tiny_mnist_dir, tmp_path / "run", epochs=10_000, time_budget=1.0,
                  schedule="cosine")
    summary = train(config)
    assert summary["stopped_by"] == "time_budget" and 1 <= summary["epochs"] < 10_000
    assert summary["train_seconds"] >= config.time_budget
    rates = [float(row["lr"]) for row in metrics(tmp_path / "run")]
    # by steps the run went a few epochs in 10,000: cosine's factor would still be ~1; by the clock
    # it ended
    assert rates[-1] < 0.25 * config.lr


@pytest.mark.parametrize("decided, steps", [(False, 0), (True, 1)])
def test_an_epoch_after_one_that_found_time_left_takes_a_step_whatever_its_first_check_says(
        decided, steps):
    """A run's first epoch stops before its first step if the budget is already spent (tuning or
    an earlier run spent it); a later epoch was let start by the end of the one before, which is
    then not left as an epoch that trained nothing after the run's last evaluated one."""
    from cnnzoo.data.tensors import ImageTensors
    from cnnzoo.engine.inputs import InputSpec
    from cnnzoo.engine.progress import Progress
    from cnnzoo.engine.schedules import PlateauDivider

    model = create_model("mlp", num_classes=10, in_channels=1, input_size=28, hidden=[8])
    trainable = Trainable(model, torch.optim.SGD(model.parameters(), lr=0.01),
                          torch.amp.GradScaler("cpu", enabled=False), None,
                          torch.Generator().manual_seed(0))
    data = ImageTensors(torch.randint(0, 256, (64, 1, 28, 28), dtype=torch.uint8),
                        torch.randint(0, 10, (64,)))
    augment = InputSpec(size=28, mean=[0.5], std=[0.25]).train_pipeline(flip=False, pca_std=0.0)
    state = RunState(epoch=1, train_seconds=100.0)  # past the 10 s budget
    epoch = loop.train_one_epoch(model, trainable, data, augment,
                                 config=TrainConfig(epochs=5, batch_size=16, time_budget=10.0),
                                 settings=StepSettings(CPU), state=state,
                                 plateau=PlateauDivider(), bar=Progress(False),
                                 budget_decided=decided)
    assert epoch.images == 16 * steps and state.step == steps and epoch.out_of_time


# -------------------------------------------------------------------------------- options of a step


def test_ema_weights_are_the_ones_evaluated_and_saved(tiny_mnist_dir, tmp_path):
    train(tiny(tiny_mnist_dir, tmp_path / "run", ema_decay=0.9))
    last = ckpt.load_checkpoint(tmp_path / "run/checkpoints/last.safetensors")
    best = ckpt.load_checkpoint(tmp_path / "run/checkpoints/best.safetensors")
    average = {name.removeprefix("module."): value for name, value in last.group("ema").items()}
    assert all(torch.equal(value, average[name]) for name, value in best.model_state.items())
    assert any(not torch.equal(value, last.model_state[name]) for name,
               value in best.model_state.items())
    # the test loss the run reported is the average's (the raw weights' is another)
    result = evaluate_run(load_run(tmp_path / "run/checkpoints/best.safetensors"),
                          data_dir=str(tiny_mnist_dir))
    assert result.loss == pytest.approx(float(metrics(tmp_path / "run")[-1]["test_loss"]), abs=1e-4)


def _trainable(lr: float, precision: str = "fp32") -> Trainable:
    torch.manual_seed(0)
    model = create_model("mlp", num_classes=10, in_channels=1, input_size=28, hidden=[16],
                         dropout=0.0)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    scaler = torch.amp.GradScaler("cpu", enabled=precision == "fp16")
    return Trainable(model, optimizer, scaler, None, torch.Generator().manual_seed(0))


def _one_step(trainable: Trainable, settings: StepSettings) -> float:
    """The step's change of the weights, as one vector's norm."""
    before = [p.detach().clone() for p in trainable.model.parameters()]
    images, labels = torch.randint(0, 256, (8, 1, 28, 28), dtype=torch.uint8), torch.arange(8)
    training_step(trainable.model, trainable.model, images, labels, augment=lambda x,
                  generator: x.float() / 255, trainable=trainable, settings=settings)
    changes = [(p.detach() - b).flatten() for p, b in zip(trainable.model.parameters(), before,
                                                          strict=True)]
    return torch.cat(changes).norm().item()


def test_grad_clip_bounds_the_step_by_the_clipped_gradient_norm():
    lr, clip = 100.0, 1e-3
    unclipped = _one_step(_trainable(lr), StepSettings(CPU, memory_format=torch.contiguous_format))
    clipped = _one_step(_trainable(lr), StepSettings(CPU, memory_format=torch.contiguous_format,
                                                     grad_clip=clip))
    assert clipped == pytest.approx(lr * clip, rel=1e-3) and unclipped > 10 * clipped


def test_fp16_steps_scale_the_loss_and_still_train():
    trainable = _trainable(0.1, "fp16")
    change = _one_step(trainable, StepSettings(CPU, "fp16", torch.contiguous_format))
    assert trainable.scaler.is_enabled() and trainable.scaler.get_scale() > 1 and change > 0
    assert all(p.isfinite().all() for p in trainable.model.parameters())


def test_a_run_scales_its_loss_exactly_when_it_trains_in_fp16(tiny_mnist_dir, tmp_path):
    for precision in ("fp16", "fp32"):
        summary = train(tiny(tiny_mnist_dir, tmp_path / precision, precision=precision))
        scaler = ckpt.load_checkpoint(tmp_path / precision / "checkpoints/last.safetensors").meta[
            "scaler"
        ]
        assert summary["precision"] == precision and bool(scaler) == (precision == "fp16"), scaler
        assert summary["test_top1"] > 0.3  # it learned (the tiny set's chance level is 0.1)


# ------------------------------------------------------------------------------- compiled inference


@pytest.mark.slow  # torch.compile with freezing: about half a minute on two cores
def test_compiled_inference_matches_eager():
    torch.manual_seed(0)
    model = create_model("lenet5_bn", num_classes=10, in_channels=1, input_size=28).eval()
    batch = torch.randn(16, 1, 28, 28)
    with torch.no_grad(), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        eager = model(batch)
        compiled = optimize_for_inference(model, batch, precision="fp32", method="compile")(batch)
    if any("torch.compile failed" in str(warning.message) for warning in caught):
        pytest.skip("torch.compile cannot compile here (no C++ compiler?): TorchScript answered "
                    "instead")
    torch.testing.assert_close(compiled, eager, atol=1e-5, rtol=1e-5)
