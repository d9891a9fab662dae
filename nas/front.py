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
    for i, t in enumerate(done):
        hours += float(t.device_hours or 0.0)
        out.append((hours, hypervolume(done[: i + 1], ref_throughput, include_stopped=include_stopped)))
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
