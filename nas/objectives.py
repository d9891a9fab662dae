"""What a search optimises and what a finished trial tells a strategy: typed values, one home.

A search maximises validation accuracy and one speed objective: log throughput (default) or, with
``--objective latency``, minus log batch-1 latency.  Speed limits (``--max-latency-ms``,
``--min-throughput``) stay hard constraints: a trial that breaks one is infeasible, never trained,
and ranks below every feasible trial (constraint-domination); among infeasible trials the one
closer to the limits ranks higher, which is what ``SpeedLimits.excess`` measures.

``Outcome`` is built from a trial's reports by ``nas.trial.progress.TrialProgress.outcome`` and
from a stored trial by ``Outcome.from_record`` (resume, reuse); the Tune searcher, the resume
replay and the tabular simulator all tell strategies through those two.
"""
from __future__ import annotations

import enum
import math
from dataclasses import dataclass

from nas.store.records import TrialRecord, TrialStatus
from nas.trial.measure_settings import MeasureSettings

__all__ = ["Outcome", "SpeedLimits", "SpeedObjective", "parse_objective"]


class SpeedObjective(str, enum.Enum):
    """The speed half of the objective vector (accuracy is always the other half)."""

    THROUGHPUT = "throughput"  # maximise log10 img/s at the throughput batch
    LATENCY = "latency"  # minimise log10 batch-1 milliseconds

    def __str__(self) -> str:
        return self.value


def parse_objective(value: str | SpeedObjective | None) -> SpeedObjective:
    """``--objective`` value -> ``SpeedObjective`` (None: throughput); ValueError names the choices."""
    if value is None:
        return SpeedObjective.THROUGHPUT
    try:
        return SpeedObjective(value)
    except ValueError:
        choices = ", ".join(o.value for o in SpeedObjective)
        raise ValueError(f"unknown objective {value!r}; choices: {choices}") from None


@dataclass(frozen=True)
class SpeedLimits:
    """The hard speed limits of a search (None: no limit)."""

    max_latency_ms: float | None = None
    min_throughput: float | None = None

    @classmethod
    def of(cls, measure: MeasureSettings) -> "SpeedLimits":
        return cls(max_latency_ms=measure.max_latency_ms, min_throughput=measure.min_throughput)

    @property
    def any(self) -> bool:
        return self.max_latency_ms is not None or self.min_throughput is not None

    def excess(self, latency_ms: float | None, throughput: float | None) -> float:
        """How far outside the limits a speed is: the sum of log10(value / limit) over the limits it
        breaks (0 inside them, as ``MeasureSettings.violation`` is None; inf for a missing value)."""
        total = 0.0
        if self.max_latency_ms is not None:
            total += _log10_excess(latency_ms, self.max_latency_ms)
        if self.min_throughput is not None:
            total += _log10_excess(self.min_throughput, throughput)
        return total


def _log10_excess(high: float | None, low: float | None) -> float:
    """max(0, log10(high / low)): how far ``high`` exceeds ``low``; inf when a measurement is missing."""
    if high is None or low is None or not (math.isfinite(high) and math.isfinite(low)) or high <= 0 or low <= 0:
        return math.inf
    return max(0.0, math.log10(high / low))


# An infeasible trial ranks behind every feasible one even when its excess rounds to 0 (a
# measurement exactly at a limit, or limits the strategy was not told).
MIN_VIOLATION = 1e-9


@dataclass(frozen=True)
class Outcome:
    """A finished trial as a strategy sees it.

    Feasible: it passed the speed limits and trained (``accuracy`` is its best validation
    accuracy, 0..1).  Infeasible: it broke a limit and never trained (``accuracy`` None).  Speeds
    are the measured ones when known (an infeasible trial is measured, which the speed predictor
    learns from).  A failed trial has no outcome: strategies are told None.
    """

    feasible: bool
    accuracy: float | None = None
    throughput: float | None = None  # img/s at the throughput batch
    latency_ms: float | None = None  # batch-1

    def __post_init__(self) -> None:
        if not isinstance(self.feasible, bool):
            raise ValueError(f"outcome: feasible must be a bool, got {self.feasible!r}")
        if self.feasible != (self.accuracy is not None):
            raise ValueError("outcome: a feasible trial has an accuracy, an infeasible one none; got "
                             f"feasible={self.feasible}, accuracy={self.accuracy!r}")
        for name in ("accuracy", "throughput", "latency_ms"):
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError(f"outcome: {name} must be a finite number or None, got {value!r}")
            if name != "accuracy" and value <= 0:
                raise ValueError(f"outcome: {name} must be > 0, got {value!r}")
            object.__setattr__(self, name, float(value))

    @classmethod
    def trained(cls, accuracy: float, throughput: float | None = None,
                latency_ms: float | None = None) -> "Outcome":
        return cls(feasible=True, accuracy=accuracy, throughput=throughput, latency_ms=latency_ms)

    @classmethod
    def infeasible(cls, throughput: float | None = None, latency_ms: float | None = None) -> "Outcome":
        return cls(feasible=False, throughput=throughput, latency_ms=latency_ms)

    @classmethod
    def from_record(cls, trial: TrialRecord) -> "Outcome | None":
        """What a stored trial tells a strategy: its outcome, or None for a failed (or unscored) one."""
        speeds = dict(throughput=_positive(trial.throughput), latency_ms=_positive(trial.latency_ms))
        if trial.scored and math.isfinite(trial.accuracy):
            return cls.trained(trial.accuracy, **speeds)
        if trial.status == TrialStatus.INFEASIBLE:
            return cls.infeasible(**speeds)
        return None

    @property
    def measured(self) -> bool:
        return self.throughput is not None and self.latency_ms is not None

    def speed_value(self, speed: SpeedObjective) -> float | None:
        """The speed objective, to maximise: log10 throughput or -log10 latency (None if unmeasured)."""
        if speed is SpeedObjective.THROUGHPUT:
            return None if self.throughput is None else math.log10(self.throughput)
        return None if self.latency_ms is None else -math.log10(self.latency_ms)

    def values(self, speed: SpeedObjective) -> tuple[float, float] | None:
        """(accuracy, speed objective), both maximised; None unless feasible and measured."""
        value = self.speed_value(speed)
        if not self.feasible or value is None:
            return None
        return self.accuracy, value

    def violation(self, limits: SpeedLimits) -> float:
        """0 for a feasible trial; otherwise how far outside ``limits`` it is (always > 0)."""
        if self.feasible:
            return 0.0
        return max(limits.excess(self.latency_ms, self.throughput), MIN_VIOLATION)


def _positive(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) and value > 0 else None
