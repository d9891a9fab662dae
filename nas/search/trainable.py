"""The Ray Tune function trainable: one candidate architecture per trial, wrapping ``run_trial``
under the per-device measurement lock (see ``nas.search.device_lock``)."""
from __future__ import annotations

from typing import Any

from nas.device import compute_device
from nas.search.device_lock import DeviceLock, device_lock_keys
from nas.trial.progress import MEASURE_PHASE


def _more_work_follows(metrics: dict[str, Any], epochs: int) -> bool:
    if metrics.get("phase") == MEASURE_PHASE:
        return bool(metrics.get("feasible"))
    return int(metrics.get("epoch", 0)) < epochs


def train_candidate(config: dict[str, Any]) -> None:
    """Tune entry point: measure exclusively, then proxy-train, reporting every phase to Tune."""
    import ray
    from ray import tune

    from nas.trial.runner import run_trial

    gpu_ids = [str(g) for g in ray.get_gpu_ids()]
    device = compute_device(gpu_ids)
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
