#!/usr/bin/env bash
# Record every benchmark on this machine; run it when nothing else is running.
set -euo pipefail
cd "$(dirname "$0")/.."
CNNZOO=${CNNZOO:-.venv/bin/cnnzoo}
mkdir -p benchmarks/results
"$CNNZOO" bench hardware --out benchmarks/results/hardware.json
"$CNNZOO" bench training --out benchmarks/results/training.json
"$CNNZOO" bench inference --out benchmarks/results/inference.json
"$CNNZOO" bench recipes --out benchmarks/results/recipes.json
"$CNNZOO" bench race --epochs 3 --out benchmarks/results/race.json
"$CNNZOO" bench ablation --out benchmarks/results/ablation.json
PYTHONPATH=src .venv/bin/python benchmarks/allocator.py --out benchmarks/results/allocator.json
