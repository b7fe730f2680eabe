"""The run directory's one home (``cnnzoo.rundir``) and the one atomic write and safe read
(``cnnzoo.files``): what every writer and reader in cnnzoo goes through."""

from __future__ import annotations

import os
import threading
import time

import pytest

from cnnzoo import files, rundir
from cnnzoo.errors import CheckpointError, DataFilesMissing, DataFormatError
from cnnzoo.serve import runs as served


def test_an_atomic_write_that_fails_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    target = tmp_path / "summary.json"
    files.atomic_write_text(target, "old")

    def disk_full(_descriptor):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(OSError):
        files.atomic_write_text(target, "new, half written")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["summary.json"]


def test_an_atomic_write_replaces_the_file_and_flushes_the_directory(tmp_path, monkeypatch):
    flushed = []
    real_fsync = os.fsync
    monkeypatch.setattr(
        os,
        "fsync",
        lambda descriptor: (
            flushed.append(os.readlink(f"/proc/self/fd/{descriptor}")),
            real_fsync(descriptor),
        ),
    )
    files.atomic_write_bytes(tmp_path / "a" / "b.bin", b"1")
    files.atomic_write_bytes(tmp_path / "a" / "b.bin", b"22")
    assert (tmp_path / "a" / "b.bin").read_bytes() == b"22"
    assert flushed.count(str(tmp_path / "a")) == 2  # the rename made durable, each time
    assert len(flushed) == 4  # and the file's bytes before it


@pytest.mark.parametrize("kind", ["fifo", "directory", "missing"])
def test_reading_what_is_not_a_regular_file_is_one_error_at_once(tmp_path, kind):
    path = tmp_path / "config.json"
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "directory":
        path.mkdir()
    result = {}

    def read():
        try:
            rundir.read_json(path, "run's settings")
        except (DataFormatError, DataFilesMissing) as error:
            result["error"] = str(error)

    reader = threading.Thread(target=read, daemon=True)
    started = time.monotonic()
    reader.start()
    reader.join(5)
    assert not reader.is_alive(), "reading a FIFO blocked"
    assert time.monotonic() - started < 1
    assert str(path) in result["error"]
    assert {"fifo": "not a regular file (a FIFO", "directory": "is a directory",
            "missing": "no such file"}[kind] \
        in result["error"]


def test_a_file_over_the_readers_limit_is_refused(tmp_path):
    path = tmp_path / "metrics.csv"
    path.write_bytes(b"x" * 101)
    with pytest.raises(DataFormatError, match="larger than the 100 bytes"):
        files.read_bytes(path, 100)
    assert files.read_bytes(path, 101) == b"x" * 101


@pytest.mark.parametrize("text, problem", [("[1, 2]", "holds list"), ("{\"a\": ", "not valid JSON"),
                                           ("\xff\xfe", "not valid JSON")])
def test_damaged_json_names_the_file(tmp_path, text, problem):
    path = tmp_path / "summary.json"
    path.write_bytes(text.encode("latin-1"))
    with pytest.raises(DataFormatError, match=problem) as caught:
        rundir.read_json(path)
    assert str(path) in str(caught.value)


def test_metrics_rows_cut_short_are_left_out(tmp_path):
    (tmp_path / rundir.METRICS).write_text("epoch,lr,test_top1\n1,0.1,0.5\n2,0.05,0.75\n3,0.01")
    assert rundir.read_metrics(tmp_path) == [{"epoch": 1, "lr": 0.1, "test_top1": 0.5},
                                             {"epoch": 2, "lr": 0.05, "test_top1": 0.75}]
    assert rundir.read_metrics(tmp_path / "absent") == []


LAYOUTS = {
    "config only": [rundir.CONFIG],
    "last checkpoint only": [rundir.LAST],
    "a finished run": [rundir.CONFIG, *rundir.RUN_FILES],
    "an empty checkpoints folder": [],
    "unrelated files": ["notes.txt", "checkpoints.txt"],
}


@pytest.mark.parametrize("layout", LAYOUTS)
def test_training_and_the_explorer_agree_on_what_is_a_run(tmp_path, layout):
    run = tmp_path / "runs" / "x"
    (run / rundir.CHECKPOINTS).mkdir(parents=True)
    for name in LAYOUTS[layout]:
        (run / name).write_text("{}")
    served_as_run = True
    try:
        served.run_path(tmp_path / "runs", "x")
    except served.RunNotFound:
        served_as_run = False
    assert rundir.holds_run(run) == served_as_run == (layout not in ("an empty checkpoints folder",
                                                                     "unrelated files"))


def test_a_run_is_used_through_its_best_checkpoint_or_else_its_last(tmp_path):
    (tmp_path / rundir.CHECKPOINTS).mkdir()
    with pytest.raises(CheckpointError, match="first epoch finished"):
        rundir.checkpoint_of(tmp_path)
    (tmp_path / rundir.LAST).write_bytes(b"")
    assert rundir.checkpoint_of(tmp_path) == tmp_path / rundir.LAST
    (tmp_path / rundir.BEST).write_bytes(b"")
    assert rundir.checkpoint_of(tmp_path) == tmp_path / rundir.BEST
    assert rundir.checkpoint_of(tmp_path / "w.pt") == tmp_path / "w.pt"


def test_no_writer_in_cnnzoo_renames_files_into_place_by_itself():
    """Every write into place goes through cnnzoo.files (flushed, renamed, directory flushed)."""
    from pathlib import Path

    import cnnzoo

    source = Path(cnnzoo.__file__).parent
    renaming = sorted(str(path.relative_to(source)) for path in source.rglob("*.py")
                      if "os.replace(" in path.read_text() or ".rename(" in path.read_text())
    assert renaming == ["files.py", "rundir.py"]


def test_a_default_run_name_gives_a_folder_by_its_own_name():
    """A run records its folder's absolute path: the default run directory keeps only its name."""
    made = rundir.timestamped_run_dir("lenet5-folder:/home/me/data/shapes/").name
    assert made.startswith("lenet5-folder-shapes-") and "/" not in made
    assert rundir.timestamped_run_dir("lenet5-fashion-mnist").name.startswith("lenet5-fashion-")
