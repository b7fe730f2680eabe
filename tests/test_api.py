"""The public API of ``cnnzoo/__init__.py``: every name resolves, and the documented path (train,
load_run, predict, evaluate) gives the numbers a plain PyTorch forward and the run's own summary
give. That ``import cnnzoo`` loads no torch until a name needs it is checked in test_structure.py
with the other torch-free modules."""

from __future__ import annotations

import pkgutil

import numpy as np
import pytest
import torch
from PIL import Image

import cnnzoo
from cnnzoo.data.idx import read_idx_pair


@pytest.mark.parametrize("name", cnnzoo.__all__)
def test_every_public_name_resolves_and_is_listed_by_dir(name):
    assert getattr(cnnzoo, name) is not None
    assert name in dir(cnnzoo)


def test_no_public_name_is_shadowed_by_a_submodule():
    """Importing cnnzoo.X sets the attribute cnnzoo.X: a submodule named like a public name would
    replace it."""
    submodules = {module.name for module in pkgutil.iter_modules(cnnzoo.__path__)}
    assert submodules & set(cnnzoo.__all__) == set()


def test_an_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'load_trained'"):
        cnnzoo.load_trained  # noqa: B018 - the attribute access is the test


def test_the_error_base_is_the_one_the_cli_catches():
    from cnnzoo.errors import CnnzooError

    assert cnnzoo.CnnzooError is CnnzooError
    with pytest.raises(cnnzoo.CnnzooError, match="unknown model"):
        cnnzoo.create_model("lenet6")


def test_train_load_predict_and_evaluate_agree_with_pytorch_and_the_run(tiny_mnist_dir, tmp_path):
    # Two steps on 100 images: about half right (47%), so the accuracies compared below are not a
    # trivial 100%. fp32 and NCHW forced, as evaluation runs.
    config = cnnzoo.TrainConfig(model="mlp", dataset="mnist", data_dir=str(tiny_mnist_dir),
                                epochs=1, batch_size=50,
                                train_subset=100, lr=0.05, seed=0, precision="fp32",
                                channels_last=False, compile="off", out=str(tmp_path / "run"))
    result = cnnzoo.train(config)
    assert 0.2 < result["test_top1"] < 1
    run = cnnzoo.load_run(tmp_path / "run")
    assert isinstance(run, cnnzoo.Run) and run.name == "mlp" and len(run.classes) == 10

    images, _ = read_idx_pair(tiny_mnist_dir / "t10k-images-idx3-ubyte.gz",
                              tiny_mnist_dir / "t10k-labels-idx1-ubyte.gz", limit=1)
    Image.fromarray(images[0]).save(tmp_path / "digit.png")
    # as stored: no MNIST-style prep
    [answer] = cnnzoo.predict(run, tmp_path / "digit.png", top_k=3, prepare=False)
    x = torch.from_numpy(np.asarray(images[0], dtype=np.float32) / 255)[None, None]
    mean, std = (
        torch.tensor(run.input.mean).view(1, -1, 1, 1),
        torch.tensor(run.input.std).view(1, -1, 1, 1),
    )
    with torch.no_grad():
        expected = torch.softmax(run.model((x - mean) / std), dim=1)[0]
    top = expected.topk(3)
    assert [p["index"] for p in answer["predictions"]] == top.indices.tolist()
    assert [p["probability"] for p in answer["predictions"]] == pytest.approx(
        top.values.tolist(), abs=1e-5
    )
    assert cnnzoo.predict(str(tmp_path / "run"), [tmp_path / "digit.png"], top_k=3,
                          prepare=False) == [answer]

    evaluation = cnnzoo.evaluate(run, data_dir=tiny_mnist_dir)
    assert evaluation.images == 200
    assert evaluation.top1 == result["test_top1"]
