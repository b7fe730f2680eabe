"""The explorer's predict round trip, measured: upload → top-k and every stage's feature maps, for a
lenet5 run.

    python benchmarks/serve_latency.py RUNS_DIR [--run NAME] [--requests 200] [--out FILE]

Starts `cnnzoo serve`'s application on uvicorn on a free port of 127.0.0.1 (in this process, in a
thread), then

1. sends ``--requests`` predict requests one after another (one client, keep-alive) and reports the
   median and 95th-percentile latency of the whole round trip (multipart upload, decoding, the
   forward pass with hooks, Grad-CAM, packing the maps, JSON), and the size of an answer;
2. sends bursts of N simultaneous requests (N = 1, 2, 4, … up to ``--max-clients``), each client one
   request released at the same moment, and counts answers 200 and 503: how many clients at once are
   served before the server answers 503 rather than queueing.

Every request goes to 127.0.0.1 only, and the loops are bounded. Not a test: figures depend on the
machine and on what else runs on it (the load average is recorded beside them).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import statistics
import threading
import time
from pathlib import Path

import httpx
import uvicorn

from cnnzoo.engine.machine import machine_name
from cnnzoo.serve.app import bind, create_app, url_of, use_threads
from cnnzoo.serve.limits import Limits


def start(runs_dir: Path, limits: Limits) -> tuple[uvicorn.Server, threading.Thread, str]:
    sock = bind("127.0.0.1", 0)
    server = uvicorn.Server(uvicorn.Config(create_app(runs_dir, limits), log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    return server, thread, url_of(sock).rstrip("/")


def predict(client: httpx.Client, url: str, image: bytes) -> tuple[int, float, int]:
    started = time.perf_counter()
    response = client.post(url, files={"image": ("probe.png", image, "image/png")})
    return response.status_code, time.perf_counter() - started, len(response.content)


def sequential(base: str, run: str, image: bytes, count: int) -> dict:
    url = f"{base}/api/runs/{run}/predict"
    with httpx.Client(timeout=60) as client:
        # loads the model
        first = client.post(url, files={"image": ("probe.png", image, "image/png")}).json()
        stages = len(first["stages"])
        results = [predict(client, url, image) for _ in range(count)]
    times = sorted(t for status, t, _ in results if status == 200)
    return {"requests": count, "ok": len(times), "stages_per_answer": stages,
            "median_ms": round(statistics.median(times) * 1000, 1),
            "p95_ms": round(times[max(0, int(round(0.95 * len(times))) - 1)] * 1000, 1),
            "mean_ms": round(statistics.fmean(times) * 1000, 1),
            "answer_kb": round(results[-1][2] / 1024, 1)}


def burst(base: str, run: str, image: bytes, clients: int) -> dict:
    url = f"{base}/api/runs/{run}/predict"
    barrier = threading.Barrier(clients)
    results: list[tuple[int, float, int]] = []
    lock = threading.Lock()

    def one() -> None:
        with httpx.Client(timeout=60) as client:
            barrier.wait()
            outcome = predict(client, url, image)
        with lock:
            results.append(outcome)

    threads = [threading.Thread(target=one) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    served = [t for status, t, _ in results if status == 200]
    return {"clients": clients, "200": len(served), "503": sum(status == 503 for status, _,
                                                               _ in results),
            "slowest_served_ms": round(max(served) * 1000, 1) if served else None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs_dir", type=Path)
    parser.add_argument("--run", help="the lenet5 run to ask (default: the first lenet5 run "
                                      "listed)")
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--max-clients", type=int, default=32)
    parser.add_argument("--max-inference", type=int, default=Limits().max_inference)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/serve_latency.json"))
    args = parser.parse_args()
    load_before = os.getloadavg()
    limits = Limits(max_inference=args.max_inference)
    use_threads(limits)  # as `cnnzoo serve` does
    server, thread, base = start(args.runs_dir, limits)
    try:
        listed = httpx.get(f"{base}/api/runs", timeout=30).json()["runs"]
        run = args.run or next(
            r["name"] for r in listed if r["model"] == "lenet5" and r["has_checkpoint"]
        )
        image = httpx.get(f"{base}/api/runs/{run}/test-image?index=0", timeout=120).json()["png"]
        image = base64.b64decode(image)
        report = {"run": run, "cpu": machine_name("cpu"), "cores": os.cpu_count(),
                  "load_average_before": load_before,
                  "max_inference": args.max_inference,
                  "sequential": sequential(base, run, image, args.requests)}
        report["bursts"] = []
        clients = 1
        while clients <= args.max_clients:
            report["bursts"].append(burst(base, run, image, clients))
            clients *= 2
        report["load_average_after"] = os.getloadavg()
    finally:
        server.should_exit = True
        thread.join(10)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
