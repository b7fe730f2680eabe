"""Non-finite numbers are stopped, never passed on: a run whose weights turn NaN while its loss
stayed finite stops before saving them, a checkpoint holding NaN is refused by name, and an export
counts a NaN output as a disagreement (they used to give "test accuracy 10.00%", "Bag (nan%)" and
"agreement 100%")."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

import cnnzoo
from cnnzoo import rundir
from cnnzoo.cli import main
from cnnzoo.engine import checkpoint as ckpt
from cnnzoo.engine.config import TrainConfig
from cnnzoo.engine.run import load_run
from cnnzoo.engine.train import train
from cnnzoo.errors import CheckpointError, NonFiniteLossError


def tiny(data_dir, out, **changes) -> TrainConfig:
    settings = dict(model="mlp", model_kwargs={"hidden": [16]}, dataset="mnist",
                    data_dir=str(data_dir), epochs=2,
                    batch_size=100, seed=3, precision="fp32", out=str(out))
    return TrainConfig(**{**settings, **changes})


def test_weights_gone_nan_with_a_finite_loss_stop_the_run_before_they_are_saved(
    tiny_mnist_dir, tmp_path, monkeypatch
):
    """The last step of epoch 2 leaves a NaN weight (its loss, computed before the update, was
    finite): the run stops naming the weight, and epoch 1's checkpoints stay, finite and
    resumable."""
    import cnnzoo.engine.loop as loop

    step = loop.training_step
    calls = []

    def poisoning_the_sixth_step_of_epoch_2(net, model, *args, **kwargs):
        result = step(net, model, *args, **kwargs)
        calls.append(1)
        if len(calls) == 12:  # 600 images in batches of 100: 6 steps an epoch
            with torch.no_grad():
                next(model.parameters())[0, 0] = float("nan")
        return result

    monkeypatch.setattr(loop, "training_step", poisoning_the_sixth_step_of_epoch_2)
    with pytest.raises(NonFiniteLossError, match="the weight .* became NaN or infinite in epoch 2"):
        train(tiny(tiny_mnist_dir, tmp_path / "run"))
    for name in (rundir.BEST, rundir.LAST):
        saved = ckpt.load_checkpoint(tmp_path / "run" / name)
        assert saved.meta["epoch"] == 1
        assert all(torch.isfinite(t).all() for t in saved.model_state.values())
    assert [row["epoch"] for row in rundir.read_metrics(tmp_path / "run")] == [1]
    assert not (tmp_path / "run" / rundir.SUMMARY).exists()


@pytest.fixture()
def poisoned_run(tiny_mnist_dir, tmp_path):
    """A finished run whose best checkpoint then had one weight set to NaN."""
    run_dir = tmp_path / "run"
    train(tiny(tiny_mnist_dir, run_dir, epochs=1))
    saved = ckpt.load_checkpoint(run_dir / rundir.BEST)
    state = dict(saved.model_state)
    name = next(iter(state))
    state[name] = state[name].clone()
    state[name].view(-1)[0] = float("nan")
    ckpt.save_checkpoint(run_dir / rundir.BEST, model_state=state, meta=saved.meta)
    return run_dir, name


def test_a_checkpoint_holding_nan_is_refused_by_name(poisoned_run, tiny_mnist_dir, capsys):
    run_dir, name = poisoned_run
    with pytest.raises(CheckpointError, match=f"its tensor {name} holds NaN"):
        load_run(run_dir)
    image = run_dir / "image.png"
    from PIL import Image

    Image.new("L", (28, 28), 30).save(image)
    for argv in (["eval", str(run_dir), "--data-dir", str(tiny_mnist_dir)],
                 ["predict", str(run_dir), str(image)],
                 ["predict", str(run_dir), str(image), "--json"]):
        assert main(argv) == 2
        captured = capsys.readouterr()
        assert captured.out == "" and "nan%" not in captured.err
        assert (
            captured.err.count("\n") == 1
            and f"{rundir.BEST}: its tensor {name} holds NaN" in captured.err
        )
    # and as a user runs it, in a process of its own
    source = str(Path(cnnzoo.__file__).resolve().parents[1])
    done = subprocess.run([sys.executable, "-m", "cnnzoo", "predict", str(run_dir), str(image)],
                          capture_output=True,
                          text=True, timeout=120, env={**os.environ, "PYTHONPATH": source})
    assert (
        done.returncode == 2
        and done.stdout == ""
        and "holds NaN" in done.stderr
        and "nan%" not in done.stderr
    )


class _LogOfFirstPixels(nn.Module):
    """Logits log(x) of three input pixels: NaN wherever a pixel is negative."""

    def forward(self, x):
        return torch.log(x.flatten(1)[:, :3])


def test_an_export_counts_a_nan_output_as_a_disagreement(tmp_path):
    pytest.importorskip("onnxruntime")
    from cnnzoo.visualize.export import compare

    model = _LogOfFirstPixels()
    x = torch.rand(4, 1, 2, 2) + 0.1
    x[1, 0, 0, 0] = -1.0  # this image's output is NaN on both sides
    path = tmp_path / "log.onnx"
    torch.onnx.export(model, (x,), str(path), input_names=["images"], output_names=["logits"],
                      dynamic_axes={"images": {0: "batch"}, "logits": {0: "batch"}}, dynamo=False)
    check = compare(path, model, x)
    assert check["non_finite"] == 1 and check["top1_agreement"] == 0.75
    assert json.dumps(check)  # plain numbers, for --json


@pytest.mark.parametrize("allowed, bad_steps", [(2, (3, 8)), (1, (3, 8))], ids=["within", "past"])
def test_skip_nonfinite_skips_up_to_n_steps_and_counts_them(tiny_mnist_dir, tmp_path, monkeypatch,
                                                            allowed, bad_steps):
    """--skip-nonfinite N: a step whose loss is not finite makes no update and is counted in
    metrics.csv; the (N+1)-th stops the run as without it."""
    from cnnzoo.models.base import ZooModel

    loss_of, calls = ZooModel.training_loss, []

    def nan_at_some_steps(self, outputs, targets, **kwargs):
        calls.append(1)
        loss = loss_of(self, outputs, targets, **kwargs)
        return loss * float("nan") if len(calls) in bad_steps else loss

    monkeypatch.setattr(ZooModel, "training_loss", nan_at_some_steps)
    config = tiny(tiny_mnist_dir, tmp_path / "run", model="lenet5", model_kwargs={},
                  skip_nonfinite=allowed)
    if allowed < len(bad_steps):
        with pytest.raises(NonFiniteLossError, match="more than 1 steps .* epoch 2, step 2"):
            train(config)
        return
    summary = train(config)
    assert [row["skipped_steps"] for row in rundir.read_metrics(tmp_path / "run")] == [1, 1]
    assert summary["epochs"] == 2 and math.isfinite(
        rundir.read_metrics(tmp_path / "run")[-1]["train_loss"]
    )
    state = ckpt.load_checkpoint(tmp_path / "run" / rundir.LAST)
    assert state.meta["run_state"]["skipped_steps"] == 2
    assert all(torch.isfinite(t).all() for t in state.model_state.values())


def test_a_new_run_that_diverges_in_its_first_epoch_leaves_nothing_and_says_so(
    tiny_mnist_dir, tmp_path, monkeypatch
):
    from cnnzoo.models.base import ZooModel

    loss_of = ZooModel.training_loss
    monkeypatch.setattr(ZooModel, "training_loss", lambda self, *a,
                        **k: loss_of(self, *a, **k) * float("nan"))
    with pytest.raises(NonFiniteLossError, match="nothing of it was kept; run the same command "
                                                 "again once"):
        train(tiny(tiny_mnist_dir, tmp_path / "run", model="lenet5", model_kwargs={}))
    assert not (tmp_path / "run").exists()
    monkeypatch.setattr(ZooModel, "training_loss", loss_of)
    assert (
        train(tiny(tiny_mnist_dir, tmp_path / "run", model="lenet5", model_kwargs={}))["epochs"]
        == 2
    )
