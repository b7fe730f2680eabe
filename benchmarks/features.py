"""Seconds for ``cnnzoo show features`` to synthesise every unit of a layer at its default settings
(issue 25: under a minute for a whole lenet5 or alexnet_small layer on 2 cores), with 1 and 2
PyTorch threads.

PYTHONPATH=src python benchmarks/features.py [--out benchmarks/results/features.json]

Random weights: a trained model takes the same steps. On a machine other processes share, one thread
is often faster than two (a parallel region waits for a descheduled thread), so both are reported.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import torch

from cnnzoo.models.registry import create_model
from cnnzoo.visualize.features import Settings, resolve_target, synthesise

LAYERS = {
    "lenet5": ["C1", "C3", "C5", "classes"],
    "alexnet_small": ["conv1", "conv2", "conv3", "conv4", "conv5", "classes"],
}


def measure(name: str, layer: str, threads: int) -> dict:
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = create_model(name).eval()
    units = resolve_target(model, layer)[2]
    started = time.perf_counter()
    synthesise(
        model, layer, mean=list(model.cfg.mean), std=list(model.cfg.std), settings=Settings()
    )
    return {
        "model": name,
        "layer": layer,
        "units": units,
        "threads": threads,
        "seconds": round(time.perf_counter() - started, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", help="also write the results as JSON here")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    rows = []
    for name, layers in LAYERS.items():
        for layer in layers:
            for threads in args.threads:
                rows.append(measure(name, layer, threads))
                print(json.dumps(rows[-1]), flush=True)
    result = {
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "load_average": os.getloadavg(),
        "steps": Settings().steps,
        "rows": rows,
        "slowest_seconds": max(r["seconds"] for r in rows),
    }
    if args.out:
        with open(args.out, "w") as file:
            json.dump(result, file, indent=2)


if __name__ == "__main__":
    main()
