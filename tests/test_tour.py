"""README's tour, run as a reader runs it. In the state `make demo` leaves (its `.venv`, its run
in runs/demo), every line of the tour's shell block is pasted into one new shell whose PATH has
nothing of cnnzoo's until the tour puts it there; then the Python block of its "Python API" section
runs in that shell's `python`. If the README drifts from what cnnzoo does, or from the state its
reader is in, this fails. Slow (a few minutes: it trains make demo's run): `make test-slow`."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
ACTIVATE = ". .venv/bin/activate"  # the tour's first line: how a reader's shell finds cnnzoo


def tour_blocks() -> tuple[list[str], str]:
    """The lines of README's tour as pasted (blank and comment-only lines dropped) and the Python
    code of its Python API section, which runs after them."""
    text = README.read_text()
    tour = text[text.index("## A short tour"):text.index("## Python API")]
    api = text[text.index("## Python API"):text.index("## Models")]
    shell = re.search(r"```sh\n(.*?)```", tour, re.S).group(1)
    python = re.search(r"```python\n(.*?)```", api, re.S).group(1)
    return [line for line in shell.splitlines() if shlex.split(line, comments=True)], python


def demo_train_command() -> str:
    """The `cnnzoo train` line of the Makefile's demo target, as run from the clone's root."""
    makefile = (ROOT / "Makefile").read_text()
    demo = makefile[makefile.index("\ndemo:"):]
    line = re.search(r"^\t\$\(BIN\)/cnnzoo (train .*)$", demo, re.M).group(1)
    return f".venv/bin/cnnzoo {line}"


def test_the_tour_block_is_found_and_uses_cnnzoo_only():
    lines, python = tour_blocks()
    assert lines[0].split("#")[0].strip() == ACTIVATE  # a new shell has no cnnzoo on its PATH
    assert len(lines) > 15
    assert all(shlex.split(line, comments=True)[0] == "cnnzoo" for line in lines[1:])
    # public names only
    assert "cnnzoo.train(cnnzoo.TrainConfig(" in python and "from cnnzoo." not in python
    assert "--out runs/demo" in demo_train_command()  # the run the tour's eval and predict use


def _user_images(folder: Path, fashion_mnist_dir: Path) -> None:
    """shoe.png and coat.jpg, the README's stand-ins for the user's photos, cut from the real test
    set."""
    from PIL import Image

    from cnnzoo.data.idx import read_idx_pair

    images, labels = read_idx_pair(fashion_mnist_dir / "t10k-images-idx3-ubyte.gz",
                                   fashion_mnist_dir / "t10k-labels-idx1-ubyte.gz", limit=100)
    shoe = next(i for i, label in enumerate(labels) if label == 7)  # sneaker
    coat = next(i for i, label in enumerate(labels) if label == 4)
    Image.fromarray(images[shoe]).save(folder / "shoe.png")
    Image.fromarray(images[coat]).convert("RGB").save(folder / "coat.jpg")


def _fresh_shell_path() -> str:
    """PATH as a new shell has it before the tour: no folder of this environment's `cnnzoo`."""
    return os.pathsep.join(folder for folder in os.environ.get("PATH", "").split(os.pathsep)
                           if folder and not (Path(folder) / "cnnzoo").exists())


def _reader_script(lines: list[str]) -> str:
    """The tour's lines for one bash process, as a reader pastes them: each must succeed."""
    check = "status=$?; [ $status -eq 0 ] || {{ echo {} exited $status >&2; exit 1; }}"
    steps = [f"{line}\n{check.format(shlex.quote(line))}" for line in lines]
    return "\n".join([*steps, "python tour_api.py", ""])


@pytest.mark.slow
@pytest.mark.needs_fashion_mnist
def test_every_tour_line_runs_as_a_reader_pastes_it_after_make_demo(tmp_path, fashion_mnist_dir):
    venv = Path(sys.prefix)
    if not (venv / "bin" / "activate").is_file() or not (venv / "bin" / "cnnzoo").is_file():
        pytest.skip(f"the tests run outside a virtual environment with cnnzoo installed ({venv})")
    (tmp_path / ".venv").symlink_to(venv, target_is_directory=True)  # as make demo built it
    _user_images(tmp_path, fashion_mnist_dir)
    lines, python = tour_blocks()
    (tmp_path / "tour_api.py").write_text(python)
    env = {name: value for name, value in os.environ.items() if name != "VIRTUAL_ENV"}
    env.update(PATH=_fresh_shell_path(), XDG_CACHE_HOME=str(tmp_path / "cache"))
    # make demo's run, made by its train line; two epochs, for time: no tour line needs more
    demo = subprocess.run(["bash", "-c", demo_train_command() + " --epochs 2"], cwd=tmp_path,
                          env=env, capture_output=True, text=True)
    assert demo.returncode == 0, demo.stderr[-2000:]
    assert (tmp_path / "runs" / "demo" / "summary.json").is_file()
    result = subprocess.run(["bash", "--noprofile", "--norc"], input=_reader_script(lines),
                            cwd=tmp_path, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "test accuracy" in result.stdout  # the Python block's last run printed its result
