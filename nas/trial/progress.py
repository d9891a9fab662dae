"""What a trial's reports have said so far: one definition of "feasible" and "best accuracy".

The runner (which epoch's weights to ship), the Tune searcher (what to tell the strategy) and
the store recorder (what to write) each follow their trials through the same reports; they all
read them through this class, so they cannot disagree.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

MEASURE_PHASE, EPOCH_PHASE = "measure", "epoch"


@dataclass
class TrialProgress:
    feasible: bool | None = None  # None until the measurement is reported
    epochs_done: int = 0
    best_accuracy: float | None = None

    def observe(self, result: Mapping[str, Any]) -> bool:
        """Take one report into account; True when it raised the best validation accuracy."""
        phase = result.get("phase")
        if phase == MEASURE_PHASE:
            self.feasible = bool(result.get("feasible"))
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
    def score(self) -> float | None:
        """What a strategy learns: the best accuracy of a feasible trial, None otherwise."""
        return self.best_accuracy if self.feasible else None
