"""Driver-side store writer: a search's trial events become rows in the SQL store, and budget charges.

Tune calls callbacks in the driver process, so the driver is the store's only writer, on one
machine and on a cluster alike (workers only report metrics and checkpoints).  ``SearchRecorder``
knows nothing of Ray and is unit-tested with fake events; ``nas.search.callback.StoreCallback``
only translates Tune's ``Trial`` objects into recorder calls.

Charging: a trial costs its wall time, from the moment Tune starts its actor to its end, times
the devices it holds (GPUs for a gpu budget, CPUs for a cpu budget; one unit for a trials
budget).  The running cost is written to the store at every result, so a driver killed with
SIGKILL leaves the time its trials used on record for ``--resume``.

The recorder also keeps the driver's lease on the search fresh (on every Tune step and after
its writes, at most every few seconds), and decides when the search must stop early: after
``max_consecutive_failures`` trials in a row failed with the same error (unreadable data, a
broken environment: more trials would only fail the same way), or when another driver took
the search over.  When the run ends, trials still in flight are recorded failed
("interrupted", re-queued on resume) with their time charged, at once rather than on resume.
"""
from __future__ import annotations

import re
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, TextIO

from nas.budget import BudgetTracker, device_hours
from nas.formatting import fmt
from nas.front import RunningSummary
from nas.objectives import Outcome
from nas.search.ownership import LeaseKeeper
from nas.search.paths import inside, search_dir
from nas.search.report import format_progress
from nas.store import EPOCH_METRICS, Measurement, SearchRecord, Store, TrialRecord, TrialStatus
from nas.trial.measure_settings import MeasureSettings
from nas.trial.progress import EPOCH_PHASE, MEASURE_PHASE, TrialProgress
from nas.trial.recipe import ProxyRecipe
from nas.trial.runner import WEIGHTS_FILE
from search_spaces import Architecture

HEARTBEAT_S = 60.0
INTERRUPTED_ERROR = "interrupted: the search driver stopped before this trial ended (re-queued on resume)"
LOST_PREFIX = "lost with its Ray worker or node"
# Ray's errors for a trial whose process or node went away under it (the trial itself did not fail)
_WORKER_LOST = re.compile(r"(ActorDiedError|ActorUnavailableError|NodeDiedError|WorkerCrashedError|OwnerDiedError|"
                          r"RayActorError): ")


def left_without_outcome(trial: TrialRecord) -> bool:
    """A row that says nothing about its architecture: interrupted, or lost with its worker or node
    (queued again; a resumed search does the same)."""
    return trial.status == TrialStatus.FAILED and (trial.error == INTERRUPTED_ERROR
                                                   or (trial.error or "").startswith(LOST_PREFIX))


def failure_signature(message: str) -> str:
    """What makes two trial errors "the same": the text with numbers and quoted values blanked
    (a corrupt image names a different file in each trial)."""
    text = re.sub(r"'[^']*'|\"[^\"]*\"", "'…'", message)
    return re.sub(r"\d+(\.\d+)?", "#", text)


def final_status(progress: TrialProgress, epochs_planned: int) -> TrialStatus:
    """Store status of a trial that ended without an exception.

    Infeasible: it failed a speed constraint (or never reported a measurement).  Stopped: the
    scheduler (ASHA) ended it before its last epoch.  Completed: it trained every epoch.
    """
    if not progress.feasible:
        return TrialStatus.INFEASIBLE
    return TrialStatus.COMPLETED if progress.epochs_done >= epochs_planned else TrialStatus.STOPPED


def charged_devices(budget_kind: str, gpus_per_trial: float, cpus_per_trial: float) -> float:
    """Devices a trial's wall time is multiplied by: GPUs for gpu budgets, CPUs for cpu budgets.

    A trials budget counts trials; its device-hours (for reports) use GPUs when it has any.
    """
    if budget_kind == "gpu" or (budget_kind == "trials" and gpus_per_trial > 0):
        return float(gpus_per_trial)
    return float(cpus_per_trial)


@dataclass(frozen=True)
class Reused:
    """A free trial row copying an earlier result, and what it tells the strategy (infeasible here
    when its measurement breaks this search's limits)."""

    trial_id: int
    outcome: Outcome | None


@dataclass
class _Running:
    store_id: int
    started: float
    devices: float
    arch_hash: str = ""
    progress: TrialProgress = field(default_factory=TrialProgress)


class SearchRecorder:
    """Writes one search's trials to the store and charges the budget; shared by searcher and callback."""

    def __init__(self, store: Store, search: SearchRecord, tracker: BudgetTracker, *, artifacts_dir: Path,
                 recipe: ProxyRecipe, measure: MeasureSettings, gpus_per_trial: float, cpus_per_trial: float,
                 device_kind: str | None, out: TextIO | None = sys.stdout,
                 clock: Callable[[], float] = time.monotonic, lease: LeaseKeeper | None = None,
                 max_consecutive_failures: int = 0):
        self.store = store
        self.search = search
        self.tracker = tracker
        self.weights_dir = search_dir(Path(artifacts_dir), search.name)  # stored name: checked, kept inside
        self.lease = lease
        self.max_consecutive_failures = max_consecutive_failures
        self.stop_reason: str | None = None  # why the search must stop now (None: it may go on)
        self._failure_streak: tuple[str, int] = ("", 0)
        self.recipe = recipe
        self.measure = measure
        self.devices = charged_devices(tracker.budget.kind, gpus_per_trial, cpus_per_trial)
        self.device_kind = device_kind
        self.out = out
        self.clock = clock
        self.started_at = clock()
        self._last_line_at = self.started_at
        self._running: dict[str, _Running] = {}
        self.trial_seconds = 0.0  # wall time of this run's trials, summed (for the utilisation report)
        self._summary: RunningSummary | None = None  # what the progress lines show, kept up to date
        self.failure_listener: Callable[[str, bool], None] | None = None  # (tune id, lost) of each failure
        self._lost_before: set[str] | None = None  # architectures already lost once

    # ---- reuse (called by the searcher before a trial is launched) ----------------------------

    def reuse(self, arch: Architecture, seed_name: str | None) -> Reused | None:
        """Record a free trial copying an earlier result for ``arch``, or None if there is none.

        A result is reusable when it was trained with this recipe and measured on this device
        kind with this protocol (resolution and batch sizes); this search's speed constraints
        are applied to its measurement.
        """
        if self.device_kind is None:  # cluster: unknown until the first trial reports its device
            return None
        source = self.store.find_reusable(arch.to_dict(), self.recipe.to_dict(), self.device_kind,
                                          accept=lambda t: self.measure.same_protocol(t.protocol))
        if source is None:
            return None
        trial_id = self.store.record_reuse(self.search.id, source.id, seed_name=seed_name)
        violation = self.measure.violation(source.latency_ms, source.throughput)
        if violation is not None:
            self.store.finish_trial(trial_id, TrialStatus.INFEASIBLE, error=f"reused measurement: {violation}")
            self._say(f"trial {trial_id} reused trial {source.id}: infeasible here ({violation}): {arch.label()}",
                      changed=trial_id)
            return Reused(trial_id, Outcome.infeasible(throughput=source.throughput, latency_ms=source.latency_ms))
        self._say(f"trial {trial_id} reused trial {source.id} ({source.status}, acc "
                  f"{fmt(source.accuracy, '.3f')}): {arch.label()}", changed=trial_id)
        return Reused(trial_id, Outcome.from_record(source))

    # ---- Tune events ----------------------------------------------------------------------------

    def trial_started(self, tune_id: str, config: dict) -> None:
        store_id = self.store.start_trial(
            self.search.id, arch=config["arch"], recipe=config["recipe"], tune_trial_id=tune_id,
            seed_name=config.get("seed_name"), devices_held=self.devices)
        self._running[tune_id] = _Running(store_id, self.clock(), self.devices,
                                          arch_hash=Architecture.from_dict(config["arch"]).hash)
        self._keep_lease()
        seed = f" (seed {config['seed_name']})" if config.get("seed_name") else ""
        self._say(f"trial {store_id} started{seed}: {Architecture.from_dict(config['arch']).label()}", changed=store_id)

    def trial_result(self, tune_id: str, result: dict) -> None:
        trial = self._running.get(tune_id)
        if trial is None:
            return
        hours = device_hours(self.clock() - trial.started, trial.devices)
        trial.progress.observe(result)
        if result.get("phase") == MEASURE_PHASE:
            self._record_measurement(trial, Measurement.from_report(result), hours)
        elif result.get("phase") == EPOCH_PHASE:
            self.store.record_epoch(trial.store_id, int(result["epoch"]),
                                    {k: result.get(k) for k in EPOCH_METRICS},
                                    best_accuracy=trial.progress.best_accuracy, device_hours=hours)
        else:
            self.store.set_device_hours(trial.store_id, hours)
        self._keep_lease()

    def trial_completed(self, tune_id: str, checkpoint_dir: str | None) -> TrialStatus | None:
        """A trial ended without an exception (trained out, stopped by ASHA, or infeasible)."""
        trial = self._running.pop(tune_id, None)
        if trial is None:
            return None
        status = final_status(trial.progress, self.recipe.epochs)
        weights = self._keep_weights(trial.store_id, checkpoint_dir) if status != TrialStatus.INFEASIBLE else None
        wall_s = self._charge(trial)
        best = trial.progress.best_accuracy
        self.store.finish_trial(trial.store_id, status, device_hours=device_hours(wall_s, trial.devices),
                                accuracy=best, weights_path=weights)
        detail = (f"acc {fmt(best, '.3f')} after {trial.progress.epochs_done} epoch(s)"
                  if status != TrialStatus.INFEASIBLE else "speed constraint not met")
        self._failure_streak = ("", 0)
        self._keep_lease()
        self._say(f"trial {trial.store_id} {status} in {wall_s:.0f}s: {detail}", changed=trial.store_id)
        return status

    def trial_failed(self, tune_id: str, config: dict, message: str) -> None:
        """A trial raised (or its worker died): recorded failed with its error; its time is charged.

        A trial lost with its Ray worker or node (a machine of the pool died) is recorded failed as
        ``lost ...`` and queued again (``failure_listener``), once per architecture: a second loss
        is its own failure (a model that gets its worker killed, say by the out-of-memory killer).
        A lost trial does not count towards a trials budget or a failure streak.
        """
        if tune_id not in self._running:  # failed before it started: recorded, charged ~nothing
            self.trial_started(tune_id, config)
        trial = self._running.pop(tune_id)
        lost = self._first_loss(trial, message)
        wall_s = self._charge(trial, counts=not lost)
        error = f"{LOST_PREFIX} ({message}); queued again" if lost else message
        self.store.finish_trial(trial.store_id, TrialStatus.FAILED, device_hours=device_hours(wall_s, trial.devices),
                                accuracy=trial.progress.best_accuracy, error=error)
        self._keep_lease()
        self._say(f"trial {trial.store_id} {'lost' if lost else 'failed'} in {wall_s:.0f}s: {error if lost else message}",
                  changed=trial.store_id)
        if not lost:
            self._count_failure(message)
        if self.failure_listener is not None:
            self.failure_listener(tune_id, lost)

    def heartbeat(self) -> None:
        """Called on every Tune step: keep the lease fresh; a progress line when nothing else was
        printed for a while."""
        self._keep_lease()
        if self.clock() - self._last_line_at >= HEARTBEAT_S:
            self._say("running")

    # ---- state --------------------------------------------------------------------------------

    @property
    def running(self) -> int:
        return len(self._running)

    def progress_line(self, event: str) -> str:
        if self._summary is None:  # the first line reads the search once (earlier runs' trials included)
            self._summary = RunningSummary(self.store.trials(search=self.search.name))
        return format_progress(self._summary.stats(), self.clock() - self.started_at, self.tracker.format(), event)

    def finish(self, status) -> None:
        """End of this driver's run: in-flight trials are recorded interrupted (their time charged),
        then the search gets ``status`` and the driver's lease is released.  A driver whose search
        was taken over writes nothing more."""
        if self.lease is not None and self.lease.lost:
            return
        for tune_id in list(self._running):
            trial = self._running.pop(tune_id)
            wall_s = self._charge(trial)
            self.store.finish_trial(trial.store_id, TrialStatus.FAILED, accuracy=trial.progress.best_accuracy,
                                    device_hours=device_hours(wall_s, trial.devices), error=INTERRUPTED_ERROR)
        self.store.mark_running_as_failed(self.search.id, INTERRUPTED_ERROR)
        if self.lease is None:
            self.store.update_search(self.search.name, status=status, charged=self.tracker.charged)
        else:
            self.lease.release(status=status, charged=self.tracker.charged)

    # ---- internals ----------------------------------------------------------------------------

    def _record_measurement(self, trial: _Running, m: Measurement, hours: float) -> None:
        self.store.record_measurement(trial.store_id, m, device_hours=hours)
        if self.device_kind is None and m.device_kind:
            self.device_kind = m.device_kind
            self.store.update_search(self.search.name, device_kind=self.device_kind)
        verdict = "" if m.feasible else f", infeasible ({m.violation})"
        self._say(f"trial {trial.store_id} measured: {fmt(m.throughput, '.4g')} img/s, "
                  f"{fmt(m.latency_ms, '.3g')} ms, {fmt(m.params, '.2f', 1e-6)}M params, "
                  f"{fmt(m.gmacs, '.3g')} GMACs{verdict}")

    def _count_failure(self, message: str) -> None:
        signature, count = self._failure_streak
        count = count + 1 if failure_signature(message) == signature else 1
        self._failure_streak = (failure_signature(message), count)
        if self.max_consecutive_failures and count >= self.max_consecutive_failures and self.stop_reason is None:
            self.stop_reason = (f"the last {count} trials failed with the same error ({message}); fix its cause, "
                                f"then resume (--max-consecutive-failures sets the limit)")
            self._say(f"stopping: {self.stop_reason}")

    def _keep_lease(self) -> None:
        if self.lease is not None and not self.lease.beat() and self.stop_reason is None:
            owner = self.store.search_lease(self.search.name)
            self.stop_reason = ("another driver took this search over"
                                + (f" ({owner.describe()})" if owner is not None else "")
                                + "; this driver stops without writing more")
            self._say(f"stopping: {self.stop_reason}")

    def _first_loss(self, trial: _Running, message: str) -> bool:
        """Whether the trial was lost with its worker or node, for the first time for its architecture."""
        if not _WORKER_LOST.search(message):
            return False
        if self._lost_before is None:  # once per run: losses recorded by earlier runs of the search
            self._lost_before = {t.arch_hash for t in self.store.trials(search=self.search.name)
                                 if (t.error or "").startswith(LOST_PREFIX)}
        if trial.arch_hash in self._lost_before:
            return False
        self._lost_before.add(trial.arch_hash)
        return True

    def _charge(self, trial: _Running, counts: bool = True) -> float:
        """Charge the trial's device time (``counts`` False: not as a trial of a trials budget)."""
        wall_s = max(self.clock() - trial.started, 0.0)
        self.trial_seconds += wall_s
        if counts or self.tracker.budget.kind != "trials":
            self.tracker.charge_trial(wall_s, trial.devices)
        self.store.update_search(self.search.name, charged=self.tracker.charged)
        return wall_s

    def _keep_weights(self, store_id: int, checkpoint_dir: str | None) -> str | None:
        """Copy the last checkpoint's weights to ``ARTIFACTS/<search>/<trial id>.safetensors``."""
        source = Path(checkpoint_dir) / WEIGHTS_FILE if checkpoint_dir else None
        if source is None or not source.is_file():
            return None
        self.weights_dir.mkdir(parents=True, exist_ok=True)
        target = inside(self.weights_dir, f"{store_id}.safetensors", what="weights file")
        shutil.copyfile(source, target)
        return str(target.resolve())

    def _say(self, event: str, changed: int | None = None) -> None:
        """Print a progress line; ``changed``: the trial just written (re-read alone, not the whole search)."""
        self._last_line_at = self.clock()
        if self.out is None:
            return
        if changed is not None and self._summary is not None:
            record = self.store.trial(changed, with_epochs=False)
            if record is not None:
                self._summary.update(record)
        print(self.progress_line(event), file=self.out, flush=True)
