"""MO-ASHA: asynchronous successive halving whose rungs rank trials by accuracy *and* speed.

Plain ASHA promotes a trial past a rung (1, 3, 9 ... epochs) when its validation accuracy is in
the top 1/``reduction_factor`` of the accuracies recorded at that rung, so a model three times
faster and a point less accurate after one epoch is stopped, and the fast end of the
accuracy/speed front is starved.  Here the trials at a rung are ranked as points (accuracy at the
rung, speed measured before training), both maximised, speed being log10 throughput or minus
log10 batch-1 latency (``nas.objectives.SpeedObjective``):

1. by non-dominated sorting (front 0 first, then front 1, ...);
2. within a front by an epsilon-net (Salinas et al. 2021; Schmucker et al. 2021): the most
   accurate point first, then repeatedly the point farthest (Euclidean, each objective scaled to
   the rung's range) from those already taken, so the promoted share spreads along the front
   instead of crowding at one end.

A trial reaching a rung continues when its position in that order, among the trials recorded at
the rung before it plus itself, is within the top n/``reduction_factor``; the first trial at a
rung always continues (as in ASHA, decisions are final and never revisited).  The speed comes
from the trial's ``measure`` report, which every trial sends before its first epoch.  A resumed
search refills the rungs from the store (``MOASHAScheduler.restore``), so its decisions go on
from where the killed run left them.  The order and its incremental form live in ``nas.search.rung``.
"""
from __future__ import annotations

import math
from typing import Any, Iterable

from ray.tune.schedulers import FIFOScheduler, TrialScheduler

from nas.objectives import Outcome, SpeedObjective
from nas.search.rung import Point, Rung, epsilon_net_order, promotes, promotion_order
from nas.store.records import TrialRecord
from nas.trial.progress import MEASURE_PHASE, TrialProgress

__all__ = ["MOASHAScheduler", "epsilon_net_order", "promotes", "promotion_order", "rung_milestones"]


def rung_milestones(grace_period: int, reduction_factor: float, max_t: int) -> list[float]:
    """Rung levels, ascending: grace_period x reduction_factor^k up to ``max_t`` (ASHA's rungs)."""
    count = int(math.log(max_t / grace_period) / math.log(reduction_factor) + 1)
    return [grace_period * reduction_factor ** k for k in range(count)]


class MOASHAScheduler(FIFOScheduler):
    """Ray Tune scheduler: MO-ASHA over ``metric`` (maximised) and the measured speed.

    Reports must carry ``time_attr`` (epochs) and ``metric``; the ``measure`` phase report carries
    the speed (``throughput``, ``latency_ms``).  Like ASHA with ``stop_last_trials``, a trial
    reaching ``max_t`` is told to stop (it has trained every epoch).
    """

    def __init__(self, *, max_t: int, grace_period: int = 1, reduction_factor: float = 3,
                 objective: SpeedObjective = SpeedObjective.THROUGHPUT, time_attr: str = "epoch",
                 metric: str = "val_accuracy"):
        if not (isinstance(max_t, int) and isinstance(grace_period, int) and 0 < grace_period <= max_t):
            raise ValueError(f"MO-ASHA needs integers 0 < grace_period <= max_t, got {grace_period} and {max_t}")
        if not reduction_factor > 1:
            raise ValueError(f"MO-ASHA needs reduction_factor > 1, got {reduction_factor}")
        super().__init__()
        self._metric = metric
        self._time_attr = time_attr
        self._max_t = max_t
        self._reduction_factor = float(reduction_factor)
        self._objective = SpeedObjective(objective)
        self._rungs: dict[float, Rung] = {m: Rung() for m in rung_milestones(grace_period, reduction_factor, max_t)}
        self._progress: dict[str, TrialProgress] = {}  # what each running trial has reported (its speed)
        self._num_stopped = 0

    @property
    def objective(self) -> SpeedObjective:
        return self._objective

    def rung_points(self, milestone: float) -> dict[str, Point]:
        """The points recorded at a rung, by trial id (a copy)."""
        return dict(self._rungs[milestone].points)

    def set_search_properties(self, metric: str | None, mode: str | None, **spec: Any) -> bool:
        return metric in (None, self._metric) and mode in (None, "max")

    def on_trial_add(self, tune_controller: Any, trial: Any) -> None:
        self._progress[trial.trial_id] = TrialProgress()

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict) -> str:
        progress = self._progress.setdefault(trial.trial_id, TrialProgress())
        progress.observe(result)
        if result.get("phase") == MEASURE_PHASE or self._time_attr not in result or self._metric not in result:
            return TrialScheduler.CONTINUE
        if result[self._time_attr] >= self._max_t:
            self._num_stopped += 1
            return TrialScheduler.STOP
        rung = self._open_rung(trial.trial_id, result[self._time_attr])
        if rung is None:
            return TrialScheduler.CONTINUE
        point = self._point(progress, result[self._metric])
        action = TrialScheduler.CONTINUE if rung.promotes(point, self._reduction_factor) else TrialScheduler.STOP
        rung.add(trial.trial_id, point)
        if action == TrialScheduler.STOP:
            self._num_stopped += 1
        return action

    def on_trial_complete(self, tune_controller: Any, trial: Any, result: dict | None) -> None:
        progress = self._progress.pop(trial.trial_id, None)
        result = result or {}
        if (progress is None or result.get("phase") == MEASURE_PHASE or self._time_attr not in result
                or self._metric not in result):
            return
        rung = self._open_rung(trial.trial_id, result[self._time_attr])
        if rung is not None:  # a trial that trained to the end still informs later decisions
            rung.add(trial.trial_id, self._point(progress, result[self._metric]))

    def on_trial_error(self, tune_controller: Any, trial: Any) -> None:
        self._progress.pop(trial.trial_id, None)

    def on_trial_remove(self, tune_controller: Any, trial: Any) -> None:
        self._progress.pop(trial.trial_id, None)

    def restore(self, trials: Iterable[TrialRecord]) -> int:
        """Refill the rungs from trials an earlier run of the search trained (``--resume``), as if
        this scheduler had seen them: each trial's accuracy at every rung its epochs reached, with
        its measured speed.  Trials need their epochs (``Store.trial``); reused rows never went
        through a scheduler and are skipped.  Returns how many trials were restored."""
        restored = 0
        for trial in trials:
            if trial.reused or not trial.epochs:
                continue
            progress = TrialProgress()
            progress.observe({"phase": MEASURE_PHASE, "feasible": True, "throughput": trial.throughput,
                              "latency_ms": trial.latency_ms})
            accuracy_at = {e.epoch: e.val_accuracy for e in trial.epochs}
            reached = [m for m in self._rungs if int(m) in accuracy_at and accuracy_at[int(m)] is not None]
            for milestone in reached:
                self._rungs[milestone].add(f"stored:{trial.id}", self._point(progress, accuracy_at[int(milestone)]))
            restored += bool(reached)
        return restored

    def _open_rung(self, trial_id: str, time: float) -> Rung | None:
        """The highest rung reached by ``time`` where this trial is not recorded yet (None: no rung to decide)."""
        for milestone in sorted(self._rungs, reverse=True):
            if time >= milestone and trial_id not in self._rungs[milestone].points:
                return self._rungs[milestone]
        return None

    def _point(self, progress: TrialProgress, accuracy: Any) -> Point:
        """(accuracy at the rung, speed objective); an unusable accuracy or unknown speed ranks last."""
        if isinstance(accuracy, bool) or not isinstance(accuracy, (int, float)) or not math.isfinite(accuracy):
            return -math.inf, -math.inf
        values = Outcome.trained(float(accuracy), throughput=progress.throughput,
                                 latency_ms=progress.latency_ms).values(self._objective)
        return values if values is not None else (float(accuracy), -math.inf)

    def debug_string(self) -> str:
        rungs = ", ".join(f"{m:g}: {len(r)}" for m, r in sorted(self._rungs.items()))
        return f"Using MO-ASHA ({self._objective} objective): {self._num_stopped} stopped; trials per rung {rungs}"
