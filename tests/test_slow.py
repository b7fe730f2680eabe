"""Long real-data checks, outside `make test` (run them with `make test-slow`): the accuracy the
README promises."""

from __future__ import annotations

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.needs_fashion_mnist]


def test_demo_recipe_reaches_90_percent(tmp_path):
    from cnnzoo.engine.train import train
    from cnnzoo.recipes import load_recipe

    summary = train(load_recipe("lenet5-demo").train_config(out=str(tmp_path / "demo")))
    assert summary["test_top1"] >= 0.90


def test_scratch_cnn_reaches_80_percent(tmp_path):
    from cnnzoo.scratch.run import run

    figures = run("cnn", out_dir=tmp_path, log=lambda message: None)
    assert figures["test_accuracy"] >= 0.80
