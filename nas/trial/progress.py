"""What a trial's reports have said so far: one definition of "feasible", "best accuracy" and of
the outcome a strategy learns.

The runner (which epoch's weights to ship), the Tune searcher (what to tell the strategy), the
store recorder (what to write) and the tabular simulator each follow their trials through the
same reports; they all read them through this class, so they cannot disagree.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

from nas.objectives import Outcome

MEASURE_PHASE, EPOCH_PHASE = "measure", "epoch"


@dataclass
class TrialProgress:
    feasible: bool | None = None  # None until the measurement is reported
    epochs_done: int = 0
    best_accuracy: float | None = None
    throughput: float | None = None  # measured speed, from the ``measure`` report
    latency_ms: float | None = None

    def observe(self, result: Mapping[str, Any]) -> bool:
        """Take one report into account; True when it raised the best validation accuracy."""
        phase = result.get("phase")
        if phase == MEASURE_PHASE:
            self.feasible = bool(result.get("feasible"))
            self.throughput = _speed(result.get("throughput"))
            self.latency_ms = _speed(result.get("latency_ms"))
            return False
        if phase != EPOCH_PHASE:
            return False
        self.epochs_done = max(self.epochs_done, int(result.get("epoch", 0)))
        accuracy = result.get("val_accuracy")
        if accuracy is None or (self.best_accuracy is not None and float(accuracy) <= self.best_accuracy):
            return False
        self.best_accuracy = float(accuracy)
        return True

    @property
    def outcome(self) -> Outcome | None:
        """What a strategy learns from the trial: trained (best accuracy and measured speed),
        infeasible (measured speed only), or None when it never got that far (failed)."""
        speeds = dict(throughput=self.throughput, latency_ms=self.latency_ms)
        if self.feasible is False:
            return Outcome.infeasible(**speeds)
        if self.feasible and self.best_accuracy is not None and math.isfinite(self.best_accuracy):
            return Outcome.trained(self.best_accuracy, **speeds)
        return None


def _speed(value: Any) -> float | None:
    """A measured speed if it is a positive finite number (a broken measurement reports None)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) and value > 0 else None
