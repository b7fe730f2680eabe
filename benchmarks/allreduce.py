"""What data-parallel training of the zoo's ImageNet models exchanges each step, measured and on
paper.

Measured: the time two gloo processes on this machine take to all-reduce one step's gradients of
each model (one fp32 tensor of the trainable parameters' size, as DistributedDataParallel's buckets
add up to), median of ``--repeats`` after a warm-up.

On paper (docs/distributed.md): each step, ring all-reduce sends and receives 2(N−1)/N × S bytes per
process for S bytes of fp32 gradients, in 2(N−1) rounds per bucket (DDP's default bucket is 25 MiB);
the step's compute is 3 × 2 × forward MACs per image (forward + backward ≈ 3 forward passes, 2 FLOPs
per multiply-add) × the per-GPU batch, at a stated sustained per-GPU throughput. Data parallelism
stops scaling where the exchange takes longer than the compute. Parameters and MACs come from
``cnnzoo.models.registry`` and ``cnnzoo.inspect.summary``.

    PYTHONPATH=src python benchmarks/allreduce.py [--repeats 5] \
        [--out benchmarks/results/allreduce.json]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import socket
import statistics
import time
from datetime import timedelta

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from cnnzoo.engine.machine import machine_name
from cnnzoo.inspect.summary import summary
from cnnzoo.models.registry import create_model

MODELS = ("alexnet", "vgg16", "googlenet", "resnet18", "resnet50", "densenet121")
BUCKET_BYTES = 25 * 2**20  # DistributedDataParallel's bucket_cap_mb default
# ImageNet's batch of 256 on 8 GPUs (Goyal et al., 2017, keep 32 per GPU up to 8k)
PER_GPU_BATCH = 32
# sustained mixed-precision training FLOP/s of an A100-class GPU (ResNet-50 ≈ 2,000 img/s)
PER_GPU_FLOPS = 50e12
# name: (bytes/s one way per process, latency per message in s); sustained figures, not the data
# sheets' peaks
LINKS = {"10 GbE": (1.25e9, 50e-6), "100 Gb InfiniBand": (12.5e9, 5e-6),
         "NVLink (A100, in a node)": (230e9, 5e-6)}


def model_costs(name: str) -> dict:
    """Trainable parameters, gradient bytes and forward MACs at the model's default input (one
    image)."""
    model = create_model(name)
    params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    report = summary(model.eval())
    return {"model": name, "params": params, "gradient_bytes": 4 * params,
            "forward_macs": report.total_macs, "input": report.input_size}


def exchange_seconds(gradient_bytes: int, processes: int, link: tuple[float, float]) -> float:
    """Ring all-reduce of one step's gradients: the bandwidth term and the latency of 2(N−1) rounds
    a bucket."""
    bandwidth, latency = link
    buckets = math.ceil(gradient_bytes / BUCKET_BYTES)
    rounds = 2 * (processes - 1)
    return rounds / processes * gradient_bytes / bandwidth + rounds * latency * buckets


def compute_seconds(forward_macs: int) -> float:
    return PER_GPU_BATCH * 3 * 2 * forward_macs / PER_GPU_FLOPS


def processes_where_scaling_stops(
    costs: dict, link: tuple[float, float], limit: int = 4096
) -> int | None:
    """The fewest processes whose exchange outlasts the step's compute (None: not up to
    ``limit``)."""
    compute = compute_seconds(costs["forward_macs"])
    return next((n for n in range(2, limit + 1) if exchange_seconds(costs["gradient_bytes"], n,
                                                                    link) > compute),
                None)


def _worker(rank: int, port: int, sizes: dict[str, int], repeats: int, results) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2,
                            timeout=timedelta(seconds=600))
    for name, count in sizes.items():
        gradients = torch.ones(count, dtype=torch.float32)
        dist.all_reduce(gradients)  # warm-up: connections, buffers
        times = []
        for _ in range(repeats):
            dist.barrier()
            started = time.perf_counter()
            dist.all_reduce(gradients)
            times.append(time.perf_counter() - started)
        if rank == 0:
            results[name] = times
        del gradients
    dist.destroy_process_group()


def measure(sizes: dict[str, int], repeats: int) -> dict[str, list[float]]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with mp.Manager() as manager:
        results = manager.dict()
        mp.spawn(_worker, args=(port, sizes, repeats, results), nprocs=2, join=True)
        return dict(results)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", default="benchmarks/results/allreduce.json")
    args = parser.parse_args()
    costs = [model_costs(name) for name in args.models]
    load_before = os.getloadavg()
    measured = measure({c["model"]: c["params"] for c in costs}, args.repeats)
    rows = []
    print(f"{'model':<12} {'params':>12} {'grad MB':>8} {'GMACs':>7} {'all-reduce s':>13} "
          f"{'s/GB':>6} "
          f"{'compute ms':>10}  " + "  ".join(f"{name} (ms, stops at N)" for name in LINKS))
    for cost in costs:
        seconds = statistics.median(measured[cost["model"]])
        links = {
            name: {
                "exchange_ms_at_8": round(
                    1e3 * exchange_seconds(cost["gradient_bytes"], 8, link), 2
                ),
                "stops_at": processes_where_scaling_stops(cost, link),
            }
            for name, link in LINKS.items()
        }
        row = {**cost, "allreduce_seconds": [round(t, 4) for t in measured[cost["model"]]],
               "allreduce_median_seconds": round(seconds, 4),
               "seconds_per_gb": round(seconds / (cost["gradient_bytes"] / 1e9), 3),
               "compute_ms": round(1e3 * compute_seconds(cost["forward_macs"]), 2), "links": links}
        rows.append(row)
        print(f"{cost['model']:<12} {cost['params']:>12,} {cost['gradient_bytes'] / 1e6:>8.1f} "
              f"{cost['forward_macs'] / 1e9:>7.2f} {seconds:>13.3f} {row['seconds_per_gb']:>6.2f} "
              f"{row['compute_ms']:>10.1f}  " + "  ".join(f"{v['exchange_ms_at_8']:>8.1f}, "
                                                          f"{v['stops_at'] or '>4096'}"
                                                          for v in links.values()))
    report = {"cpu": machine_name("cpu"), "cores": os.cpu_count(), "torch": torch.__version__,
              "processes": 2,
              "backend": "gloo", "repeats": args.repeats, "load_average_before": load_before,
              "load_average_after": os.getloadavg(), "per_gpu_batch": PER_GPU_BATCH,
              "per_gpu_flops": PER_GPU_FLOPS,
              "bucket_bytes": BUCKET_BYTES, "links": LINKS, "models": rows}
    print(f"CPU: {report['cpu']} ({report['cores']} cores); load average {load_before[0]:.1f} "
          f"before, {report['load_average_after'][0]:.1f} after (a shared machine)")
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    with open(args.out, "w") as handle:
        json.dump(report, handle, indent=2)


if __name__ == "__main__":
    main()
