"""Driver-side store writer of a refinement run: Tune's trial events become ``refinements`` rows.

It answers the same calls as ``SearchRecorder`` (``StoreCallback`` and ``RecorderStopper`` drive
either), but writes each Tune trial to the refinement of the trial named by its config's
``refines`` key, never to the search's trials, and charges no budget: a refinement's device time
is recorded on its own row.  The measurement phase every trial starts with is not recorded (the
trial's own measurement stands); only the device kind it ran on is kept.  Knows nothing of Ray.
"""
from __future__ import annotations

import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, TextIO

from nas.budget import device_hours
from nas.formatting import fmt
from nas.search.paths import inside
from nas.search.recorder import final_status
from nas.store import (EPOCH_METRICS, Store, TrialStatus, finish_refinement, record_refinement_epoch,
                       start_refinement)
from nas.trial.progress import EPOCH_PHASE, MEASURE_PHASE, TrialProgress
from nas.trial.runner import WEIGHTS_FILE

REFINES_KEY = "refines"  # config key: the id of the trial a Tune trial retrains
INTERRUPTED = "interrupted: nas refine stopped before this refinement ended (the next nas refine trains it again)"


@dataclass
class _Running:
    refinement_id: int
    trial_id: int
    started: float
    device_kind: str | None = None
    progress: TrialProgress = field(default_factory=TrialProgress)


class RefineRecorder:
    """Writes the refinements of one refine run; ``weights_dir``: where refined weights are kept."""

    def __init__(self, store: Store, *, epochs: int, devices: float, weights_dir: Path,
                 out: TextIO | None = sys.stdout, clock: Callable[[], float] = time.monotonic):
        self.store = store
        self.epochs = epochs
        self.devices = devices
        self.weights_dir = weights_dir
        self.out = out
        self.clock = clock
        self.stop_reason: str | None = None  # never set: a refine runs its fixed list to the end
        self.finished: dict[int, TrialStatus] = {}  # trial id -> how its refinement ended in this run
        self._running: dict[str, _Running] = {}

    @property
    def running(self) -> int:
        return len(self._running)

    def trial_started(self, tune_id: str, config: dict) -> None:
        trial_id = int(config[REFINES_KEY])
        refinement_id = start_refinement(self.store, trial_id, config["recipe"], tune_trial_id=tune_id,
                                         devices_held=self.devices)
        self._running[tune_id] = _Running(refinement_id, trial_id, self.clock())
        self._say(f"refining trial {trial_id} at {self.epochs} epochs (refinement {refinement_id})")

    def trial_result(self, tune_id: str, result: dict) -> None:
        run = self._running.get(tune_id)
        if run is None:
            return
        run.progress.observe(result)
        if result.get("phase") == MEASURE_PHASE:
            run.device_kind = result.get("device_kind") or run.device_kind
        elif result.get("phase") == EPOCH_PHASE:
            record_refinement_epoch(self.store, run.refinement_id, int(result["epoch"]),
                                    {k: result.get(k) for k in EPOCH_METRICS},
                                    best_accuracy=run.progress.best_accuracy, device_hours=self._hours(run),
                                    device_kind=run.device_kind)

    def trial_completed(self, tune_id: str, checkpoint_dir: str | None) -> TrialStatus | None:
        run = self._running.pop(tune_id, None)
        if run is None:
            return None
        status = final_status(run.progress, self.epochs)
        error = None
        if status == TrialStatus.INFEASIBLE:  # the refine measures without limits: only a broken measurement
            status, error = TrialStatus.FAILED, "the speed measurement before training failed"
        weights = self._keep_weights(run, checkpoint_dir) if status == TrialStatus.COMPLETED else None
        finish_refinement(self.store, run.refinement_id, status, accuracy=run.progress.best_accuracy,
                          device_hours=self._hours(run), error=error, weights_path=weights)
        self.finished[run.trial_id] = status
        self._say(f"trial {run.trial_id} refined: {status}, acc {fmt(run.progress.best_accuracy, '.3f')} after "
                  f"{run.progress.epochs_done} epoch(s)")
        return status

    def trial_failed(self, tune_id: str, config: dict, message: str) -> None:
        if tune_id not in self._running:  # failed before it started
            self.trial_started(tune_id, config)
        run = self._running.pop(tune_id)
        finish_refinement(self.store, run.refinement_id, TrialStatus.FAILED, accuracy=run.progress.best_accuracy,
                          device_hours=self._hours(run), error=message)
        self.finished[run.trial_id] = TrialStatus.FAILED
        self._say(f"trial {run.trial_id} refinement failed: {message}")

    def heartbeat(self) -> None:
        """Called on every Tune step (a search renews its lease here; a refine holds none)."""

    def finish(self) -> None:
        """End of the run: refinements still in flight are recorded failed ("interrupted"), retrained next time."""
        for tune_id in list(self._running):
            run = self._running.pop(tune_id)
            finish_refinement(self.store, run.refinement_id, TrialStatus.FAILED, accuracy=run.progress.best_accuracy,
                              device_hours=self._hours(run), error=INTERRUPTED)
            self.finished[run.trial_id] = TrialStatus.FAILED

    def _hours(self, run: _Running) -> float:
        return device_hours(max(self.clock() - run.started, 0.0), self.devices)

    def _keep_weights(self, run: _Running, checkpoint_dir: str | None) -> str | None:
        """Copy the best epoch's weights to ``WEIGHTS_DIR/<trial id>-<epochs>ep.safetensors``."""
        source = Path(checkpoint_dir) / WEIGHTS_FILE if checkpoint_dir else None
        if source is None or not source.is_file():
            return None
        self.weights_dir.mkdir(parents=True, exist_ok=True)
        target = inside(self.weights_dir, f"{run.trial_id}-{self.epochs}ep.safetensors", what="weights file")
        shutil.copyfile(source, target)
        return str(target.resolve())

    def _say(self, line: str) -> None:
        if self.out is not None:
            print(line, file=self.out, flush=True)
