"""Nothing lost: run directories written whole or not at all, killed runs that resume to the same
weights, full and read-only disks reported in one line, runs never silently written over, and image
files that cannot block `cnnzoo predict`. The torchrun jobs (reporting once, a hung rank, a killed
worker) are in test_distributed.py.

The kill tests run training in processes forked from a server that has imported torch and cnnzoo
once (``multiprocessing``'s forkserver), so each killed run and each resume costs its training, not
its imports.
"""

from __future__ import annotations

import contextlib
import csv
import errno
import json
import multiprocessing
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import torch

from cnnzoo.data.folder import load_image
from cnnzoo.engine import checkpoint as ckpt
from cnnzoo.engine.config import TrainConfig
from cnnzoo.engine.train import train
from cnnzoo.errors import (
    ConfigError,
    DataFilesMissing,
    DataFormatError,
    NonFiniteLossError,
    RunDirectoryError,
)
from cnnzoo.rundir import LAST, stale_files

# the metrics that differ between two runs of the same steps
TIMING = ("epoch_seconds", "images_per_second")


def tiny(data_dir: Path, out: Path, **changes) -> TrainConfig:
    """Three quick epochs of a small MLP whose dropout and random crops draw from every
    generator."""
    settings = dict(model="mlp", model_kwargs={"hidden": [16]}, dataset="mnist",
                    data_dir=str(data_dir), epochs=3,
                    batch_size=100, crop_padding=2, seed=3, out=str(out))
    return TrainConfig(**{**settings, **changes})


def tiny_argv(data_dir: Path, out: Path, epochs: int = 3) -> list[str]:
    return ["train", "--model", "mlp", "--model-kwargs", '{"hidden": [16]}', "--dataset", "mnist",
            "--data-dir",
            str(data_dir), "--epochs", str(epochs), "--batch-size", "100", "--crop-padding", "2",
            "--seed", "3", "--threads", "1", "--no-progress", "--out", str(out)]


def temporary_files(run_dir: Path) -> list[str]:
    return sorted(p.name for p in run_dir.rglob("*") if p.name.endswith((".tmp", ".new")))


def metrics_without_timing(run_dir: Path) -> list[dict]:
    with open(run_dir / "metrics.csv", newline="") as handle:
        return [{k: v for k, v in row.items() if k not in TIMING} for row in csv.DictReader(handle)]


# ----------------------------------------------------------------------------- forked training runs


def _cli_child(argv: list[str], log_path: str, kill_at: tuple[str, int] | None,
               record_path: str | None) -> None:
    """`cnnzoo ARGV` in this process, its stderr to ``log_path``; SIGKILLs itself just before the
    ``kill_at`` write (file name, occurrence) is renamed into place, and records every write in
    ``record_path``."""
    from cnnzoo.cli import main

    rename, seen = os.replace, []

    def replace(src, dst, *args, **kwargs):
        seen.append(Path(dst).name)
        if record_path:
            with open(record_path, "a") as record:
                record.write(f"{Path(dst).name}\n")
        if kill_at == (seen[-1], seen.count(seen[-1])):
            # the temporary file is whole, the rename never happens
            os.kill(os.getpid(), signal.SIGKILL)
        return rename(src, dst, *args, **kwargs)

    os.replace = replace
    with open(log_path, "w") as log, contextlib.redirect_stderr(log):
        code = main(argv)
    sys.exit(code)


@pytest.fixture(scope="module")
def forks():
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["cnnzoo.cli", "cnnzoo.engine.train", "cnnzoo.engine.plots",
                                    "torch._dynamo", "matplotlib.backends.backend_agg", __name__])
    return context


def run_forked(forks, argv: list[str], log: Path, *, kill_at=None,
               record: Path | None = None) -> int:
    process = forks.Process(target=_cli_child, args=(argv, str(log), kill_at,
                                                     str(record) if record else None))
    process.start()
    process.join(300)
    if process.is_alive():
        process.kill()
        pytest.fail(f"`cnnzoo {' '.join(argv)}` did not end within 300 s")
    return process.exitcode


@pytest.fixture(scope="module")
def uninterrupted(forks, tiny_mnist_dir, tmp_path_factory) -> tuple[Path, list[str]]:
    """The run every interrupted one must end up equal to, and the files it wrote, in order."""
    out = tmp_path_factory.mktemp("uninterrupted") / "run"
    record = out.parent / "writes.txt"
    assert run_forked(forks, tiny_argv(tiny_mnist_dir, out), out.parent / "log.txt",
                      record=record) == 0
    return out, record.read_text().split()


def test_every_file_of_a_run_is_renamed_into_place_in_a_known_order(uninterrupted):
    """Each file is written whole to a temporary file and renamed (the figures were saved in place
    before)."""
    run_dir, writes = uninterrupted
    written = {p.name for p in run_dir.rglob("*") if p.is_file()}
    assert written == set(writes), "written in place, not renamed: " + ", ".join(
        sorted(written - set(writes))
    )
    rows = metrics_without_timing(run_dir)
    expected, best = ["config.json"], -1.0
    for row in rows:  # best.safetensors only in the epochs whose test accuracy improved
        improved = float(row["test_top1"]) > best
        best = max(best, float(row["test_top1"]))
        expected += ["metrics.csv", *(["best.safetensors"] if improved else []), "last.safetensors"]
    expected += ["per_class.csv", "curves.png", "confusion.png", "summary.json"]
    assert writes == expected


def _kill_and_resume(forks, tiny_mnist_dir, tmp_path, uninterrupted, kill_at) -> None:
    reference, _ = uninterrupted
    run_dir, log = tmp_path / "run", tmp_path / "log.txt"
    argv = tiny_argv(tiny_mnist_dir, run_dir)
    assert run_forked(forks, argv, log, kill_at=kill_at) == -signal.SIGKILL, log.read_text()
    # killed mid-write
    assert any(name.startswith(f".{kill_at[0]}.") for name in temporary_files(run_dir))
    code = run_forked(forks, ["train", "--resume", str(run_dir), "--no-progress"], log)
    if not (run_dir / LAST).exists():  # no epoch finished: resume says so and the run starts again
        message = log.read_text()
        assert code == 2 and "no epoch finished" in message and "--overwrite" in message, message
        code = run_forked(forks, [*argv, "--overwrite"], log)
    assert code == 0, log.read_text()
    expected = ckpt.load_checkpoint(reference / LAST)
    resumed = ckpt.load_checkpoint(run_dir / LAST)
    assert resumed.meta["epoch"] == expected.meta["epoch"] == 3
    assert resumed.tensors.keys() == expected.tensors.keys()
    for name, value in expected.tensors.items():  # weights, optimiser and random states
        assert torch.equal(value, resumed.tensors[name]), name
    assert metrics_without_timing(run_dir) == metrics_without_timing(reference)
    assert json.loads((run_dir / "summary.json").read_text())["epochs"] == 3
    # what the killed write left was removed when the run started again
    assert temporary_files(run_dir) == []


@pytest.mark.parametrize("kill_at", [("config.json", 1), ("last.safetensors", 2),
                                     ("summary.json", 1)],
                         ids=lambda point: f"{point[0]}#{point[1]}")
def test_a_run_killed_at_a_write_resumes_to_the_same_weights(forks, tiny_mnist_dir, tmp_path,
                                                             uninterrupted,
                                                              kill_at):
    _kill_and_resume(forks, tiny_mnist_dir, tmp_path, uninterrupted, kill_at)


@pytest.mark.slow
@pytest.mark.parametrize("index", range(14))
def test_a_run_killed_at_any_write_resumes_to_the_same_weights(forks, tiny_mnist_dir, tmp_path,
                                                               uninterrupted,
                                                                index):
    writes = uninterrupted[1]
    if index >= len(writes):
        pytest.skip(f"this run writes {len(writes)} files")
    name = writes[index]
    _kill_and_resume(
        forks, tiny_mnist_dir, tmp_path, uninterrupted, (name, writes[: index + 1].count(name))
    )


@pytest.mark.parametrize("kill_at", [("config.json", 1), ("last.safetensors", 1)],
                         ids=lambda point: point[0])
def test_an_overwrite_killed_before_its_first_checkpoint_gives_the_old_run_back(
    forks, tiny_mnist_dir, tmp_path, uninterrupted, kill_at
):
    """--overwrite moves the old run aside; killed (kill -9) before its first checkpoint is whole,
    the next start puts the old run back, byte for byte, and then replaces it as asked."""
    import shutil

    run_dir, log = tmp_path / "run", tmp_path / "log.txt"
    shutil.copytree(uninterrupted[0], run_dir)
    before = {p.relative_to(run_dir): p.read_bytes() for p in run_dir.rglob("*") if p.is_file()}
    argv = [*tiny_argv(tiny_mnist_dir, run_dir, epochs=1), "--seed", "4", "--overwrite"]
    assert run_forked(forks, argv, log, kill_at=kill_at) == -signal.SIGKILL, log.read_text()
    aside = tmp_path / ".run.replaced"
    assert {p.relative_to(aside): p.read_bytes() for p in aside.rglob("*") if p.is_file()} == before
    # refused: the old run is back first
    assert run_forked(forks, [*argv[:-1], "--epochs", "3"], log) == 2
    assert "put back the run" in log.read_text() and "already holds a cnnzoo run" in log.read_text()
    assert {
        p.relative_to(run_dir): p.read_bytes() for p in run_dir.rglob("*") if p.is_file()
    } == before
    assert run_forked(forks, argv, log) == 0, log.read_text()
    assert json.loads((run_dir / "config.json").read_text())["seed"] == 4 and not aside.exists()
    assert (
        ckpt.load_checkpoint(run_dir / LAST).meta["epoch"] == 1 and temporary_files(run_dir) == []
    )


def test_only_the_temporary_files_cnnzoo_wrote_are_removed(tiny_mnist_dir, tmp_path):
    run_dir = tmp_path / "run"
    (run_dir / "checkpoints").mkdir(parents=True)
    ours = [".config.json.a1b2c3d4.tmp", ".metrics.csv.zz_9zz9z.tmp",
            "checkpoints/.last.safetensors.k2j4h5g6.tmp", ".write-test"]
    theirs = [".notes.txt.a1b2c3d4.tmp", ".config.json.tmp", ".config.json.new",
              "config.json.a1b2c3d4.tmp", ".last.safetensors.x.tmp",
              "checkpoints/.config.json.a1b2c3d4.tmp", "checkpoints/.mine.tmp", "summary.json.bak"]
    for name in ours + theirs:
        (run_dir / name).write_text("x")
    (run_dir / ".tensorboard.q1w2e3r4.tmp").mkdir()
    assert sorted(p.relative_to(run_dir).as_posix() for p in stale_files(run_dir)) == sorted(
        ours + [".tensorboard.q1w2e3r4.tmp"])
    train(tiny(tiny_mnist_dir, run_dir, epochs=1))
    for name in theirs:
        assert (run_dir / name).read_text() == "x", name
    assert not any((run_dir / name).exists() for name in ours + [".tensorboard.q1w2e3r4.tmp"])


# -------------------------------------------------------------------------- runs never written over


def test_a_directory_holding_a_run_is_refused_and_overwrite_never_mixes_two_runs(
    tiny_mnist_dir, tmp_path, monkeypatch
):
    run_dir = tmp_path / "run"
    train(tiny(tiny_mnist_dir, run_dir, epochs=1))
    before = {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()}
    with pytest.raises(ConfigError) as refused:
        train(tiny(tiny_mnist_dir, run_dir, model="lenet5", model_kwargs={}, epochs=1))
    assert str(run_dir) in str(refused.value) and f"--resume {run_dir}" in str(refused.value)
    assert "--overwrite" in str(refused.value)
    # a start that fails before its config is written leaves the old run whole
    with pytest.raises(ConfigError, match="dropuot"):
        train(tiny(tiny_mnist_dir, run_dir, model_kwargs={"hidden": [16], "dropuot": 0.1}),
              overwrite=True)
    assert {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()} == before
    # a replacement that fails in its first epoch (it diverged) gives the old run back whole
    import cnnzoo.engine.train as engine

    def diverged(*args, **kwargs):
        raise NonFiniteLossError("the loss became nan at epoch 1, step 1")

    with monkeypatch.context() as patch, pytest.raises(NonFiniteLossError,
                                                       match="the run it was replacing is back"):
        patch.setattr(engine, "train_one_epoch", diverged)
        train(tiny(tiny_mnist_dir, run_dir, model="lenet5", model_kwargs={}, epochs=1),
              overwrite=True)
    assert {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [".run.lock", "run"]
    train(tiny(tiny_mnist_dir, run_dir, model="lenet5", model_kwargs={}, epochs=1), overwrite=True)
    for name in ("best", "last"):
        assert (
            ckpt.load_checkpoint(run_dir / f"checkpoints/{name}.safetensors").meta["model"]
            == "lenet5"
        )


def test_a_loss_gone_non_finite_mid_run_keeps_the_best_checkpoint(tiny_mnist_dir, tmp_path,
                                                                  monkeypatch):
    """What test_engine's test of the same name checked by training twice into one directory, which
    is now refused: within one run, a loss that turns NaN in epoch 2 stops it and leaves epoch 1's
    checkpoints."""
    import cnnzoo.engine.train as engine

    epoch = engine.train_one_epoch

    def poisoned_in_epoch_2(net, trainable, *args, state, **kwargs):
        if state.epoch == 1:
            with torch.no_grad():
                for parameter in trainable.model.parameters():
                    parameter.fill_(float("nan"))
        return epoch(net, trainable, *args, state=state, **kwargs)

    monkeypatch.setattr(engine, "train_one_epoch", poisoned_in_epoch_2)
    run_dir = tmp_path / "run"
    kept = r"epoch 2, step 1 .*The best checkpoint so far is kept"
    with pytest.raises(NonFiniteLossError, match=kept):
        train(tiny(tiny_mnist_dir, run_dir))
    for name in ("best", "last"):
        saved = ckpt.load_checkpoint(run_dir / f"checkpoints/{name}.safetensors")
        assert saved.meta["epoch"] == 1 and all(
            t.isfinite().all() for t in saved.model_state.values()
        )


def test_a_loss_gone_non_finite_in_the_first_epoch_claims_no_checkpoint(tiny_mnist_dir, tmp_path,
                                                                         monkeypatch):
    """Before the first checkpoint there is none to keep, and the message must not say there is."""
    import cnnzoo.engine.train as engine

    epoch = engine.train_one_epoch

    def poisoned(net, trainable, *args, state, **kwargs):
        with torch.no_grad():
            for parameter in trainable.model.parameters():
                parameter.fill_(float("nan"))
        return epoch(net, trainable, *args, state=state, **kwargs)

    monkeypatch.setattr(engine, "train_one_epoch", poisoned)
    with pytest.raises(NonFiniteLossError, match=r"epoch 1, step 1 ") as raised:
        train(tiny(tiny_mnist_dir, tmp_path / "run"))
    assert "checkpoint" not in str(raised.value)


# ------------------------------------------------------------------------- full and read-only disks


def fail_commit_of(monkeypatch, name: str, occurrence: int, code: int) -> None:
    """Make the ``occurrence``-th write of ``name`` fail with ``code`` when its temporary file is
    flushed to disk, where a full disk shows up (os.fsync; the file a descriptor belongs to is read
    from /proc)."""
    if not Path("/proc/self/fd").is_dir():
        pytest.skip("needs /proc/self/fd to tell which file is being written")
    fsync, count = os.fsync, [0]

    def failing_fsync(fd: int) -> None:
        if Path(os.readlink(f"/proc/self/fd/{fd}")).name.startswith(f".{name}."):
            count[0] += 1
            if count[0] == occurrence:
                raise OSError(code, os.strerror(code))
        fsync(fd)

    monkeypatch.setattr(os, "fsync", failing_fsync)


@pytest.mark.parametrize("file, code, says", [(LAST, errno.ENOSPC, "the disk is full"),
                                              ("metrics.csv", errno.EROFS,
                                               "the file system is read-only")])
def test_a_failed_write_mid_run_names_the_file_and_keeps_the_checkpoint(
    tiny_mnist_dir, tmp_path, monkeypatch, file, code, says
):
    run_dir = tmp_path / "run"
    fail_commit_of(monkeypatch, Path(file).name, 2, code)
    with pytest.raises(RunDirectoryError) as stopped:
        train(tiny(tiny_mnist_dir, run_dir))
    message = str(stopped.value)
    assert message.startswith(f"cannot write {run_dir / file}: ")
    assert says in message and f"cnnzoo train --resume {run_dir}" in message and "\n" not in message
    # the last good checkpoint, intact
    assert ckpt.load_checkpoint(run_dir / LAST).meta["epoch"] == 1
    assert temporary_files(run_dir) == []
    monkeypatch.undo()
    assert train(None, resume=run_dir)["epochs"] == 3


def test_a_real_full_disk_stops_the_run_and_resume_finishes_it(tiny_mnist_dir, tmp_path):
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(disk)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        reason = f"cannot mount a 256 KiB tmpfs here (needs root): {mounted.stderr.strip()}"
        print(reason)
        pytest.skip(reason)
    try:
        with pytest.raises(RunDirectoryError, match="the disk is full"):
            train(tiny(tiny_mnist_dir, disk / "run"))
        assert ckpt.load_checkpoint(disk / "run" / LAST).meta["epoch"] >= 1
        assert temporary_files(disk / "run") == []
        subprocess.run(["mount", "-o", "remount,size=4m", str(disk)], check=True)
        assert train(None, resume=disk / "run")["epochs"] == 3
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


# -------------------------------------------------------------------------------- files to classify


def test_missing_files_and_directories_are_named_for_what_they_are(tmp_path):
    with pytest.raises(DataFilesMissing, match=r"gone\.png: no such file$"):
        load_image(tmp_path / "gone.png")
    with pytest.raises(DataFormatError, match=r"is a directory, give image files$"):
        load_image(tmp_path)


def test_a_fifo_is_refused_without_waiting_for_a_writer(tmp_path):
    fifo = tmp_path / "image.png"
    os.mkfifo(fifo)
    outcome: list[BaseException | None] = []

    def decode() -> None:
        try:
            load_image(fifo)
            outcome.append(None)
        except BaseException as error:  # noqa: BLE001 - handed to the test's thread
            outcome.append(error)

    worker = threading.Thread(target=decode, daemon=True)
    worker.start()
    worker.join(20)
    if worker.is_alive():  # unblock the reader (the old behaviour) before failing
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        pytest.fail("load_image blocked on a FIFO")
    assert isinstance(outcome[0], DataFormatError) and "not a regular file" in str(outcome[0])
    assert str(fifo) in str(outcome[0])
