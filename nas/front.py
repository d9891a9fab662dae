"""The accuracy-vs-throughput Pareto front, its hypervolume, and a search's summary statistics.

One home for "what did this search find", used by the progress lines, the end-of-search report,
``nas pareto``, the dashboard, export (``--best``/``--pareto``) and the benchmarks.

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


def pareto_front(trials: Iterable[TrialRecord]) -> list[TrialRecord]:
    """Non-dominated usable trials (maximise accuracy and throughput), sorted by throughput.

    Reused rows that copy another trial's result count once (the first occurrence).
    """
    seen, points = set(), []
    for t in trials:
        if not t.usable:
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


def hypervolume(trials: Iterable[TrialRecord], ref_throughput: float = 1.0, ref_accuracy: float = 0.0) -> float:
    """Area dominated by the front in (log10 throughput, accuracy) space above the reference point."""
    points = [(t.throughput, t.accuracy) for t in pareto_front(trials)]
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


def hypervolume_history(trials: Sequence[TrialRecord], ref_throughput: float = 1.0) -> list[tuple[float, float]]:
    """(cumulative device-hours, hypervolume) after each finished trial, in finishing order."""
    done = sorted((t for t in trials if t.finished_at), key=lambda t: t.finished_at)
    out, hours = [], 0.0
    for i, t in enumerate(done):
        hours += float(t.device_hours or 0.0)
        out.append((hours, hypervolume(done[: i + 1], ref_throughput)))
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


def summarise(trials: Sequence[TrialRecord]) -> SearchStats:
    by_status: dict[str, int] = {}
    for t in trials:
        by_status[str(t.status)] = by_status.get(str(t.status), 0) + 1
    best = best_trial(trials)
    front = pareto_front(trials)
    return SearchStats(
        trials=len(trials), by_status=by_status, reused=sum(t.reused for t in trials),
        best_accuracy=best.accuracy if best else None, best_trial=best.id if best else None,
        front_size=len(front), hypervolume=hypervolume(front))
