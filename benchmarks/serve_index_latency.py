"""The explorer's predict API while a nearest-neighbour index builds in the background (issue #24).

    python benchmarks/serve_index_latency.py [--runs-dir DIR] [--run NAME] [--requests 40]
                                             [--out FILE]

Without ``--runs-dir`` it first trains a 10-class alexnet_small run on Fashion-MNIST for one short
epoch (``--train-subset`` images; the weights need not be good, only the model and the data set's
size matter), in a temporary folder. Then it starts `cnnzoo serve`'s application on uvicorn on a
free port of 127.0.0.1, as `cnnzoo serve` runs it (one PyTorch thread per inference), and

1. measures ``--requests`` predict round trips with nothing else running (the baseline);
2. asks for neighbours, which starts the index build (20,000 training images) and answers 202 at
   once, then sends predict requests one after another until the index is ready (at most
   ``--requests``), recording each latency and status, and the build's progress and total time.

Reported: median and 95th percentile of both, how many answers were not 200 (none expected: the
build holds no inference slot), and the load average before and after. Not a test: figures depend on
the machine.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import httpx

from cnnzoo.engine.machine import machine_name
from cnnzoo.serve.app import use_threads
from cnnzoo.serve.limits import Limits
from serve_latency import start  # beside this file (run as a script: its folder is on the path)


def make_run(root: Path, train_subset: int) -> str:
    from cnnzoo.engine.config import TrainConfig
    from cnnzoo.engine.train import train

    name = "alexnet_small-fashion"
    train(
        TrainConfig(
            model="alexnet_small",
            dataset="fashion-mnist",
            epochs=1,
            batch_size=128,
            train_subset=train_subset,
            test_subset=500,
            compile="off",
            out=str(root / name),
        )
    )
    return name


def timed(client: httpx.Client, url: str, image: bytes) -> tuple[int, float]:
    started = time.perf_counter()
    response = client.post(url, files={"image": ("probe.png", image, "image/png")})
    return response.status_code, time.perf_counter() - started


def figures(times: list[float]) -> dict:
    ordered = sorted(times)
    if not ordered:
        return {"requests": 0}
    return {
        "requests": len(ordered),
        "median_ms": round(statistics.median(ordered) * 1000, 1),
        "p95_ms": round(ordered[max(0, round(0.95 * len(ordered)) - 1)] * 1000, 1),
        "max_ms": round(ordered[-1] * 1000, 1),
    }


def during_build(client: httpx.Client, base: str, run: str, image: bytes, count: int) -> dict:
    started = time.monotonic()
    first = client.post(
        f"{base}/api/runs/{run}/neighbours", files={"image": ("q.png", image, "image/png")}
    )
    statuses, times, progress = [], [], []
    while len(times) < count:
        index = client.get(f"{base}/api/runs/{run}/index").json()["index"]
        if index["state"] not in ("loading", "building"):
            break
        status, seconds = timed(client, f"{base}/api/runs/{run}/predict", image)
        statuses.append(status)
        times.append(seconds)
        progress.append(f"{index['done']}/{index['total']}")
    while (index := client.get(f"{base}/api/runs/{run}/index").json()["index"])["state"] in (
        "loading",
        "building",
    ):
        time.sleep(0.5)
    return {
        "neighbours_first_status": first.status_code,
        "neighbours_first_ms": round(first.elapsed.total_seconds() * 1000, 1),
        "predict": figures([t for s, t in zip(statuses, times, strict=True) if s == 200]),
        "not_200": sum(s != 200 for s in statuses),
        "progress_seen": progress[:: max(1, len(progress) // 8)],
        "index": index,
        "index_wall_s": round(time.monotonic() - started, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs-dir", type=Path)
    parser.add_argument("--run")
    parser.add_argument("--requests", type=int, default=40)
    parser.add_argument("--train-subset", type=int, default=2000)
    parser.add_argument(
        "--out", type=Path, default=Path("benchmarks/results/serve_index_latency.json")
    )
    args = parser.parse_args()
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as scratch:
        runs_dir = args.runs_dir or Path(scratch)
        run = args.run or (make_run(runs_dir, args.train_subset) if args.runs_dir is None else None)
        limits = Limits()
        use_threads(limits)  # as `cnnzoo serve` does
        server, thread, base = start(runs_dir, limits)
        try:
            with httpx.Client(timeout=120) as client:
                listed = client.get(f"{base}/api/runs").json()["runs"]
                run = run or next(r["name"] for r in listed if r["model"] == "alexnet_small")
                image = client.get(f"{base}/api/runs/{run}/test-image?index=0").json()["png"]
                image = base64.b64decode(image)
                timed(client, f"{base}/api/runs/{run}/predict", image)  # loads the model
                idle = [
                    timed(client, f"{base}/api/runs/{run}/predict", image)[1]
                    for _ in range(args.requests)
                ]
                report = {
                    "run": run,
                    "model": "alexnet_small",
                    "cpu": machine_name("cpu"),
                    "cores": os.cpu_count(),
                    "load_average_before": load_before,
                    "predict_idle": figures(idle),
                    "while_indexing": during_build(client, base, run, image, args.requests),
                    "load_average_after": os.getloadavg(),
                }
        finally:
            server.should_exit = True
            thread.join(10)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
