"""README's tour, run verbatim: every command of its shell block, then the Python block of its "Python API"
section, in a fresh folder. If the README drifts from what cnnzoo does, this fails. Slow (a few minutes: it trains the demo run), so
it runs in `make test-slow`."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def tour_blocks() -> tuple[list[list[str]], str]:
    """The shell commands of README's tour (one per line, comments dropped) and the Python code of its Python
    API section, which runs after them."""
    text = README.read_text()
    tour = text[text.index("## A short tour"):text.index("## Python API")]
    api = text[text.index("## Python API"):text.index("## Models")]
    shell = re.search(r"```sh\n(.*?)```", tour, re.S).group(1)
    python = re.search(r"```python\n(.*?)```", api, re.S).group(1)
    commands = [shlex.split(line, comments=True) for line in shell.splitlines()]
    return [c for c in commands if c], python


def test_the_tour_block_is_found_and_uses_cnnzoo_only():
    commands, python = tour_blocks()
    assert len(commands) > 15 and all(command[0] == "cnnzoo" for command in commands)
    assert "cnnzoo.train(cnnzoo.TrainConfig(" in python and "from cnnzoo." not in python  # public names only


def _user_images(folder: Path, fashion_mnist_dir: Path) -> None:
    """shoe.png and coat.jpg, the README's stand-ins for the user's photos, cut from the real test set."""
    from PIL import Image

    from cnnzoo.data.idx import read_idx_pair

    images, labels = read_idx_pair(fashion_mnist_dir / "t10k-images-idx3-ubyte.gz",
                                   fashion_mnist_dir / "t10k-labels-idx1-ubyte.gz", limit=100)
    shoe = next(i for i, label in enumerate(labels) if label == 7)  # sneaker
    coat = next(i for i, label in enumerate(labels) if label == 4)
    Image.fromarray(images[shoe]).save(folder / "shoe.png")
    Image.fromarray(images[coat]).convert("RGB").save(folder / "coat.jpg")


@pytest.mark.slow
@pytest.mark.needs_fashion_mnist
def test_every_tour_command_runs_as_written(tmp_path, fashion_mnist_dir):
    _user_images(tmp_path, fashion_mnist_dir)
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")}
    commands, python = tour_blocks()
    for command in commands:
        result = subprocess.run([sys.executable, "-m", "cnnzoo", *command[1:]], cwd=tmp_path, env=env,
                                capture_output=True, text=True)
        assert result.returncode == 0, f"{shlex.join(command)} exited {result.returncode}:\n{result.stderr[-2000:]}"
    result = subprocess.run([sys.executable, "-c", python], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "test accuracy" in result.stdout
