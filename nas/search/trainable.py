"""The Ray Tune function trainable: one candidate architecture per trial, wrapping ``run_trial``
under the per-device measurement lock (see ``nas.search.device_lock``).

With ``MIXER_NAS_TABULAR`` set (test-only, ``nas.search.tabular``) the trial is answered from a
replay file instead of ``run_trial``: same locks, same reports, no model.  Torch and the trial
runner are imported only for real trials, so a simulated trial process stays light.
"""
from __future__ import annotations

from typing import Any, Callable

from nas.search.device_lock import DeviceLock, lock_dir
from nas.search.tabular import SimulatedTrial, replay_book
from nas.trial.progress import MEASURE_PHASE


def _more_work_follows(metrics: dict[str, Any], epochs: int) -> bool:
    if metrics.get("phase") == MEASURE_PHASE:
        return bool(metrics.get("feasible"))
    return int(metrics.get("epoch", 0)) < epochs


def _real_trial(gpu_ids: list[str]) -> tuple[list[str], Callable[[dict[str, Any], Any], None]]:
    """Lock keys and body of a real trial: measure and train on the device Ray assigned."""
    from nas.device import compute_device
    from nas.search.device_lock import device_lock_keys
    from nas.trial.runner import run_trial

    device = compute_device(gpu_ids)
    return device_lock_keys(device, gpu_ids), lambda config, report: run_trial(config, report, device=device)


def train_candidate(config: dict[str, Any]) -> None:
    """Tune entry point: measure exclusively, then proxy-train, reporting every phase to Tune."""
    import ray
    from ray import tune

    gpu_ids = [str(g) for g in ray.get_gpu_ids()]
    book = replay_book()
    simulated = None if book is None else SimulatedTrial(
        book, config, node_id=ray.get_runtime_context().get_node_id(), gpu_ids=gpu_ids,
        trial_id=tune.get_context().get_trial_id(), run=tune.get_context().get_experiment_name())
    keys, body = (simulated.lock_keys, simulated.run_trial) if simulated else _real_trial(gpu_ids)
    lock = DeviceLock(keys, config.get("lock_dir"))
    epochs = int(config["recipe"]["epochs"])

    def report(metrics: dict[str, Any], weights_dir: str | None) -> None:
        lock.release()  # measurement or epoch done: never hold the device while Tune decides
        checkpoint = tune.Checkpoint.from_directory(weights_dir) if weights_dir else None
        tune.report(dict(metrics), checkpoint=checkpoint)
        if _more_work_follows(metrics, epochs):
            lock.acquire_shared()  # the next epoch
        return None

    if simulated:
        simulated.begin(lock_dir(config.get("lock_dir")))
    returned = False
    lock.acquire_exclusive()
    try:
        body(config, report)
        returned = True
    finally:
        lock.close()
        if simulated:
            simulated.end(returned)
