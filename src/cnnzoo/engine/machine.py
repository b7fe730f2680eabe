"""What machine this is, in the words that decide what runs fast on it: the CPU's model and the
vector instructions it has (AVX2, AVX-512, AVX512-BF16, AMX), or the GPU's name and compute
capability. Every measured figure is recorded next to it, and the autotuner keys its cache with
it."""

from __future__ import annotations

import platform
from pathlib import Path

import torch

# The instruction-set flags of /proc/cpuinfo that change which precision or kernel is fastest.
ISA_PREFIXES = ("sse4", "avx", "fma", "f16c", "amx", "vnni")


def cpu_model_and_flags(cpuinfo: str | None = None) -> tuple[str, list[str]]:
    """The CPU's model name and its vector instruction-set flags (sorted), from /proc/cpuinfo where
    there is one; else the platform's processor name and PyTorch's view of the CPU (e.g.
    ``AVX2``)."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            cpuinfo = ""
    model, flags = "", set()
    for line in cpuinfo.splitlines():
        name, _, value = line.partition(":")
        if name.strip() == "model name" and not model:
            model = value.strip()
        elif name.strip() == "flags" and not flags:
            flags = {flag for flag in value.split() if flag.startswith(ISA_PREFIXES)}
    if not flags:
        flags = {torch.backends.cpu.get_cpu_capability().lower()}
    return model or platform.processor() or platform.machine(), sorted(flags)


def machine_name(device: torch.device | str = "cpu") -> str:
    """``AMD EPYC [avx, avx2, fma, …]`` or ``NVIDIA H100 80GB HBM3 (sm_90)``."""
    device = torch.device(device)
    if device.type == "cuda":
        major, minor = torch.cuda.get_device_capability(device)
        return f"{torch.cuda.get_device_name(device)} (sm_{major}{minor})"
    if device.type == "mps":
        return f"Apple {platform.machine()} (MPS)"
    model, flags = cpu_model_and_flags()
    return f"{model} [{', '.join(flags)}]"
