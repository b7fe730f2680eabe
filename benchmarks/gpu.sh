#!/usr/bin/env bash
# The benchmarks and the tiers on a CUDA GPU: data on the GPU, and the precision (bf16 where the GPU has it,
# else fp16), memory layout and torch.compile that cnnzoo's autotuner measures fastest there (each run reports
# its choice). JSON and the tiers' table go to benchmarks/results/gpu-<the GPU's name>/.
#
#   benchmarks/gpu.sh             run everything on the GPU (about 40 minutes; a CUDA build of torch)
#   benchmarks/gpu.sh --dry-run   print each command and check that cnnzoo parses it; runs nothing
#   benchmarks/gpu.sh --cpu-tiny  the same commands on the CPU with tiny sizes: checks the path end to end
set -euo pipefail
cd "$(dirname "$0")/.."
CNNZOO=${CNNZOO:-.venv/bin/cnnzoo}
PYTHON=${PYTHON:-.venv/bin/python}
MODE=${1:-run}
# the GPU's name, as a folder name: NVIDIA-H100-80GB-HBM3
GPU_NAME=$("$PYTHON" -c "import torch
print(torch.cuda.get_device_name() if torch.cuda.is_available() else 'no-gpu')" 2>/dev/null \
  | tr -c 'A-Za-z0-9\n' '-' || echo unknown)
OUT=${OUT:-benchmarks/results/gpu-$GPU_NAME}

case "$MODE" in
  run|--dry-run)
    DEVICE=cuda; SEEDS=3
    TRAINING=(--images 20000 --repeats 3 --batch-size 256)
    INFERENCE=(--repeats 3 --variants compiled_fp32 bf16 fp16)
    HARDWARE=()
    RACE=()
    RECIPES=(--recipes budgetnet-fast budgetnet-balanced budgetnet-strong budgetnet-best)
    ;;
  --cpu-tiny)
    DEVICE=cpu; SEEDS=1; OUT=${OUT_TINY:-$(mktemp -d)}
    TRAINING=(--models lenet5 --images 512 --repeats 1 --batch-size 64)
    INFERENCE=(--models resnet18 --repeats 1 --variants compiled_fp32 bf16 fp16)
    RACE=(--epochs 1 --train-subset 512 --test-subset 200 --race-out "$OUT/race-run")
    HARDWARE=(--models lenet5 --steps 1 --peak-size 128 --peak-seconds 0.05 --batch-size 16)
    RECIPES=(--recipes budgetnet-fast --epochs 1 --train-subset 512 --test-subset 200)
    ;;
  *) echo "usage: $0 [--dry-run | --cpu-tiny]" >&2; exit 2 ;;
esac

commands=(
  "bench hardware --device $DEVICE ${HARDWARE[*]} --out $OUT/hardware.json"
  "bench training --device $DEVICE ${TRAINING[*]} --out $OUT/training.json"
  "bench inference --device $DEVICE ${INFERENCE[*]} --out $OUT/inference.json"
  "bench race ${RACE[*]} --out $OUT/race.json"
  "bench recipes --device $DEVICE --seeds $SEEDS ${RECIPES[*]} --results $OUT/results.md --out $OUT/recipes.json"
)

if [[ "$MODE" == run ]]; then
  "$PYTHON" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else \
'no CUDA GPU visible to this torch build: install a CUDA build (make TORCH=torch), or try --cpu-tiny')"
fi
[[ "$MODE" == --dry-run ]] || mkdir -p "$OUT"
for command in "${commands[@]}"; do
  read -r -a words <<< "$command"
  echo "+ cnnzoo $command" >&2
  if [[ "$MODE" == --dry-run ]]; then
    # parsed as on the GPU machine: --device cuda is checked against the devices this one has
    "$PYTHON" -c "import sys; from cnnzoo.cli import build_parser; from cnnzoo.commands import options
options.available_devices = lambda: ('auto', 'cpu', 'cuda', 'cuda:0')
build_parser().parse_args(sys.argv[1:])" "${words[@]}"
  else
    "$CNNZOO" "${words[@]}"
  fi
done
echo "results in $OUT" >&2
