"""Training under torchrun, checked with real processes (CPU, gloo, two ranks): the ranks stay
identical and match one process with their global batch, a streamed folder is decoded once per epoch
in all, a worker killed mid-epoch is restarted and the job ends with the weights of an uninterrupted
one, and a hung rank ends the job naming it. A slow test runs two torchrun agents as two "nodes" of
one job and kills a worker there too.

Each job starts fresh Python processes (torchrun's agent and its workers import torch and cnnzoo),
which is most of the time these tests take; the processes use one thread each (OMP_NUM_THREADS=1,
--threads 1).
"""

from __future__ import annotations

import collections
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import cnnzoo
from cnnzoo.engine import checkpoint as ckpt
from cnnzoo.engine.config import TrainConfig
from cnnzoo.engine.elastic import TEST_KILL_AT
from cnnzoo.engine.train import train
from cnnzoo.rundir import CONFIG, LAST, RUN_FILES

SOURCE = Path(cnnzoo.__file__).resolve().parents[1]
# the metrics that differ between two runs of the same steps
TIMING = ("epoch_seconds", "images_per_second")

# A test-side entry point: `cnnzoo ARGV` with two optional recorders, switched on by environment
# variables. TEST_WEIGHTS_DIR: every rank saves its model's weights after every epoch
# (rank{R}-epoch{E}.pt); TEST_DECODED_LOG: every image decode appends "RANK PATH" to that file
# (DataLoader workers fork from the rank after the patch, so they log too).
WORKER = """
import os, sys
from pathlib import Path
import torch
import cnnzoo.data.folder as folder
import cnnzoo.engine.train as engine
from cnnzoo.cli import main

rank = os.environ["RANK"]
if os.environ.get("TEST_WEIGHTS_DIR"):
    record = engine.record_epoch

    def record_and_save(state, *args):
        row = record(state, *args)
        model = args[2].model
        folder = Path(os.environ["TEST_WEIGHTS_DIR"])
        torch.save(model.state_dict(), folder / f"rank{rank}-epoch{state.epoch}.pt")
        return row

    engine.record_epoch = record_and_save
if os.environ.get("TEST_DECODED_LOG"):
    load_image = folder.load_image

    def load_and_log(path, *args, **kwargs):
        with open(os.environ["TEST_DECODED_LOG"], "a") as log:
            log.write(f"{rank} {path}\\n")
        return load_image(path, *args, **kwargs)

    folder.load_image = load_and_log
sys.exit(main(sys.argv[1:]))
"""


def environment(**extra: str) -> dict[str, str]:
    path = os.pathsep.join([str(SOURCE), os.environ.get("PYTHONPATH", "")])
    return {**os.environ, "PYTHONPATH": path, "OMP_NUM_THREADS": "1", **extra}


def torchrun(args: list[str], *, script: Path | None = None, launcher: tuple[str, ...] = (),
             env: dict | None = None, timeout: float = 240) -> subprocess.CompletedProcess:
    """``torchrun --standalone --nproc-per-node 2 [launcher] (script | -m cnnzoo) ARGS``."""
    target = [str(script)] if script else ["-m", "cnnzoo"]
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                           "--nproc-per-node", "2",
                           *launcher, *target, *args], capture_output=True, text=True,
                          timeout=timeout, env=environment(**(env or {})))


def tiny_argv(data_dir: Path, out: Path, epochs: int = 3) -> list[str]:
    """Three quick epochs of a small MLP on the tiny MNIST, with dropout and random crops: every
    generator is drawn from, so a resume must restore them all."""
    return ["train", "--model", "mlp", "--model-kwargs", '{"hidden": [16]}', "--dataset", "mnist",
            "--data-dir",
            str(data_dir), "--epochs", str(epochs), "--batch-size", "100", "--crop-padding", "2",
            "--seed", "3",
            "--threads", "1", "--no-progress", "--device", "cpu", "--precision", "fp32", "--out",
            str(out)]


def metrics_without_timing(run_dir: Path) -> list[dict]:
    import csv

    with open(run_dir / "metrics.csv", newline="") as handle:
        return [{k: v for k, v in row.items() if k not in TIMING} for row in csv.DictReader(handle)]


def assert_same_tensors(expected: dict[str, torch.Tensor], actual: dict[str, torch.Tensor]) -> None:
    assert expected.keys() == actual.keys()
    different = [name for name, value in expected.items() if not torch.equal(value, actual[name])]
    assert different == [], f"{len(different)} of {len(expected)} tensors differ: {different[:5]}"


@pytest.fixture(scope="module")
def worker_script(tmp_path_factory) -> Path:
    script = tmp_path_factory.mktemp("worker") / "worker.py"
    script.write_text(WORKER)
    return script


# ----------------------------------------------------- the ranks agree, and equal one process's run


@pytest.fixture(scope="module")
def two_tone_folder(tmp_path_factory) -> Path:
    """train/ (2 × 24 images) and val/ (2 × 8): dark and bright 12×12 PNGs."""
    root = tmp_path_factory.mktemp("two-tone")
    rng = np.random.default_rng(0)
    for split, count in (("train", 24), ("val", 8)):
        for label, colour in enumerate((60, 190)):
            folder = root / split / f"class{label}"
            folder.mkdir(parents=True)
            for index in range(count):
                pixels = np.clip(rng.normal(colour, 40, (12, 12, 3)), 0, 255).astype(np.uint8)
                Image.fromarray(pixels).save(folder / f"{index}.png")
    return root


FOLDER_SETTINGS = dict(model="mlp", model_kwargs={"hidden": [16], "dropout": 0.0}, memory_budget=0,
                       epochs=2, input_size=16, lr=0.05, precision="fp32", device="cpu", seed=5)


def folder_argv(folder: Path, out: Path, batch_size: int) -> list[str]:
    return ["train", "--model", "mlp", "--model-kwargs", '{"hidden": [16], "dropout": 0.0}',
            "--dataset",
            f"folder:{folder}", "--memory-budget", "0", "--epochs", "2", "--input-size", "16",
            "--lr", "0.05",
            "--precision", "fp32", "--device", "cpu", "--seed", "5", "--batch-size",
            str(batch_size), "--threads", "1", "--no-progress", "--json", "--out", str(out)]


def test_two_ranks_stay_identical_match_one_process_and_decode_each_image_once_per_epoch(
        two_tone_folder, worker_script, tmp_path):
    """2 processes × batches of 8 against 1 process × batches of 16, on a streamed folder (no
    dropout, no augmentation: the same images make each step). The ranks must hold bit-identical
    weights after every epoch; against one process the weights agree to rtol 1e-5 / atol 1e-6
    (gradients summed in another order and, in this process, with more threads), the test accuracy
    exactly. Each train image is decoded once per epoch in all, plus once for the normalisation
    statistics; each test image once per evaluation."""
    weights, decoded = tmp_path / "weights", tmp_path / "decoded.txt"
    weights.mkdir()
    result = torchrun(folder_argv(two_tone_folder, tmp_path / "two", batch_size=8),
                      script=worker_script,
                      env={"TEST_WEIGHTS_DIR": str(weights), "TEST_DECODED_LOG": str(decoded)})
    assert result.returncode == 0, result.stderr[-3000:]
    # one document: only rank 0 reports (a second would fail to parse)
    summary = json.loads(result.stdout)
    assert result.stderr.count("test accuracy") == 1

    for epoch in (1, 2):
        rank0, rank1 = (
            torch.load(weights / f"rank{r}-epoch{epoch}.pt", weights_only=True) for r in (0, 1)
        )
        assert_same_tensors(rank0, rank1)
    alone = train(TrainConfig(**FOLDER_SETTINGS, dataset=f"folder:{two_tone_folder}", batch_size=16,
                              out=str(tmp_path / "one")))
    one_process = ckpt.load_checkpoint(tmp_path / "one" / LAST).model_state
    assert rank0.keys() == one_process.keys()
    for name, value in one_process.items():
        torch.testing.assert_close(rank0[name], value, rtol=1e-5, atol=1e-6, msg=name)
    assert summary["test_top1"] == alone["test_top1"]
    # 48 / (2 × 8) a epoch
    assert ckpt.load_checkpoint(tmp_path / "two" / LAST).meta["run_state"]["step"] == 2 * 3

    decodes = [line.split(" ", 1) for line in decoded.read_text().splitlines()]  # (rank, path)
    per_file = collections.Counter(path for _, path in decodes)
    assert len(per_file) == 48 + 16
    counts = {
        split: {count for path, count in per_file.items() if f"/{split}/" in path}
        for split in ("train", "val")
    }
    # the epochs and the statistics; the evaluations
    assert counts == {"train": {2 + 1}, "val": {2}}
    by_rank = collections.Counter(rank for rank, path in decodes if "/train/" in path)
    # each rank decoded its half of the training images
    assert by_rank == {"0": 48 * 3 // 2, "1": 48 * 3 // 2}


# --------------------------------------------------------------------------- every job ends cleanly


def assert_ended_cleanly(result: subprocess.CompletedProcess, run_dir: Path) -> None:
    """Exit 0, no process aborted at its exit, and every file of a finished run on disk."""
    assert "terminate called" not in result.stderr and "SIGABRT" not in result.stderr, (
        result.stderr[-3000:]
    )
    assert result.returncode == 0, result.stderr[-3000:]
    missing = [name for name in (*RUN_FILES, CONFIG) if not (run_dir / name).is_file()]
    assert missing == [], f"{run_dir} lacks {missing}"
    assert json.loads((run_dir / "summary.json").read_text())["epochs"] == 3


def run_jobs_and_check_each(tiny_mnist_dir: Path, tmp_path: Path, jobs: int) -> None:
    """``jobs`` 2-process jobs, every third one with rank 1 killed in epoch 2 and restarted by
    torchrun.

    Each process of a job used to abort now and then at its exit, after training (one job in ten to
    twenty on a busy machine): a gloo worker thread released the last collective's tensors while
    Python was shutting down (see ``distributed.leave_together``); torchrun then killed process 0
    before it wrote summary.json."""
    for job in range(jobs):
        run_dir = tmp_path / f"run{job}"
        restart = job % 3 == 2
        result = torchrun(
            tiny_argv(tiny_mnist_dir, run_dir),
            launcher=("--max-restarts", "1", "--monitor-interval", "0.5") if restart else (),
            env={TEST_KILL_AT: "2:2:1"} if restart else None,
        )
        assert_ended_cleanly(result, run_dir)
        assert ("(torchrun restart 1)" in result.stderr) == restart


def test_every_two_process_job_ends_cleanly_with_its_run_directory_complete(
    tiny_mnist_dir, tmp_path
):
    run_jobs_and_check_each(tiny_mnist_dir, tmp_path, jobs=3)


@pytest.mark.slow  # 20 jobs: about two minutes on two cores
def test_twenty_two_process_jobs_end_cleanly(tiny_mnist_dir, tmp_path):
    run_jobs_and_check_each(tiny_mnist_dir, tmp_path, jobs=20)


# ------------------------------------------------------------------------- a lost worker, restarted


@pytest.fixture(scope="module")
def uninterrupted_job(tiny_mnist_dir, tmp_path_factory) -> Path:
    """The 2-process run every restarted one must end up equal to."""
    out = tmp_path_factory.mktemp("uninterrupted") / "run"
    result = torchrun(tiny_argv(tiny_mnist_dir, out))
    assert result.returncode == 0, result.stderr[-3000:]
    return out


@pytest.mark.slow  # two torchrun jobs and a restart: about a minute on two cores
def test_a_worker_killed_in_epoch_2_is_restarted_and_the_job_ends_with_the_same_weights(
        tiny_mnist_dir, uninterrupted_job, tmp_path):
    """Rank 1 is SIGKILLed just before step 2 of epoch 2 (of 3; 3 steps an epoch); torchrun restarts
    both workers, which resume from epoch 1's checkpoint and replay epoch 2: weights, optimiser and
    random states at the end are bit-identical to the uninterrupted job's, and so are the
    metrics."""
    run_dir = tmp_path / "run"
    result = torchrun(tiny_argv(tiny_mnist_dir, run_dir), launcher=("--max-restarts", "1",
                                                                    "--monitor-interval", "0.5"),
                      env={TEST_KILL_AT: "2:2:1"})
    evidence = [line for line in result.stderr.splitlines()
                if any(word in line for word in ("exitcode", "-9", "SIGKILL", "restart", "Restart",
                                                 "resuming", "epoch ", "test accuracy"))]
    print("\n".join(evidence))
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"resuming {run_dir} after epoch 1, step 3 (torchrun restart 1)" in result.stderr
    assert "failed (exitcode: -9) local_rank: 1" in result.stderr  # torchrun saw rank 1 SIGKILLed
    # epoch 1 was trained once (not again from scratch), epoch 2 finished once (in the second
    # attempt)
    assert [result.stderr.count(f"epoch {e}: train loss") for e in (1, 2, 3)] == [1, 1, 1]
    assert result.stderr.count("test accuracy") == 1
    expected, resumed = (
        ckpt.load_checkpoint(uninterrupted_job / LAST),
        ckpt.load_checkpoint(run_dir / LAST),
    )
    assert resumed.meta["epoch"] == expected.meta["epoch"] == 3
    assert_same_tensors(expected.tensors, resumed.tensors)  # weights, optimiser and random states
    print(f"final checkpoints: {len(expected.tensors)} tensors, all bit-identical")
    assert metrics_without_timing(run_dir) == metrics_without_timing(uninterrupted_job)


def test_resume_auto_continues_a_run_with_a_checkpoint_and_starts_one_without(
    tiny_mnist_dir, tmp_path, request
):
    """--resume auto: a directory with a checkpoint is continued (here: extended by one epoch), an
    empty one is started, and one holding another run is refused."""
    from cnnzoo.cli import main

    threads = torch.get_num_threads()  # --threads 1 sets this process's
    request.addfinalizer(lambda: torch.set_num_threads(threads))
    run_dir = tmp_path / "run"
    argv = [*tiny_argv(tiny_mnist_dir, run_dir, epochs=1), "--resume", "auto"]
    assert main(argv) == 0 and ckpt.load_checkpoint(run_dir / LAST).meta["epoch"] == 1
    assert main([*tiny_argv(tiny_mnist_dir, run_dir, epochs=2), "--resume", "auto"]) == 0
    assert [row["epoch"] for row in metrics_without_timing(run_dir)] == ["1", "2"]
    assert main([*argv, "--seed", "4"]) == 2  # another run's settings: refused, nothing touched
    assert ckpt.load_checkpoint(run_dir / LAST).meta["epoch"] == 2


def _agree_in_child(rank: int, store: str, cases: list[list[str | None]], answers) -> None:
    """One of two gloo processes: ``agree_on_start`` on each case's path for this rank; the errors
    go back."""
    import torch.distributed as dist

    from cnnzoo.engine.elastic import agree_on_start
    from cnnzoo.errors import TrainingError

    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=2)
    for number, paths in enumerate(cases):
        try:
            agree_on_start(None if paths[rank] is None else Path(paths[rank]), torch.device("cpu"))
            answers.put((number, rank, None))
        except TrainingError as error:
            answers.put((number, rank, str(error)))
    dist.destroy_process_group()


def test_processes_that_found_different_checkpoints_all_stop_before_loading(tmp_path):
    """What each process is about to load is compared (epoch, step, SHA-256) before anything is
    loaded: the same file on both passes; a checkpoint on one and none on the other, or two
    different checkpoints, stop both processes, naming the one that differs from process 0."""
    import multiprocessing

    for name, step in (("a", 6), ("b", 7)):
        ckpt.save_checkpoint(tmp_path / f"{name}.safetensors",
                             model_state={"w": torch.ones(2) * step},
                             meta={"run_state": {"epoch": 2, "step": step}})
    a, b = str(tmp_path / "a.safetensors"), str(tmp_path / "b.safetensors")
    cases = [[a, a], [a, None], [a, b], [None, None]]
    # torch imported once, in the server, not in each child
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["cnnzoo.engine.elastic", __name__])
    answers = context.Queue()
    children = [context.Process(target=_agree_in_child, args=(rank, str(tmp_path / "store"), cases,
                                                              answers))
                for rank in (0, 1)]
    for child in children:
        child.start()
    found = {}
    for _ in range(2 * len(cases)):
        number, rank, error = answers.get(timeout=120)
        found[number, rank] = error
    for child in children:
        child.join(30)
    assert found[0, 0] is found[0, 1] is None and found[3, 0] is found[3, 1] is None
    for number in (1, 2):
        assert found[number, 0] == found[number, 1] is not None
        assert (
            "process 0: epoch 2, step 6" in found[number, 0]
            and "shared file system" in found[number, 0]
        )
    assert "process 1: nothing, a fresh start" in found[1, 0]
    assert "process 1: epoch 2, step 7, digest" in found[2, 0]


# ---------------------------------------------------------------------------------- reporting once


HANG_RANK_1 = """
import os, sys, time
import cnnzoo.engine.train as engine
from cnnzoo.cli import main

epoch = engine.train_one_epoch

def hang_on_rank_1(*args, state, **kwargs):
    if os.environ["RANK"] == "1" and state.epoch == 1:
        time.sleep(600)
    return epoch(*args, state=state, **kwargs)

engine.train_one_epoch = hang_on_rank_1
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.slow  # it waits out a collective timeout: 15–30 s
def test_under_torchrun_a_hung_rank_ends_the_job_naming_it(tiny_mnist_dir, tmp_path):
    script = tmp_path / "hang.py"
    script.write_text(HANG_RANK_1)
    result = torchrun([*tiny_argv(tiny_mnist_dir, tmp_path / "run"), "--dist-timeout", "3"],
                      script=script)
    assert result.returncode != 0
    assert "process 0 of 2 waited --dist-timeout 3 s" in result.stderr, result.stderr[-3000:]
    assert (
        "rank(s) 1 did not answer" in result.stderr and "Timed out waiting 3000ms" in result.stderr
    )
    # one line from cnnzoo, no traceback (torchrun adds its own)
    assert "cnnzoo/engine" not in result.stderr


# --------------------------------------------------------------------------- two nodes, one machine


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.slow
def test_two_torchrun_agents_form_one_job_as_two_nodes_and_survive_a_lost_worker(
    tiny_mnist_dir, uninterrupted_job, tmp_path
):
    """Two agents (`--nnodes=2 --nproc-per-node=1`) meet at one c10d rendezvous endpoint, as two
    machines would. Rank 1 is SIGKILLed in epoch 2; its agent restarts it and the other agent,
    seeing the rendezvous change, restarts its own process (with a restart count still 0: torchrun
    counts per node). Both resume from epoch 1, and the job ends exactly as the uninterrupted
    2-process job of one agent."""
    endpoint = f"127.0.0.1:{free_port()}"
    command = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc-per-node",
               "1",
               "--max-restarts", "1", "--monitor-interval", "0.5", "--rdzv-backend", "c10d",
               "--rdzv-endpoint",
               endpoint, "--rdzv-id", "cnnzoo-two-nodes", "-m", "cnnzoo",
               *tiny_argv(tiny_mnist_dir, tmp_path / "run"), "--json"]
    env = environment(TORCH_DISABLE_SHARE_RDZV_TCP_STORE="1", **{TEST_KILL_AT: "2:2:1"})
    agents = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env=env)
              for _ in range(2)]
    outputs = [agent.communicate(timeout=300) for agent in agents]
    for agent, (_, stderr) in zip(agents, outputs, strict=True):
        assert agent.returncode == 0, stderr[-3000:]
    stderr = "".join(err for _, err in outputs)
    assert (
        "failed (exitcode: -9)" in stderr
        and (f"resuming {tmp_path / 'run'} after epoch 1, step 3") in stderr
    )
    documents = [json.loads(stdout) for stdout, _ in outputs if stdout.strip()]
    # rank 0, on one of the two nodes, reports
    assert len(documents) == 1 and documents[0]["epochs"] == 3
    expected, actual = (
        ckpt.load_checkpoint(uninterrupted_job / LAST),
        ckpt.load_checkpoint(tmp_path / "run" / LAST),
    )
    assert_same_tensors(expected.tensors, actual.tensors)
