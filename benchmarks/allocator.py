"""What keeping freed memory (``cnnzoo.engine.memory.keep_freed_memory``) does to training.

Each measurement is a fresh process, since the setting cannot be undone within one: a process with
glibc's malloc as it comes (``plain``) and one that keeps freed memory (``kept``), alternated
``--repeats`` times. Each trains a recipe as `cnnzoo train --recipe` does (its evaluations
included), but for ``--seconds`` of training, and reports the run's images per second of training,
the page faults (minor faults, from getrusage) of the whole process and its peak resident memory.
Reported per recipe: the median of each side and the ratio kept / plain of the images per second
(above 1: keeping is faster). Needs Fashion-MNIST (``--data-dir``, else where cnnzoo finds it).

    PYTHONPATH=src python benchmarks/allocator.py [--repeats 2] [--seconds 45] \
        [--recipes lenet5-demo resnet20 budgetnet-best] [--out benchmarks/results/allocator.json]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

import torch

from cnnzoo.engine.memory import KEEP_ENV

RECIPES = ("lenet5-demo", "resnet20", "budgetnet-best")


def child(recipe_name: str, seconds: float, data_dir: str | None) -> dict:
    """One process's run of ``recipe_name`` for ``seconds`` of training (the plain side runs with
    ``CNNZOO_KEEP_FREED_MEMORY=0`` in its environment)."""
    from cnnzoo.engine.train import train
    from cnnzoo.recipes import load_recipe

    with tempfile.TemporaryDirectory() as out:
        config = load_recipe(recipe_name).train_config(
            seed=0, out=out, time_budget=seconds, snapshots="off",
            **({"data_dir": data_dir} if data_dir else {}))
        summary = train(config, log=lambda message: None, overwrite=True)
    return {"images_per_second": summary["images_per_second"], "epochs": summary["epochs"],
            "precision": summary["precision"],
            "faults": resource.getrusage(resource.RUSAGE_SELF).ru_minflt,
            "peak_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}


def measure(recipe: str, repeats: int, seconds: float, data_dir: str | None) -> dict:
    runs = {"plain": [], "kept": []}
    for _ in range(repeats):
        for side in runs:  # alternated, so that a busier moment of the machine slows both
            command = [sys.executable, __file__, "--child", recipe, str(seconds), data_dir or ""]
            env = {**os.environ, KEEP_ENV: "1" if side == "kept" else "0"}
            out = subprocess.run(command, capture_output=True, text=True, check=True,
                                 env=env).stdout
            runs[side].append(json.loads(out.splitlines()[-1]))
    median = {side: {key: statistics.median(r[key] for r in rows)
                     for key in ("images_per_second", "faults", "epochs", "peak_mib")}
              for side, rows in runs.items()}
    return {"recipe": recipe, "seconds": seconds, "precision": runs["plain"][0]["precision"],
            **median,
            "speedup": round(median["kept"]["images_per_second"]
                             / median["plain"]["images_per_second"], 2),
            "images_per_second_each": {side: [r["images_per_second"] for r in rows]
                                       for side, rows in runs.items()}}


def main() -> None:
    if sys.argv[1:2] == ["--child"]:
        recipe, seconds, data_dir = sys.argv[2:5]
        print(json.dumps(child(recipe, float(seconds), data_dir or None)))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=45.0)
    parser.add_argument("--recipes", nargs="+", default=list(RECIPES))
    parser.add_argument("--data-dir")
    parser.add_argument("--out", default="benchmarks/results/allocator.json")
    args = parser.parse_args()
    from cnnzoo.engine.machine import machine_name

    rows = []
    for recipe in args.recipes:
        row = measure(recipe, args.repeats, args.seconds, args.data_dir)
        rows.append(row)
        print(f"{recipe}: {row['plain']['images_per_second']:,.0f} img/s "
              f"({row['plain']['faults']:,.0f} page faults) plain, "
              f"{row['kept']['images_per_second']:,.0f} ({row['kept']['faults']:,.0f}) kept: "
              f"{row['speedup']}×; peak memory {row['plain']['peak_mib']:,.0f} MiB plain, "
              f"{row['kept']['peak_mib']:,.0f} kept", flush=True)
    with open(args.out, "w") as file:
        json.dump({"what": "allocator", "machine": machine_name("cpu"),
                   "threads": torch.get_num_threads(), "torch": torch.__version__,
                   "date": time.strftime("%Y-%m-%d"), "rows": rows}, file, indent=1)
        file.write("\n")


if __name__ == "__main__":
    main()
