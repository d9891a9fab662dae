"""The Ray Tune function trainable: one candidate architecture per trial, wrapping ``run_trial``.

Exclusive measurement.  Latency and throughput are only meaningful when nothing else runs on
the device being timed, yet Tune packs several trials onto one device (``--gpus-per-trial 0.5``
puts two trials on a GPU; CPU trials share a node).  Every trial therefore takes a per-device
reader/writer lock, a pair of ``flock`` files in the node's temp dir keyed by the device the
trial computes on (the GPU's UUID, or ``cpu`` for CPU trials on that node):

* from its start until its ``measure`` report, a trial holds the lock **exclusively**;
* while it trains, it holds the lock **shared**, one epoch at a time: it lets go before each
  ``tune.report`` and takes the lock again (through the gate) before the next epoch.

A measurement waits for the gate, then for every trainer on its device to end its current
epoch; trainers queue behind a waiting measurement at the gate.  So no two measurements and no
measurement and training ever overlap on one device, and a measurement waits at most one epoch
of each neighbour.  The locks live in the trial process and die with it (killed, stopped by
ASHA, crashed), so they cannot leak.  Trials holding whole GPUs never contend.
"""
from __future__ import annotations

import fcntl
import os
import re
import tempfile
from pathlib import Path
from typing import Any, Iterable

import torch

LOCK_DIR_NAME = "mixer-nas-device-locks"


class DeviceLock:
    """A cross-process reader/writer lock per device key, fair to writers (gate + lock files)."""

    def __init__(self, keys: Iterable[str], lock_dir: str | os.PathLike[str] | None = None):
        root = Path(lock_dir) if lock_dir is not None else Path(tempfile.gettempdir()) / LOCK_DIR_NAME
        root.mkdir(parents=True, exist_ok=True)
        names = sorted({re.sub(r"[^A-Za-z0-9_.-]", "_", k) for k in keys})  # sorted: one global order
        self._files = [(open(root / f"{n}.gate", "a+b"), open(root / f"{n}.lock", "a+b")) for n in names]

    def acquire_exclusive(self) -> None:
        self.release()
        for gate, lock in self._files:
            fcntl.flock(gate, fcntl.LOCK_EX)
            fcntl.flock(lock, fcntl.LOCK_EX)

    def acquire_shared(self) -> None:
        self.release()
        for gate, lock in self._files:
            fcntl.flock(gate, fcntl.LOCK_EX)  # queue behind a waiting writer
            fcntl.flock(lock, fcntl.LOCK_SH)
            fcntl.flock(gate, fcntl.LOCK_UN)

    def release(self) -> None:
        for gate, lock in reversed(self._files):
            fcntl.flock(lock, fcntl.LOCK_UN)
            fcntl.flock(gate, fcntl.LOCK_UN)

    def close(self) -> None:
        self.release()
        for gate, lock in self._files:
            gate.close()
            lock.close()


def device_lock_keys(device: torch.device, gpu_ids: list[str]) -> list[str]:
    """Keys naming the hardware a trial computes on: GPU UUID(s), or the node's CPUs."""
    if device.type != "cuda":
        return ["cpu"]
    uuids = [getattr(torch.cuda.get_device_properties(i), "uuid", None) for i in range(torch.cuda.device_count())]
    if uuids and all(uuids):
        return [f"gpu-{u}" for u in uuids]
    return [f"gpu-{g}" for g in gpu_ids]


def trial_device(gpu_ids: list[str]) -> torch.device:
    """CUDA when Ray gave the trial a GPU and CUDA works (not with fake GPUs), else CPU."""
    if gpu_ids and torch.cuda.is_available():
        return torch.device("cuda", 0)  # Ray sets CUDA_VISIBLE_DEVICES: index 0 is the trial's GPU
    return torch.device("cpu")


def _more_work_follows(metrics: dict[str, Any], epochs: int) -> bool:
    if metrics.get("phase") == "measure":
        return bool(metrics.get("feasible"))
    return int(metrics.get("epoch", 0)) < epochs


def train_candidate(config: dict[str, Any]) -> None:
    """Tune entry point: measure exclusively, then proxy-train, reporting every phase to Tune."""
    import ray
    from ray import tune

    from nas.trial.runner import run_trial

    gpu_ids = [str(g) for g in ray.get_gpu_ids()]
    device = trial_device(gpu_ids)
    lock = DeviceLock(device_lock_keys(device, gpu_ids), config.get("lock_dir"))
    epochs = int(config["recipe"]["epochs"])

    def report(metrics: dict[str, Any], weights_dir: str | None) -> None:
        lock.release()  # measurement or epoch done: never hold the device while Tune decides
        checkpoint = tune.Checkpoint.from_directory(weights_dir) if weights_dir else None
        tune.report(dict(metrics), checkpoint=checkpoint)
        if _more_work_follows(metrics, epochs):
            lock.acquire_shared()  # the next epoch
        return None

    lock.acquire_exclusive()
    try:
        run_trial(config, report, device=device)
    finally:
        lock.close()
