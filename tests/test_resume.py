"""What a start means (``engine.resume.decide_start``), case by case: a table of requests and run
directories, each with the start it must give or the error it must raise. Then ``look_at`` on real
run directories."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from cnnzoo import rundir
from cnnzoo.engine.checkpoint import save_checkpoint
from cnnzoo.engine.config import TrainConfig
from cnnzoo.engine.resume import (
    AUTO,
    CONTINUE,
    EXTEND,
    FINISH,
    NEW,
    REPLACE,
    Found,
    decide_start,
    look_at,
)
from cnnzoo.errors import CnnzooError

RUN = TrainConfig(model="mlp", dataset="mnist", epochs=3, lr=0.1)
SETTINGS = RUN.to_dict()
EMPTY = Found()
STARTED = Found(True, SETTINGS)  # config.json written, no epoch finished
MIDWAY = Found(True, SETTINGS, last_epoch=1, last_seconds=10.0, checkpoints=True)
FINISHED = Found(True, SETTINGS, last_epoch=3, last_seconds=30.0, summary_epochs=3,
                 checkpoints=True)
# before summary.json
CUT_AT_THE_END = Found(True, SETTINGS, last_epoch=3, last_seconds=30.0, checkpoints=True)
OTHER_RUN = Found(True, {**SETTINGS, "lr": 0.2}, last_epoch=1, last_seconds=10.0, checkpoints=True)
BUDGETED = Found(True, {**SETTINGS, "time_budget": 20.0}, last_epoch=2, last_seconds=25.0,
                 summary_epochs=2, checkpoints=True)
BEST_ONLY = Found(True, SETTINGS, checkpoints=True)  # --checkpoint-every 5, stopped in epoch 3
NOT_A_RUN = Found()  # a folder without config.json or checkpoints
DAMAGED = Found(True, damaged="r/checkpoints/last.safetensors: not a readable safetensors "
                              "checkpoint")

# (case, the request: --resume, --overwrite, settings given with --resume, torchrun may restart, its
# restart
#  count, what the run directory holds) -> a Start's kind, or a phrase of the error
CASES = [
    ("a new run in an empty folder", None, False, None, False, 0, EMPTY, NEW),
    ("a new run over a run", None, False, None, False, 0, MIDWAY, "already holds a cnnzoo run"),
    ("--overwrite over a run", None, True, None, False, 0, MIDWAY, REPLACE),
    ("a rerun over a start killed in its first epoch", None, False, None, False, 0, STARTED,
     REPLACE),
    ("a new run over a run with only a best checkpoint", None, False, None, False, 0, BEST_ONLY,
     "already holds"),
    ("--resume a run halfway", "DIR", False, None, False, 0, MIDWAY, CONTINUE),
    ("--resume a finished run", "DIR", False, None, False, 0, FINISHED, "already ran 3 epochs"),
    ("--resume a finished run with more epochs", "DIR", False, {"epochs": 5}, False, 0, FINISHED,
     EXTEND),
    ("--resume a run killed before summary.json", "DIR", False, None, False, 0, CUT_AT_THE_END,
     FINISH),
    ("--resume a run whose budget is spent", "DIR", False, None, False, 0, BUDGETED,
     "already ran 2 epochs"),
    ("--resume it with a larger budget", "DIR", False, {"time_budget": 60.0}, False, 0, BUDGETED,
     EXTEND),
    ("--resume a run with no epoch finished", "DIR", False, None, False, 0, STARTED,
     "nothing to resume"),
    ("--resume a folder that holds no run", "DIR", False, None, False, 0, NOT_A_RUN,
     "not a cnnzoo run directory"),
    ("--resume with another learning rate", "DIR", False, {"lr": 0.5}, False, 0, MIDWAY,
     "keeps its settings"),
    ("--resume a damaged run", "DIR", False, None, False, 0, DAMAGED,
     "not a readable .* --overwrite"),
    ("--overwrite over a damaged run", None, True, None, False, 0, DAMAGED, REPLACE),
    ("--resume auto over a damaged run", AUTO, False, None, False, 0, DAMAGED, "cannot be resumed"),
    ("--resume a folder that is not there", "MISSING", False, None, False, 0, EMPTY,
     "no such run directory"),
    ("--resume auto, nothing there", AUTO, False, None, False, 0, EMPTY, NEW),
    ("--resume auto, the same run halfway", AUTO, False, None, False, 0, MIDWAY, CONTINUE),
    ("--resume auto, the same run finished", AUTO, False, None, False, 0, FINISHED,
     "already ran 3 epochs"),
    ("--resume auto, another run there", AUTO, False, None, False, 0, OTHER_RUN,
     "holds another run .*--lr"),
    ("--resume auto with --overwrite", AUTO, True, None, False, 0, MIDWAY, "give one of them"),
    ("torchrun restartable: nothing there", None, False, None, True, 0, EMPTY, NEW),
    ("torchrun restartable: the same run halfway", None, False, None, True, 0, MIDWAY, CONTINUE),
    ("torchrun restartable: no epoch had finished", None, False, None, True, 0, STARTED, REPLACE),
    ("torchrun restartable: another run there", None, False, None, True, 0, OTHER_RUN,
     "holds another run"),
    ("torchrun --overwrite, first attempt", None, True, None, True, 0, OTHER_RUN, REPLACE),
    ("torchrun --overwrite, a restart after an epoch", None, True, None, True, 1, MIDWAY, CONTINUE),
    ("torchrun --overwrite, a restart before replacing", None, True, None, True, 1, OTHER_RUN,
     REPLACE),
]


@pytest.mark.parametrize("case, resume, overwrite, overrides, restartable, restarts, found, "
                         "expected", CASES,
                         ids=[case[0] for case in CASES])
def test_what_a_start_means(tmp_path, case, resume, overwrite, overrides, restartable, restarts,
                            found, expected):
    config = dataclasses.replace(RUN, out=str(tmp_path))
    if resume in ("DIR", "MISSING"):
        resume, config = (tmp_path if resume == "DIR" else tmp_path / "missing"), None
    def decide():
        return decide_start(config, resume, overwrite, found, overrides=overrides,
                            restartable=restartable, restart_count=restarts)
    if expected in (NEW, REPLACE, CONTINUE, EXTEND, FINISH):
        start = decide()
        assert start.kind == expected
        assert start.run_dir == tmp_path
        assert start.config.epochs == (overrides or {}).get("epochs", 3)
        assert start.config.lr == 0.1  # the run's own, or the request's where they agree
    else:
        with pytest.raises(CnnzooError, match=expected):
            decide()


def test_a_restartable_job_or_resume_auto_needs_an_out():
    with pytest.raises(CnnzooError, match="need --out"):
        decide_start(RUN, AUTO, False, EMPTY)
    with pytest.raises(CnnzooError, match="need --out"):
        decide_start(RUN, None, False, EMPTY, restartable=True)


def _write_run(folder, *, epoch=None, summary_epochs=None, run_state=None):
    (folder / rundir.CHECKPOINTS).mkdir(parents=True)
    (folder / rundir.CONFIG).write_text(json.dumps({**SETTINGS, "versions": {"cnnzoo": "x"}}))
    if epoch is not None or run_state is not None:
        save_checkpoint(folder / rundir.LAST, model_state={"w": torch.zeros(1)},
                        meta={"run_state": run_state or {"epoch": epoch, "train_seconds": 4.5}})
    if summary_epochs is not None:
        (folder / rundir.SUMMARY).write_text(json.dumps({"epochs": summary_epochs}))


def test_look_at_reads_the_run_directory_without_its_tensors(tmp_path):
    assert look_at(tmp_path / "absent") == Found()
    _write_run(tmp_path / "a", epoch=2, summary_epochs=2)
    assert look_at(tmp_path / "a") == Found(True, SETTINGS, last_epoch=2, last_seconds=4.5,
                                            summary_epochs=2, checkpoints=True)
    _write_run(tmp_path / "b")
    assert look_at(tmp_path / "b") == Found(True, SETTINGS) and look_at(tmp_path / "b").debris


@pytest.mark.parametrize("run_state, problem", [({"epoch": -1_000_000}, "epoch is -1000000"),
                                                ({"epoch": "one"}, "epoch is 'one'"),
                                                ({"epoch": 1, "train_seconds": float("nan")},
                                                 "train_seconds")])
def test_a_checkpoints_training_state_is_checked_before_a_resume(tmp_path, run_state, problem):
    _write_run(tmp_path, run_state=run_state)
    assert problem in look_at(tmp_path).damaged
    with pytest.raises(CnnzooError, match=problem):
        decide_start(None, tmp_path, False, look_at(tmp_path))
