"""engine/memory.py: a process that keeps freed memory runs training steps without page-faulting
their buffers in, and training and `cnnzoo eval` keep it; each case is a fresh process, since the
setting lasts a process's life."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys

import pytest

from cnnzoo.engine.memory import KEEP_ENV

pytestmark = pytest.mark.skipif(
    platform.system() != "Linux" or platform.libc_ver()[0] != "glibc",
    reason="keeping freed memory is glibc's mallopt",
)

# steps of a convolution whose output (and its gradient) is 32 MiB, as a training step's
# activations are: their page faults per step once warm. ``train`` first trains a tiny run (``eval``
# evaluates it with `cnnzoo eval`), so that what is measured is whatever that left the process with.
STEPS = """
import json, resource, sys, torch
from cnnzoo.engine.memory import keep_freed_memory
kept = keep_freed_memory() if sys.argv[1] == "keep" else False
if sys.argv[1] == "train":
    from cnnzoo.engine.config import TrainConfig
    from cnnzoo.engine.train import train
    train(TrainConfig(model="mlp", model_kwargs={"hidden": [16]}, dataset="mnist",
                      data_dir=sys.argv[2], epochs=1, batch_size=50, out=sys.argv[3],
                      precision="fp32", compile="off", snapshots="off"), log=lambda m: None)
if sys.argv[1] == "eval":
    from cnnzoo.cli import main
    assert main(["eval", sys.argv[3], "--data-dir", sys.argv[2]]) == 0
torch.manual_seed(0)
conv = torch.nn.Conv2d(8, 32, 3, padding=1)
x = torch.randn(64, 8, 64, 64)
def step():
    conv.zero_grad(set_to_none=True)
    conv(x).relu().sum().backward()
for _ in range(3):
    step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(10):
    step()
print(json.dumps({"kept": kept,
                  "faults": (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 10}))
"""


def _steps(*args: str, **env: str) -> dict:
    result = subprocess.run([sys.executable, "-c", STEPS, *args], capture_output=True, text=True,
                            check=True, env={**os.environ, **env})
    return json.loads(result.stdout.splitlines()[-1])


def test_a_process_that_keeps_freed_memory_steps_without_page_faults():
    plain, kept = _steps("plain"), _steps("keep")
    assert not plain["kept"] and kept["kept"]
    # 32 MiB is 8,192 pages of 4 KiB, freshly mapped for the output and again for its gradient
    assert plain["faults"] > 5_000 and kept["faults"] < plain["faults"] / 10
    # the environment's opt-out leaves malloc as it is
    opted_out = _steps("keep", **{KEEP_ENV: "0"})
    assert not opted_out["kept"] and opted_out["faults"] > 5_000


def test_training_and_cnnzoo_eval_keep_freed_memory(tmp_path, tiny_mnist_dir):
    plain = _steps("plain")
    trained = _steps("train", str(tiny_mnist_dir), str(tmp_path / "run"))
    assert trained["faults"] < plain["faults"] / 10
    evaluated = _steps("eval", str(tiny_mnist_dir), str(tmp_path / "run"))
    assert evaluated["faults"] < plain["faults"] / 10
