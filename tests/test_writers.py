"""Nothing lost, with real processes and real signals: one writer per run directory, and an
--overwrite that is stopped (SIGINT, SIGTERM) before its first checkpoint gives the old run back.

Each training process runs a small worker that holds its first epoch at a gate (a file the test
creates), so that the second writer or the signal arrives while the first run is surely in that
window.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import cnnzoo
from cnnzoo import rundir
from conftest import ctrl_c_reaches_it

SOURCE = Path(cnnzoo.__file__).resolve().parents[1]

# `cnnzoo ARGV`, whose epoch $TEST_GATE_EPOCH (default 1) says so in $TEST_GATE.waiting and then
# waits until the file $TEST_GATE exists
GATED = """
import os, sys, time
from pathlib import Path
import cnnzoo.engine.train as engine
from cnnzoo.cli import main

epoch = engine.train_one_epoch

def gated(*args, state, **kwargs):
    if state.epoch + 1 == int(os.environ.get("TEST_GATE_EPOCH", "1")):
        Path(os.environ["TEST_GATE"] + ".waiting").touch()
        while not os.path.exists(os.environ["TEST_GATE"]):
            time.sleep(0.02)
    return epoch(*args, state=state, **kwargs)

engine.train_one_epoch = gated
sys.exit(main(sys.argv[1:]))
"""


def tiny_train(data_dir: Path, out: Path, *extra: str) -> list[str]:
    return ["train", "--model", "mlp", "--model-kwargs", '{"hidden": [16]}', "--dataset", "mnist",
            "--data-dir",
            str(data_dir), "--epochs", "2", "--batch-size", "100", "--threads", "1",
            "--no-progress", "--device", "cpu", "--precision", "fp32", "--out", str(out), *extra]


def start(script: Path, argv: list[str], gate: Path, gate_epoch: int = 1) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SOURCE),
                                                        os.environ.get("PYTHONPATH", "")]),
           "TEST_GATE": str(gate), "TEST_GATE_EPOCH": str(gate_epoch), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, str(script), *argv], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env,
                            preexec_fn=ctrl_c_reaches_it)


def wait_for(path: Path, process: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert process.poll() is None, process.communicate()[1][-3000:]
        assert time.monotonic() < deadline, f"{path} did not appear"
        time.sleep(0.02)


def files(folder: Path) -> dict:
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture()
def gated_script(tmp_path) -> Path:
    script = tmp_path / "gated.py"
    script.write_text(GATED)
    return script


def test_a_second_writer_is_refused_at_once_and_changes_nothing(tiny_mnist_dir, tmp_path,
                                                                gated_script):
    """Two `train --out runs/x` a moment apart used to both succeed, their epochs interleaved in one
    folder."""
    out, gate = tmp_path / "run", tmp_path / "gate"
    first = start(gated_script, tiny_train(tiny_mnist_dir, out, "--seed", "1"), gate)
    wait_for(Path(f"{gate}.waiting"), first)  # in its first epoch: the folder is the first run's
    written = files(out)
    for extra in ((), ("--overwrite",), ("--resume", "auto")):
        second = subprocess.run([sys.executable, "-m", "cnnzoo",
                                 *tiny_train(tiny_mnist_dir, out, "--seed", "2"),
                                 *extra], capture_output=True, text=True, timeout=300,
                                env={**os.environ, "PYTHONPATH": str(SOURCE)})
        assert second.returncode == 2, second.stderr
        assert second.stderr.strip().count("\n") == 0, second.stderr
        assert (
            f"{out} is being written by another cnnzoo process (PID {first.pid})" in second.stderr
        )
        assert files(out) == written
    gate.touch()
    assert first.wait(300) == 0, first.communicate()[1][-3000:]
    assert json.loads((out / rundir.SUMMARY).read_text())["seed"] == 1
    assert [row["epoch"] for row in rundir.read_metrics(out)] == [1, 2]


@pytest.mark.parametrize("sent", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_an_overwrite_stopped_before_its_first_checkpoint_gives_the_old_run_back(
    tiny_mnist_dir, tmp_path, gated_script, sent
):
    out, gate = tmp_path / "run", tmp_path / "gate"
    gate.touch()
    old = start(gated_script, tiny_train(tiny_mnist_dir, out, "--seed", "1"), gate)
    assert old.wait(300) == 0, old.communicate()[1][-3000:]
    before = files(out)
    gate.unlink()
    Path(f"{gate}.waiting").unlink()
    replacing = start(gated_script, tiny_train(tiny_mnist_dir, out, "--seed", "2", "--overwrite"),
                      gate)
    wait_for(Path(f"{gate}.waiting"), replacing)
    # the old run, moved aside while the new one proves itself
    assert (tmp_path / ".run.replaced").is_dir()
    replacing.send_signal(sent)
    _, stderr = replacing.communicate(timeout=120)
    assert replacing.returncode == 128 + sent, stderr[-3000:]
    assert (
        f"stopped by {sent.name} before the first checkpoint of {out}; the run it was replacing is "
        "back"
    ) in stderr
    assert files(out) == before
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".run")) == [".run.lock"]


def test_a_run_stopped_by_sigterm_after_its_first_checkpoint_resumes(tiny_mnist_dir, tmp_path,
                                                                     gated_script):
    out, gate = tmp_path / "run", tmp_path / "gate"
    process = start(gated_script, tiny_train(tiny_mnist_dir, out, "--epochs", "3"), gate,
                    gate_epoch=2)
    wait_for(Path(f"{gate}.waiting"), process)  # epoch 1 saved, epoch 2 held
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 128 + signal.SIGTERM, stderr[-3000:]
    assert (f"stopped by SIGTERM; epoch 1 is saved; continue with: cnnzoo train --resume "
            f"{out}") in stderr
    gate.touch()
    resumed = start(gated_script, ["train", "--resume", str(out), "--no-progress"], gate)
    assert resumed.wait(300) == 0, resumed.communicate()[1][-3000:]
    assert [row["epoch"] for row in rundir.read_metrics(out)] == [1, 2, 3]


def test_a_view_does_not_write_into_a_run_being_written(tiny_mnist_dir, tmp_path, capsys):
    """`show … ` and `export` write into RUN/show and RUN: while another process holds the run (here
    this test, through the same lock a training takes), they are refused by name; written elsewhere,
    they run."""
    from cnnzoo.cli import main
    from cnnzoo.engine.config import TrainConfig
    from cnnzoo.engine.train import train

    run = tmp_path / "run"
    train(TrainConfig(model="lenet5", dataset="mnist", data_dir=str(tiny_mnist_dir), epochs=1,
                      batch_size=100, out=str(run)))
    capsys.readouterr()
    with rundir.writer_lock(run):
        assert main(["show", "filters", str(run)]) == 2
        assert (
            f"{run} is being written by another cnnzoo process (PID {os.getpid()})"
            in capsys.readouterr().err
        )
        assert not (run / rundir.SHOW).exists()
        assert main(["show", "filters", str(run), "--out", str(tmp_path / "elsewhere")]) == 0
    assert main(["show", "filters", str(run)]) == 0 and (run / rundir.SHOW).is_dir()
