"""Reference models measured beside a search: the seed papers' own models, on the search's device.

At the start of a search (new or resumed) whose speed is measured at the reference models' design
resolution (224, the flagship ``hybrid_metaformer`` space), the driver looks up which reference
models (``REFERENCE_MODELS``; see ``backbones.references`` for the choice) the store already holds
for the search's device kind under the search's protocol, and measures the missing ones.  They are
measured exactly as every trial is: built at the target resolution as published (1000 classes, 3
channels), parameters and GMACs from ``backbones.flops.profile``, latency and throughput from
``nas.trial.measure.measure_speed`` with the search's ``MeasureSettings``, on the device a trial
would use, with that device's lock held exclusively (nothing else runs on it meanwhile).

The measuring runs as one Ray task with a trial's resources, before the first trial starts, so it
lands on a node (and device kind) where trials run.  A device kind already measured costs nothing:
a local search whose references are all stored starts no task.  The time is reported but not
charged to the search's budget (the measurements are shared by every later search on that device
kind).  A reference model that fails (out of memory on a small GPU, say) is reported in one line
and the search goes on; it is tried again by the next search.  ``nas search --no-references``
turns all of this off; spaces measured at other resolutions (the tiny ones) never start it.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable, Collection, Mapping, TextIO

import timm
import torch

from backbones.references import DEFAULT_REFERENCES, reference_label
from nas.device import compute_device, device_kind
from nas.references import references_apply
from nas.search.device_lock import DeviceLock, device_lock_keys
from nas.store import ReferenceMeasurement, SearchRecord, Store, record_reference, reference_measurements
from nas.trial.measure import measure_speed, profile_model
from nas.trial.measure_settings import MeasureSettings

__all__ = ["REFERENCE_MODELS", "ReferenceOutcome", "measure_reference", "measure_references",
           "measure_references_beside_search", "stored_kinds"]

REFERENCE_MODELS: tuple[str, ...] = DEFAULT_REFERENCES
WAIT_S = 5.0  # how often the driver's heartbeat runs while the reference task measures


@dataclass(frozen=True)
class ReferenceOutcome:
    """What one reference task did on its device: the new measurements and the models that failed."""

    device_kind: str
    measured: tuple[ReferenceMeasurement, ...]
    failed: tuple[tuple[str, str], ...]  # (model, one-line error)
    seconds: float


def measure_reference(name: str, device: torch.device, measure: MeasureSettings) -> ReferenceMeasurement:
    """One reference model, counted and timed like a trial (``measure.target_res`` is 224: see the gate)."""
    torch.manual_seed(0)
    model = timm.create_model(name, pretrained=False)  # as published: 224, 1000 classes, 3 channels
    flops = profile_model(model, measure.target_res)
    speed = measure_speed(model, device, measure)
    return ReferenceMeasurement(
        model=name, device_kind=device_kind(device), params=flops.params, gmacs=flops.gmacs,
        latency_ms=speed.latency_ms, latency_iqr_ms=speed.latency_iqr_ms, throughput=speed.throughput,
        throughput_iqr=speed.throughput_iqr, protocol=speed.protocol, uncounted_ops=tuple(sorted(flops.uncounted_ops)))


def measure_references(names: Collection[str], measure: MeasureSettings, skip: Mapping[str, Collection[str]],
                       device: torch.device, cpus: int = 1) -> ReferenceOutcome:
    """Measure every model of ``names`` not in ``skip[device kind]`` on ``device`` (Ray-free)."""
    started = time.monotonic()
    if device.type == "cpu":
        torch.set_num_threads(max(1, int(cpus)))  # as a trial does: the thread count is part of the device kind
    kind = device_kind(device)
    measured, failed = [], []
    for name in names:
        if name in skip.get(kind, ()):
            continue
        try:
            measured.append(measure_reference(name, device, measure))
        except Exception as exc:  # one model failing must not stop the others or the search
            failed.append((name, f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:300]))
        finally:
            if device.type == "cuda":
                torch.cuda.empty_cache()
    return ReferenceOutcome(kind, tuple(measured), tuple(failed), time.monotonic() - started)


def reference_task(names: list[str], measure: dict[str, Any], skip: dict[str, list[str]], cpus: float,
                   lock_dir: str | None) -> ReferenceOutcome:
    """Ray task body: the trial's device, its lock held exclusively while measuring."""
    import ray

    gpu_ids = [str(g) for g in ray.get_gpu_ids()]
    device = compute_device(gpu_ids)
    lock = DeviceLock(device_lock_keys(device, gpu_ids), lock_dir)
    lock.acquire_exclusive()
    try:
        return measure_references(names, MeasureSettings.from_dict(measure), skip, device, int(cpus))
    finally:
        lock.close()


def stored_kinds(store: Store, names: Collection[str], measure: MeasureSettings) -> dict[str, list[str]]:
    """Device kind -> the models of ``names`` already stored for it under ``measure``'s protocol."""
    kinds: dict[str, list[str]] = {}
    for m in reference_measurements(store, models=set(names), accept=measure.same_protocol):
        kinds.setdefault(m.device_kind, []).append(m.model)
    return kinds


def measure_references_beside_search(store: Store, search: SearchRecord, measure: MeasureSettings, *,
                                     gpus_per_trial: float, cpus_per_trial: float, lock_dir: str | None,
                                     out: TextIO | None, names: Collection[str] | None = None,
                                     heartbeat: Callable[[], bool] | None = None) -> ReferenceOutcome | None:
    """The driver's hook (Ray is connected): measure the missing reference models, store them, say so.

    ``heartbeat`` is called every ``WAIT_S`` while the task runs (it keeps the driver's lease on the
    search fresh); when it returns False (another driver took the search over) the task is cancelled.
    Returns what the task did, or None when nothing was measured (nothing needed, not at 224, abandoned).
    """
    names = list(REFERENCE_MODELS if names is None else names)
    if not names or not references_apply(measure):
        return None
    skip = stored_kinds(store, names, measure)
    if search.device_kind is not None and set(names) <= set(skip.get(search.device_kind, ())):
        _say(out, f"reference models: {len(names)} stored for {search.device_kind} (nas show-reference)")
        return None
    import ray

    missing = [n for n in names if n not in skip.get(search.device_kind or "", ())]
    _say(out, f"reference models: measuring {', '.join(missing)} on a trial's device first "
              f"(once per device kind; not charged to the budget)")
    task = ray.remote(num_cpus=cpus_per_trial, num_gpus=gpus_per_trial, max_retries=0)(reference_task)
    pending = task.remote(names, measure.to_dict(), skip, cpus_per_trial, lock_dir)
    try:
        while not ray.wait([pending], timeout=WAIT_S)[0]:
            if heartbeat is not None and not heartbeat():
                ray.cancel(pending, force=True)
                _say(out, "reference models: abandoned (another driver took the search over)")
                return None
        outcome: ReferenceOutcome = ray.get(pending)
    except ray.exceptions.RayError as exc:
        _say(out, f"reference models: not measured ({type(exc).__name__}: {str(exc).splitlines()[0]})")
        return None
    for measured in outcome.measured:
        record_reference(store, measured)
    done = ", ".join(f"{reference_label(m.model)} {m.throughput:,.0f} img/s" for m in outcome.measured)
    _say(out, f"reference models on {outcome.device_kind}: " + (f"{done} ({outcome.seconds:.0f} s)" if done else
                                                                 "all stored already"))
    for name, error in outcome.failed:
        _say(out, f"reference model {name} not measured: {error}")
    return outcome


def _say(out: TextIO | None, line: str) -> None:
    if out is not None:
        print(line, file=out, flush=True)
