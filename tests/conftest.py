"""Shared fixtures: small datasets written in the real file formats, so no test needs the
network."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cnnzoo.data.idx import write_idx
from cnnzoo.data.sources import find_dataset_files
from cnnzoo.errors import DataFilesMissing


@pytest.fixture(scope="session")
def tiny_mnist_dir(tmp_path_factory) -> Path:
    """A learnable MNIST-format dataset: 10 classes, each a bright square at its own place on a dark
    image."""
    root = tmp_path_factory.mktemp("tiny-mnist")
    rng = np.random.default_rng(0)

    def make(count: int) -> tuple[np.ndarray, np.ndarray]:
        labels = rng.integers(0, 10, count).astype(np.uint8)
        images = rng.integers(0, 40, (count, 28, 28)).astype(np.uint8)
        for image, label in zip(images, labels, strict=True):
            row, col = divmod(int(label), 5)
            image[4 + row * 12: 12 + row * 12, 2 + col * 5: 6 + col * 5] = 220
        return images, labels

    for prefix, count in (("train", 600), ("t10k", 200)):
        images, labels = make(count)
        write_idx(root / f"{prefix}-images-idx3-ubyte.gz", images, compress=True)
        write_idx(root / f"{prefix}-labels-idx1-ubyte.gz", labels, compress=True)
    return root


def find_fashion_mnist() -> Path | None:
    """Where cnnzoo finds the real Fashion-MNIST (`make test` installs Debian's copy), without
    downloading."""
    try:
        return find_dataset_files("fashion-mnist")
    except DataFilesMissing:
        return None


SKIP_REASON = "the real Fashion-MNIST is not installed (apt-get install dataset-fashion-mnist)"


@pytest.fixture(scope="session")
def fashion_mnist_dir() -> Path:
    """The directory of the real Fashion-MNIST; the test is skipped without it."""
    found = find_fashion_mnist()
    if found is None:
        pytest.skip(SKIP_REASON)
    return found


def pytest_runtest_setup(item: pytest.Item) -> None:
    """`@pytest.mark.needs_fashion_mnist` skips a test when the real data set is absent."""
    if item.get_closest_marker("needs_fashion_mnist") and find_fashion_mnist() is None:
        pytest.skip(SKIP_REASON)


@pytest.fixture(autouse=True, scope="session")
def tuning_cache_in_a_temporary_directory(tmp_path_factory):
    """The autotuner's cache goes to a temporary directory, never the user's (child processes
    inherit it)."""
    import os

    from cnnzoo.engine.tuning_cache import CACHE_ENV

    previous = os.environ.get(CACHE_ENV)
    os.environ[CACHE_ENV] = str(tmp_path_factory.mktemp("tuning-cache"))
    yield
    if previous is None:
        os.environ.pop(CACHE_ENV, None)
    else:
        os.environ[CACHE_ENV] = previous


@pytest.fixture(scope="session")
def explorer_runs(tiny_mnist_dir, tmp_path_factory) -> Path:
    """A folder of runs for `cnnzoo serve`'s tests: two tiny trained runs (lenet5, lenet5_bn), one
    whose checkpoint is damaged, one whose checkpoints are links to files outside the folder, and a
    link to a run outside it."""
    import shutil

    from cnnzoo.engine.config import TrainConfig
    from cnnzoo.engine.train import train

    root = tmp_path_factory.mktemp("explorer") / "runs"
    outside = root.parent / "outside"
    for name, model, epochs in (("lenet5-a", "lenet5", 2), ("lenet5bn-b", "lenet5_bn", 1)):
        train(TrainConfig(model=model, dataset="mnist", data_dir=str(tiny_mnist_dir),
                          epochs=epochs, batch_size=128, lr=0.1, out=str(root / name)))
    shutil.copytree(root / "lenet5-a", outside)
    shutil.copytree(root / "lenet5-a", root / "damaged")
    for checkpoint in (root / "damaged" / "checkpoints").glob("*.safetensors"):
        data = bytearray(checkpoint.read_bytes())
        data[8:40] = b"\xff" * 32  # the JSON header, garbled
        checkpoint.write_bytes(bytes(data))
    shutil.copytree(root / "lenet5-a", root / "leaky")
    for checkpoint in (root / "leaky" / "checkpoints").glob("*.safetensors"):
        checkpoint.unlink()
        checkpoint.symlink_to(outside / "checkpoints" / checkpoint.name)
    (root / "escape").symlink_to(outside, target_is_directory=True)
    return root


OWN_NET = '''
import torch.nn.functional as F
from torch import nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 4, 3, padding=1)
        self.fc = nn.Linear(4 * 14 * 14, 10)

    def forward(self, x):
        return self.fc(F.max_pool2d(F.relu(self.conv1(x)), 2).flatten(1))
'''


@pytest.fixture(scope="session")
def imported_runs(tiny_mnist_dir, tmp_path_factory) -> Path:
    """A folder of runs made by `cnnzoo import` from what a plain PyTorch loop (x/255, Adam) saved:
    a zoo lenet5's state_dict ("lenet5-imported"), the same network traced to TorchScript
    ("lenet5-script") and exported with torch.export ("lenet5-exported"), and a class in the
    user's own file, imported with --code ("own-code")."""
    import warnings

    import torch
    import torch.nn.functional as F

    from cnnzoo.cli import main
    from cnnzoo.data.loading import load_dataset
    from cnnzoo.models.registry import create_model

    folder = tmp_path_factory.mktemp("imports")
    (folder / "net.py").write_text(OWN_NET)
    namespace: dict = {}
    exec(compile(OWN_NET, str(folder / "net.py"), "exec"), namespace)
    train = load_dataset("mnist", tiny_mnist_dir, in_channels=1).train
    torch.manual_seed(0)
    lenet, own = create_model("lenet5"), namespace["Net"]()
    for model in (lenet, own):
        optimiser = torch.optim.Adam(model.parameters(), lr=3e-3)
        model.train()
        for start in [*range(0, 600, 60)] * 3:  # three epochs of ten batches
            x = train.images[start:start + 60].float() / 255
            loss = F.cross_entropy(model(x), train.labels[start:start + 60].long())
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
        model.eval()
    torch.save(lenet.state_dict(), folder / "lenet5.pt")
    with warnings.catch_warnings():  # tracing's deprecation and its input checks, known here
        warnings.simplefilter("ignore")
        torch.jit.trace(lenet, torch.zeros(1, 1, 28, 28)).save(str(folder / "lenet5_ts.pt"))
    batch = torch.export.Dim("batch", min=1, max=1024)
    torch.export.save(torch.export.export(lenet, (torch.zeros(2, 1, 28, 28),),
                                          dynamic_shapes=({0: batch},)), folder / "lenet5.pt2")
    torch.save(own.state_dict(), folder / "net.pt")
    root = folder / "runs"
    for source, how, name in (("lenet5.pt", ["--model", "lenet5"], "lenet5-imported"),
                              ("lenet5_ts.pt", ["--input-size", "1,28,28"], "lenet5-script"),
                              ("lenet5.pt2", [], "lenet5-exported"),
                              ("net.pt", ["--code", f"{folder / 'net.py'}:Net",
                                          "--input-size", "1,28,28"], "own-code")):
        assert main(["import", str(folder / source), *how, "--out", str(root / name)]) == 0
    return root


def ctrl_c_reaches_it() -> None:
    """Popen's preexec_fn for a child the test stops with SIGINT: a shell running the tests in the
    background (``make test &``, nohup) starts them with SIGINT ignored, children inherit that,
    and Python then installs no KeyboardInterrupt handler; this puts the terminal's default back."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)
