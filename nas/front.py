"""The accuracy-vs-throughput Pareto front, its hypervolume, and a search's summary statistics.

One home for "what did this search find", used by the progress lines, the end-of-search report,
``nas pareto``, the dashboard, export (``--best``/``--pareto``) and the benchmarks.

By default the front is made of trials that reached the final fidelity (trained every epoch:
``completed``); an early-stopped trial's accuracy comes from fewer epochs, so it is not
comparable with theirs and would sit on the front only by being measured at a lower fidelity.
``include_stopped=True`` adds them (``nas pareto --include-stopped``, the dashboard's toggle).

Hypervolume is measured in (log10 throughput, accuracy) space against a fixed reference point
(``ref_throughput`` img/s, accuracy 0), so values from different moments of a search (or different
searches on the same device) are comparable.  Log throughput because throughputs of candidate
architectures span orders of magnitude.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterable, Sequence

from nas.store.records import TrialRecord, TrialStatus


def on_front_candidate(trial: TrialRecord, include_stopped: bool = False) -> bool:
    """A usable trial at the final fidelity (completed), or also an early-stopped one if asked."""
    return trial.usable and (trial.status == TrialStatus.COMPLETED or include_stopped)


def pareto_front(trials: Iterable[TrialRecord], include_stopped: bool = False) -> list[TrialRecord]:
    """Non-dominated trials (maximise accuracy and throughput) among the front candidates, sorted
    by throughput.

    Reused rows that copy another trial's result count once (the first occurrence).
    """
    seen, points = set(), []
    for t in trials:
        if not on_front_candidate(t, include_stopped):
            continue
        key = (t.arch_hash, t.recipe_hash, t.accuracy, t.throughput)
        if key in seen:
            continue
        seen.add(key)
        points.append(t)
    points.sort(key=lambda t: (-t.throughput, -t.accuracy))
    front, best_acc = [], -math.inf
    for t in points:
        if t.accuracy > best_acc:
            front.append(t)
            best_acc = t.accuracy
    return sorted(front, key=lambda t: t.throughput)


def hypervolume(trials: Iterable[TrialRecord], ref_throughput: float = 1.0, ref_accuracy: float = 0.0,
                include_stopped: bool = False) -> float:
    """Area dominated by the front in (log10 throughput, accuracy) space above the reference point."""
    points = [(t.throughput, t.accuracy) for t in pareto_front(trials, include_stopped)]
    return hypervolume_2d(points, ref_throughput, ref_accuracy)


def hypervolume_2d(points: Iterable[tuple[float, float]], ref_throughput: float = 1.0,
                   ref_accuracy: float = 0.0) -> float:
    """Hypervolume of (throughput, accuracy) points, both maximised, throughput on a log10 axis."""
    front: list[tuple[float, float]] = []
    for x, y in sorted(((x, y) for x, y in points if x > ref_throughput and y > ref_accuracy), key=lambda p: -p[0]):
        if not front or y > front[-1][1]:
            front.append((x, y))
    # Walking from the fastest point down, each point adds the strip between its throughput and the
    # previous (faster) point's, up to its accuracy above the best accuracy seen so far.
    area, covered = 0.0, ref_accuracy
    for x, y in front:
        area += (math.log10(x) - math.log10(ref_throughput)) * (y - covered)
        covered = y
    return area


def hypervolume_history(trials: Sequence[TrialRecord], ref_throughput: float = 1.0,
                        include_stopped: bool = False) -> list[tuple[float, float]]:
    """(cumulative device-hours, hypervolume) after each finished trial, in finishing order."""
    done = sorted((t for t in trials if t.finished_at), key=lambda t: t.finished_at)
    out, hours = [], 0.0
    running = RunningSummary(include_stopped=include_stopped)  # the front so far, one trial at a time
    for t in done:
        hours += float(t.device_hours or 0.0)
        running.update(t)
        out.append((hours, running.hypervolume(ref_throughput)))
    return out


def best_trial(trials: Iterable[TrialRecord]) -> TrialRecord | None:
    """The scored trial with the best accuracy (ties: the faster one)."""
    return max((t for t in trials if t.scored), key=lambda t: (t.accuracy, t.throughput or 0.0), default=None)


@dataclass(frozen=True)
class SearchStats:
    """Counts and results of a search's stored trials at one moment."""

    trials: int
    by_status: dict[str, int] = field(default_factory=dict)
    reused: int = 0
    best_accuracy: float | None = None  # 0..1
    best_trial: int | None = None
    front_size: int = 0
    hypervolume: float = 0.0

    def count(self, status: TrialStatus) -> int:
        return self.by_status.get(status.value, 0)

    @property
    def done(self) -> int:
        return self.count(TrialStatus.COMPLETED) + self.count(TrialStatus.STOPPED)


def summarise(trials: Sequence[TrialRecord], include_stopped: bool = False) -> SearchStats:
    by_status: dict[str, int] = {}
    for t in trials:
        by_status[str(t.status)] = by_status.get(str(t.status), 0) + 1
    best = best_trial(trials)
    front = pareto_front(trials, include_stopped)
    return SearchStats(
        trials=len(trials), by_status=by_status, reused=sum(t.reused for t in trials),
        best_accuracy=best.accuracy if best else None, best_trial=best.id if best else None,
        front_size=len(front), hypervolume=hypervolume(front, include_stopped=include_stopped))


class RunningSummary:
    """``summarise`` kept up to date one trial at a time.

    A driver prints a progress line after every trial event; re-reading and re-summarising
    every trial of the search each time is quadratic in trials (10,000 trials: 10^8 record reads).
    This holds the counts, the best trial and the front, and takes each changed trial as it is
    written (``update``), so a line costs the size of the front, not of the search.
    ``stats()`` equals ``summarise`` of the same trials.
    """

    def __init__(self, trials: Iterable[TrialRecord] = (), include_stopped: bool = False):
        self.include_stopped = include_stopped
        self._status: dict[int, str] = {}
        self._reused: set[int] = set()
        self._by_status: dict[str, int] = {}
        self._scored: dict[int, tuple[float, float]] = {}  # id -> (accuracy, throughput or 0)
        self._best: tuple[float, float, int] | None = None  # (accuracy, throughput, -id)
        self._points: dict[int, tuple[float, float]] = {}  # front candidates: id -> (throughput, accuracy)
        self._front: list[tuple[float, float]] = []
        for trial in trials:
            self.update(trial)

    def update(self, trial: TrialRecord) -> None:
        """Take a new trial, or the new state of one already taken."""
        old = self._status.get(trial.id)
        if old is not None:
            self._by_status[old] -= 1
        status = str(trial.status)
        self._status[trial.id] = status
        self._by_status[status] = self._by_status.get(status, 0) + 1
        if trial.reused:
            self._reused.add(trial.id)
        self._update_best(trial)
        self._update_front(trial)

    def stats(self) -> SearchStats:
        best = None if self._best is None else self._best
        return SearchStats(
            trials=len(self._status), by_status={k: v for k, v in self._by_status.items() if v},
            reused=len(self._reused), best_accuracy=best[0] if best else None, best_trial=-best[2] if best else None,
            front_size=len(self._front), hypervolume=self.hypervolume())

    def hypervolume(self, ref_throughput: float = 1.0, ref_accuracy: float = 0.0) -> float:
        """Of the front so far (as ``hypervolume`` of the trials taken)."""
        return hypervolume_2d(self._front, ref_throughput, ref_accuracy)

    def _update_best(self, trial: TrialRecord) -> None:
        key = (trial.accuracy, trial.throughput or 0.0) if trial.scored else None
        previous = self._scored.get(trial.id)
        if previous == key:
            return
        if key is None:
            del self._scored[trial.id]
        else:
            self._scored[trial.id] = key
        if previous is not None:  # a scored trial changed (rare): recompute from all of them
            self._best = max(((*k, -i) for i, k in self._scored.items()), default=None)
        elif key is not None and (self._best is None or (*key, -trial.id) > self._best):
            self._best = (*key, -trial.id)

    def _update_front(self, trial: TrialRecord) -> None:
        point = (trial.throughput, trial.accuracy) if on_front_candidate(trial, self.include_stopped) else None
        previous = self._points.get(trial.id)
        if previous == point:
            return
        if point is None:
            del self._points[trial.id]
        else:
            self._points[trial.id] = point
        if previous is not None:  # a front candidate changed (rare): rebuild the front
            self._front = []
            for p in self._points.values():
                self._add_to_front(p)
        elif point is not None:
            self._add_to_front(point)

    def _add_to_front(self, point: tuple[float, float]) -> None:
        x, y = point
        if any(fx >= x and fy >= y for fx, fy in self._front):
            return  # weakly dominated (or a duplicate, as pareto_front counts duplicates once)
        self._front = [(fx, fy) for fx, fy in self._front if not (fx <= x and fy <= y)] + [point]
