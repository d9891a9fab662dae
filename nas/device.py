"""Which device a trial computes on, and the stable name results measured on it are filed under."""
from __future__ import annotations

import os
import platform
from typing import Sequence

import torch

__all__ = ["compute_device", "device_kind", "local_cpu_count", "local_gpu_count"]


def compute_device(gpu_ids: Sequence[str] | None = None) -> torch.device:
    """CUDA when the trial was given a GPU and CUDA works, else CPU.

    ``gpu_ids``: the GPUs Ray assigned (``ray.get_gpu_ids()``; Ray also sets CUDA_VISIBLE_DEVICES,
    so index 0 is the trial's GPU).  An empty list means "no GPU for this trial", even on a GPU
    machine, and fake GPUs (scheduling tests) leave CUDA unavailable.  ``None`` (outside Ray) uses
    CUDA whenever it is available.
    """
    wants_gpu = gpu_ids is None or len(gpu_ids) > 0
    if wants_gpu and torch.cuda.is_available():
        return torch.device("cuda", 0)
    return torch.device("cpu")


def device_kind(device: torch.device | str) -> str:
    """Stable name of the hardware a number was measured on (the key under which speeds are reused)."""
    device = torch.device(device)
    if device.type == "cuda":
        return f"cuda:{torch.cuda.get_device_name(device)}"
    return f"{device.type}:{_cpu_model_name()} x{torch.get_num_threads()}"


def local_gpu_count() -> int:
    return torch.cuda.device_count()


def local_cpu_count() -> int:
    """CPUs this process may run on (the affinity mask, not the machine's total)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def _cpu_model_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"
